"""How much of a pair's data La-MMD actually sees, batch by batch (no training).

La-MMD compares a label's source and target vectors only in batches where
both sides hold at least ``mmd_min_tokens`` tokens of it. With a few target
sentences per batch most labels are often skipped; this script counts how
often, for each ``mmd_labels`` level ("tag" or "type") and min-token setting,
and with ``mmd_memory`` (remembered tokens of earlier batches count too).

Usage (from project/, after `benchmark_run.py --prepare-only` made the corpora):
    python scripts/mmd_coverage.py PAIR [--rate 0.1] [--batches 300] [--size 32]
        [--memory 16,48] [--work benchmarks/work] [--plan benchmark.yml] [--out benchmarks/mmd_coverage.md]
"""
import argparse
import random
import sys
from itertools import islice
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import spacy
import srsly
import torch
from spacy.tokens import DocBin
from spacy.training import Example

from spacy_ladtl.batchers import domain_batches
from spacy_ladtl.domains import set_domain
from spacy_ladtl.memory import LabelMemory, widen_and_remember
from spacy_ladtl.objective import TransferSettings, gold_tag_ids, match_domains
from spacy_ladtl.tags import make_tags

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "scripts"))
import benchmark_run  # noqa: E402


def load_examples(path: Path, domain: str, lang: str) -> List[Example]:
    nlp = spacy.blank(lang)
    examples = []
    for doc in DocBin().from_disk(path).get_docs(nlp.vocab):
        set_domain(doc, domain)
        examples.append(Example(doc, doc))
    return examples


def batch_gold(batch: List[Example], tag_sets: Dict[str, List[str]]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Gold tag ids of the real tokens of a batch: (source tokens,), (target tokens,)."""
    domains = list(tag_sets)
    ids = [domains.index(eg.predicted._.ladtl_domain) for eg in batch]
    lengths = torch.tensor([len(eg.predicted) for eg in batch])
    gold = gold_tag_ids(batch, ids, [tag_sets[d] for d in domains], "BILUO", (len(batch), int(lengths.max())))
    mask = torch.arange(gold.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    dom = torch.tensor(ids)
    return gold[dom == 0][mask[dom == 0]], gold[dom == 1][mask[dom == 1]]


def coverage(
    golds: Sequence[Tuple[torch.Tensor, torch.Tensor]],
    tag_sets: Dict[str, List[str]],
    settings: TransferSettings,
) -> Dict[str, float]:
    """Mean active labels per batch, and the share of target entity tokens La-MMD uses.

    With ``settings.mmd_memory`` the remembered tokens (labels only: the
    vectors do not matter for the count) are added as in training.
    """
    source_tags, target_tags = tag_sets.values()
    match = match_domains(source_tags, target_tags, settings, torch.device("cpu"))
    memories = (LabelMemory(settings.mmd_memory), LabelMemory(settings.mmd_memory))
    active_total, used, entity_tokens = 0, 0, 0
    for gold_a, gold_b in golds:
        y_a, y_b = match.shared_a[gold_a], match.shared_b[gold_b]
        dummy_a, dummy_b = torch.zeros(y_a.shape[0], 1), torch.zeros(y_b.shape[0], 1)
        (_, seen_a), (_, seen_b) = widen_and_remember(memories, dummy_a, y_a, dummy_b, y_b, match.n_shared)
        n_a = torch.bincount(seen_a[seen_a >= 0], minlength=match.n_shared)
        n_b = torch.bincount(seen_b[seen_b >= 0], minlength=match.n_shared)
        active = (n_a >= settings.mmd_min_tokens) & (n_b >= settings.mmd_min_tokens)
        active_total += int(active.sum())
        target_entity = gold_b > 0
        entity_tokens += int(target_entity.sum())
        in_mmd = (y_b >= 0) & active[y_b.clamp_min(0)]
        used += int((in_mmd & target_entity).sum())
    return {
        "labels": match.n_shared,
        "active_per_batch": active_total / max(len(golds), 1),
        "target_entity_tokens_used": used / max(entity_tokens, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pair")
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--memory", default="16,48", help="mmd_memory sizes to count too (tag level, min 2, O out)")
    parser.add_argument("--work", type=Path, default=PROJECT / "benchmarks" / "work")
    parser.add_argument("--plan", type=Path, default=PROJECT / "benchmark.yml")
    parser.add_argument("--out", type=Path, default=None, help="append the Markdown table to this file")
    args = parser.parse_args()
    corpus = args.work / args.pair / "corpus"
    if not (corpus / "pair.json").exists():
        raise SystemExit(f"✘ no corpus in {corpus}: run scripts/benchmark_run.py --pairs {args.pair} --prepare-only first")
    target_train = benchmark_run.subsample_path(corpus, args.rate)
    if not target_train.exists():
        have = benchmark_run.subsampled_rates(corpus)
        raise SystemExit(f"✘ no {target_train.name} in {corpus} (rates there: {', '.join(have) or 'none'}): pass one "
                         f"of those with --rate, or run scripts/benchmark_run.py --pairs {args.pair} --prepare-only "
                         f"(it makes the rates the plan runs)")
    info = srsly.read_json(corpus / "pair.json")
    lang = info["domains"]["target"].get("lang", "en")
    source = load_examples(corpus / "source_train.spacy", "source", lang)
    target = load_examples(target_train, "target", lang)
    tag_sets = {
        d: make_tags(sorted({e.label_ for eg in egs for e in eg.reference.ents}), "BILUO")
        for d, egs in (("source", source), ("target", target))
    }
    plan = srsly.read_yaml(args.plan)["pairs"][args.pair]
    label_map = plan.get("label_map", {})
    random.seed(0)
    batches = list(islice(domain_batches(source + target, args.size), args.batches))
    golds = [batch_gold(batch, tag_sets) for batch in batches]  # the same for every setting
    lines = [
        f"### {args.pair}, {args.rate:g} target, {len(batches)} batches of {args.size}",
        "",
        "| mmd_labels | mmd_min_tokens | include O | mmd_memory | shared labels | active labels per batch | target entity tokens in La-MMD |",
        "|---|---|---|---|---|---|---|",
    ]
    points = [(labels, m, o, 0) for labels in ("tag", "type") for m in (2, 1) for o in (False, True)]
    points += [("tag", 2, False, int(size)) for size in args.memory.split(",") if size.strip()]
    for labels, min_tokens, include_o, memory in points:
        settings = TransferSettings(
            mmd_labels=labels, mmd_min_tokens=min_tokens, mmd_include_o=include_o, mmd_memory=memory, label_map=label_map
        )
        c = coverage(golds, tag_sets, settings)
        lines.append(
            f"| {labels} | {min_tokens} | {include_o} | {memory} | {c['labels']} | "
            f"{c['active_per_batch']:.2f} | {100 * c['target_entity_tokens_used']:.1f}% |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
