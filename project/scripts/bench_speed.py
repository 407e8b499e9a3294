"""Speed and memory benchmark: ladtl_ner vs spaCy's built-in ner, all in one run.

Run from project/:

    python scripts/bench_speed.py --data-dir ../../shared/data --output metrics/speed.json
    python scripts/bench_speed.py --data-dir ../../shared/data --output metrics/speed_quick.json --quick

Sections (``--sections``, default all):

* pipeline: training words/s (``nlp.update`` over the same batches of CoNLL-2003
  train + WNUT-17 train for every system, after ``nlp.initialize``, no
  evaluation) and ``nlp.pipe`` words/s at several batch sizes, for ladtl_ner
  (configs/ladtl_bilstm.cfg), ladtl_ner with alpha = beta = 0, and spaCy's ner
  efficiency and accuracy (no static vectors) presets.
* crf: spacy_ladtl.crf.CRF vs pytorch-crf 0.7.2 (see bench_crf.py).
* mmd: La-MMD + CRF-L2 time vs batch size on real encoder outputs, and their
  share of a full training step.
* memory: peak RSS of a subprocess per measurement (``os.wait4`` rusage):
  training on CoNLL-2003 -> WNUT-17 and annotating 10,000 sentences.

The corpora are read from ``--data-dir`` at run time and converted to .spacy
files in ``--cache-dir`` (git-ignored); nothing from them is stored elsewhere.
The JSON records the command line, torch threads, platform, versions and the
load average (the machine may be shared; timings are wall-clock).
"""
import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from bench_common import environment, format_table, load_average, time_call  # noqa: E402

SYSTEMS: Dict[str, Dict[str, Any]] = {
    "ladtl": {
        "label": "ladtl_ner (La-DTL, BiLSTM-CRF)",
        "config": "configs/ladtl_bilstm.cfg",
        "overrides": {},
    },
    "ladtl_no_transfer": {
        "label": "ladtl_ner alpha=beta=0",
        "config": "configs/ladtl_bilstm.cfg",
        "overrides": {"components.ladtl_ner.alpha": 0.0, "components.ladtl_ner.beta": 0.0},
    },
    "ladtl_1thread": {
        "label": "ladtl_ner, torch threads=1",
        "config": "configs/ladtl_bilstm.cfg",
        "overrides": {},
        "threads": 1,
    },
    "ladtl_packed": {
        "label": "ladtl_ner, BiLSTMEncoder.v2 (packed)",
        "config": "configs/ladtl_bilstm.cfg",
        "overrides": {"components.ladtl_ner.model.tok2vec.encode.@architectures": "spacy-ladtl.BiLSTMEncoder.v2"},
    },
    "spacy_eff": {
        "label": "spaCy ner (efficiency)",
        "config": "configs/spacy_ner_baseline.cfg",
        "overrides": {},
    },
    "spacy_acc": {
        "label": "spaCy ner (accuracy, no vectors)",
        "config": "configs/spacy_ner_accuracy.cfg",
        "overrides": {},
    },
    # optional: measured only when named in --systems (needs pip install -e .[transformers])
    "ladtl_trf": {
        "label": "ladtl_ner on all-MiniLM-L6-v2 (configs/ladtl_trf.cfg)",
        "config": "configs/ladtl_trf.cfg",
        "overrides": {},
        "optional": True,
    },
}
OURS = ("ladtl", "ladtl_no_transfer", "ladtl_1thread", "ladtl_packed", "ladtl_trf")
TARGETS = {
    "inference_vs_spacy_eff": 1.0,
    "training_vs_spacy_eff": 0.5,
    "crf_speedup_vs_pytorch_crf": 2.0,
    "transfer_share_of_step": 0.15,
    "peak_rss_bytes": 1.5e9,
}

# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------

SOURCES = {
    "source_train": ("conll2003/train.txt", "source"),
    "target_train": ("wnut17/wnut17train.conll", "target"),
}
INFER_SOURCES = ("conll2003/dev.txt", "wnut17/emerging.dev.conll")
ANNOTATE_SOURCE = "conll2003/train.txt"


def prepare_corpora(data_dir: Path, cache_dir: Path) -> Dict[str, Path]:
    """Convert the CoNLL files to domain-marked .spacy files (cached)."""
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    from spacy_ladtl.conll import ConversionOptions, convert_conll_file

    out: Dict[str, Path] = {}
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name, (rel, domain) in SOURCES.items():
        src = data_dir / rel
        if not src.exists():
            raise SystemExit(f"Missing corpus file {src}: pass --data-dir pointing at the shared data folder.")
        dest = cache_dir / f"{name}.spacy"
        if not dest.exists() or dest.stat().st_mtime < src.stat().st_mtime:
            docs, _ = convert_conll_file(src, ConversionOptions(domain=domain), Vocab())
            DocBin(store_user_data=True, docs=docs).to_disk(dest)
        out[name] = dest
    return out


def read_words(path: Path, limit_words: int = 0, limit_sents: int = 0) -> List[List[str]]:
    from spacy_ladtl.conll import read_conll

    sents: List[List[str]] = []
    words = 0
    for words_, _tags in read_conll(path):
        if not words_:
            continue
        sents.append(list(words_))
        words += len(words_)
        if (limit_words and words >= limit_words) or (limit_sents and len(sents) >= limit_sents):
            break
    return sents


def inference_sentences(data_dir: Path, n_words: int) -> List[List[str]]:
    """Alternating CoNLL-2003 dev and WNUT-17 dev sentences, ``n_words`` words in all."""
    pools = [read_words(data_dir / rel, limit_words=n_words) for rel in INFER_SOURCES]
    out: List[List[str]] = []
    total = 0
    for pair in itertools.zip_longest(*pools):
        for sent in pair:
            if sent is not None and total < n_words:
                out.append(sent)
                total += len(sent)
    return out


# --------------------------------------------------------------------------
# pipelines
# --------------------------------------------------------------------------


def build_nlp(system: str, corpora: Dict[str, Path]):
    import spacy

    import spacy_ladtl  # noqa: F401  (registers the factory and the functions)

    spec = SYSTEMS[system]
    overrides: Dict[str, Any] = dict(spec["overrides"])
    if system in OURS:
        overrides.update(
            {
                "paths.source_train": str(corpora["source_train"]),
                "paths.target_train": str(corpora["target_train"]),
                "paths.dev": str(corpora["target_train"]),
            }
        )
    else:
        overrides.update({"paths.train": str(corpora["target_train"]), "paths.dev": str(corpora["target_train"])})
    config = spacy.util.load_config(REPO / spec["config"], overrides=overrides, interpolate=False)
    spacy.util.fix_random_seed(0)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    return nlp, config


def read_examples(nlp, corpora: Dict[str, Path], limit: int) -> List[Any]:
    """CoNLL-2003 train (source) + WNUT-17 train (target) Examples, marked with their domain."""
    from spacy_ladtl.readers import MultiDomainCorpus

    reader = MultiDomainCorpus({"source": corpora["source_train"], "target": corpora["target_train"]}, limit=limit)
    examples = list(reader(nlp))
    random.Random(0).shuffle(examples)
    return examples


def training_batches(examples: List[Any], size: int, n: int) -> List[List[Any]]:
    """The first ``n`` batches of spacy-ladtl.domain_batcher.v1 (half source, half target)."""
    from spacy_ladtl.batchers import domain_batches

    random.seed(0)
    return list(itertools.islice(domain_batches(examples, size), n))


def initialized(system: str, corpora: Dict[str, Path], limit: int):
    from thinc.api import fix_random_seed

    nlp, config = build_nlp(system, corpora)
    examples = read_examples(nlp, corpora, limit)
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    dropout = float(config["training"]["dropout"])
    return nlp, examples, optimizer, dropout


class _Threads:
    """Run a block with a system's torch thread count (restored afterwards)."""

    def __init__(self, system: str) -> None:
        self.threads = SYSTEMS[system].get("threads")

    def __enter__(self) -> None:
        import torch

        self.saved = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc: Any) -> None:
        import torch

        torch.set_num_threads(self.saved)


def _chunks(items: List[Any], n: int) -> List[List[Any]]:
    size = -(-len(items) // n)
    return [items[i : i + size] for i in range(0, len(items), size)]


def bench_pipelines(systems: Sequence[str], corpora: Dict[str, Path], infer_sents: List[List[str]], opts: argparse.Namespace) -> List[Dict[str, Any]]:
    """Training and inference throughput of every system, measured in interleaved rounds.

    Each system's timed training steps and inference docs are split into
    ``opts.rounds`` parts, and the rounds visit the systems in turn, so a change
    in machine load hits all systems alike. Throughput = all words / all time;
    ``rounds_words_per_s`` shows the spread.
    """
    import torch
    from spacy.tokens import Doc

    state: Dict[str, Dict[str, Any]] = {}
    for system in systems:
        print(f"[pipeline] setting up {system} ...", file=sys.stderr, flush=True)
        with _Threads(system):
            t0 = time.perf_counter()
            nlp, examples, optimizer, dropout = initialized(system, corpora, opts.read_limit)
            batches = training_batches(examples, opts.train_batch_size, opts.warmup_steps + opts.train_steps)
            for batch in batches[: opts.warmup_steps]:
                nlp.update(batch, sgd=optimizer, drop=dropout)
            docs = [Doc(nlp.vocab, words=ws) for ws in infer_sents]
            for bs in opts.batch_sizes:  # warm-up
                for _ in nlp.pipe(docs[: max(bs, 16)], batch_size=bs):
                    pass
            state[system] = {
                "nlp": nlp, "optimizer": optimizer, "dropout": dropout, "setup_s": time.perf_counter() - t0,
                "train_parts": _chunks(batches[opts.warmup_steps :], opts.rounds),
                "doc_parts": _chunks(docs, opts.rounds),
                "threads": torch.get_num_threads(),
                "train_rounds": [], "losses": {},
                "infer_rounds": {bs: [] for bs in opts.batch_sizes}, "entities": {bs: 0 for bs in opts.batch_sizes},
            }  # fmt: skip
    for r in range(opts.rounds):
        print(f"[pipeline] round {r + 1}/{opts.rounds} ...", file=sys.stderr, flush=True)
        for system in systems:
            st = state[system]
            if r >= len(st["train_parts"]):
                continue
            with _Threads(system):
                words = 0
                start = time.perf_counter()
                for batch in st["train_parts"][r]:
                    st["nlp"].update(batch, sgd=st["optimizer"], drop=st["dropout"], losses=st["losses"])
                    words += sum(len(eg.predicted) for eg in batch)
                st["train_rounds"].append((words, time.perf_counter() - start))
        for bs in opts.batch_sizes:
            for system in systems:
                st = state[system]
                if r >= len(st["doc_parts"]):
                    continue
                with _Threads(system):
                    part = st["doc_parts"][r]
                    start = time.perf_counter()
                    for doc in st["nlp"].pipe(part, batch_size=bs):
                        st["entities"][bs] += len(doc.ents)
                    st["infer_rounds"][bs].append((sum(len(d) for d in part), time.perf_counter() - start))
    results = []
    for system in systems:
        st = state[system]
        words = sum(w for w, _ in st["train_rounds"])
        secs = sum(t for _, t in st["train_rounds"])
        res: Dict[str, Any] = {
            "system": system,
            "label": SYSTEMS[system]["label"],
            "config": SYSTEMS[system]["config"],
            "overrides": SYSTEMS[system]["overrides"],
            "torch_threads": st["threads"],
            "setup_s": st["setup_s"],
            "train": {
                "steps": sum(len(p) for p in st["train_parts"]),
                "warmup_steps": opts.warmup_steps,
                "batch_sentences": opts.train_batch_size,
                "words": words,
                "seconds": secs,
                "words_per_s": words / secs,
                "rounds_words_per_s": [w / t for w, t in st["train_rounds"]],
                "dropout": st["dropout"],
                "losses": {k: float(v) for k, v in st["losses"].items()},
            },
            "inference": [],
        }
        for bs in opts.batch_sizes:
            rounds = st["infer_rounds"][bs]
            n_words, secs = sum(w for w, _ in rounds), sum(t for _, t in rounds)
            res["inference"].append(
                {
                    "batch_size": bs, "docs": sum(len(p) for p in st["doc_parts"]), "words": n_words, "seconds": secs,
                    "words_per_s": n_words / secs, "rounds_words_per_s": [w / t for w, t in rounds], "entities": st["entities"][bs],
                }
            )  # fmt: skip
        results.append(res)
    return results


# --------------------------------------------------------------------------
# transfer-loss cost vs batch size
# --------------------------------------------------------------------------


def _la_mmd_original(h_a, y_a, h_b, y_b, n_labels, cap, min_tokens, n_kernels=5, kernel_mul=2.0):
    """La-MMD as this package computed it before the fast paths (exact cdist
    bandwidth on the pooled tokens, one exp per kernel over a stacked
    (n_kernels, N, N) tensor), for an in-run before/after comparison."""
    import torch

    from spacy_ladtl.losses import _capped_label_indices, _sq_dists, median_bandwidth

    idx_a, lab_a, n_a = _capped_label_indices(y_a, n_labels, cap, None)
    idx_b, lab_b, n_b = _capped_label_indices(y_b, n_labels, cap, None)
    active = (n_a >= min_tokens) & (n_b >= min_tokens)
    if not bool(active.any()):
        return (h_a.sum() + h_b.sum()) * 0.0
    keep_a, keep_b = active[lab_a], active[lab_b]
    idx_a, lab_a, idx_b, lab_b = idx_a[keep_a], lab_a[keep_a], idx_b[keep_b], lab_b[keep_b]
    z = torch.cat([h_a[idx_a], h_b[idx_b]], 0)
    d2 = _sq_dists(z, z)
    bw = median_bandwidth(z)
    exps = torch.arange(n_kernels, dtype=d2.dtype) - (n_kernels // 2)
    bws = bw * (kernel_mul**exps)
    k = torch.exp(-d2.unsqueeze(0) / bws.view(-1, 1, 1)).sum(0)
    w = torch.zeros(z.shape[0], n_labels, dtype=z.dtype)
    rows = torch.arange(z.shape[0])
    na = idx_a.shape[0]
    w[rows[:na], lab_a] = (1.0 / n_a.clamp_min(1).to(z.dtype))[lab_a]
    w[rows[na:], lab_b] = -(1.0 / n_b.clamp_min(1).to(z.dtype))[lab_b]
    per_label = ((k @ w) * w).sum(0).clamp_min(0.0)
    return torch.where(active, per_label, torch.zeros_like(per_label)).sum()


def bench_mmd(corpora: Dict[str, Path], opts: argparse.Namespace) -> Dict[str, Any]:
    import torch
    from thinc.api import set_dropout_rate

    from spacy_ladtl.layers import EncodedBatch
    from spacy_ladtl.losses import crf_l2
    from spacy_ladtl.objective import _pair_mmd, ladtl_loss

    limit = max(opts.read_limit, max(opts.mmd_batch_sizes) // 2 + 1)
    nlp, examples, optimizer, dropout = initialized("ladtl", corpora, limit)
    ner = nlp.get_pipe("ladtl_ner")
    warm = training_batches(examples, opts.train_batch_size, 3)
    for batch in warm:
        nlp.update(batch, sgd=optimizer, drop=dropout)
    settings = ner.settings
    no_transfer = replace(settings, alpha=0.0, beta=0.0)
    rows = []
    for size in opts.mmd_batch_sizes:
        batch = training_batches(examples, size, 1)[0]
        docs = [eg.predicted for eg in batch]
        set_dropout_rate(ner.model, dropout)
        enc, _ = ner.model.begin_update(docs)
        gold = ner._gold_tag_ids(batch, enc)
        matches = ner._domain_matches(enc.mask.device)
        heads = enc.heads

        def fresh() -> EncodedBatch:
            return EncodedBatch(enc.hidden.detach().clone().requires_grad_(True), enc.mask, enc.domain_ids, heads)

        def loss_fn(s) -> Callable[[], None]:
            def run() -> None:
                b = fresh()
                ladtl_loss(b, gold, s, matches)["total"].backward()
                heads.zero_grad(set_to_none=True)

            return run

        rows_a = (enc.domain_ids == 0).nonzero(as_tuple=True)[0]
        rows_b = (enc.domain_ids == 1).nonzero(as_tuple=True)[0]
        match = matches[(0, 1)]

        def mmd_only() -> None:
            b = fresh()
            _pair_mmd(b, gold, rows_a, rows_b, match, settings).backward()

        def mmd_original() -> None:
            b = fresh()
            mask_a, mask_b = b.mask[rows_a], b.mask[rows_b]
            h_a, h_b = b.hidden[rows_a][mask_a], b.hidden[rows_b][mask_b]
            y_a = match.shared_a[gold[rows_a][mask_a]]
            y_b = match.shared_b[gold[rows_b][mask_b]]
            _la_mmd_original(h_a, y_a, h_b, y_b, match.n_shared, settings.mmd_max_tokens, settings.mmd_min_tokens).backward()

        def l2_only() -> None:
            crf_l2(heads.heads[0], heads.heads[1], match.pairs).backward()
            heads.zero_grad(set_to_none=True)

        reps = opts.mmd_repeats
        t_full = time_call(loss_fn(settings), repeats=reps, warmup=1)["median_s"]
        t_crf = time_call(loss_fn(no_transfer), repeats=reps, warmup=1)["median_s"]
        t_mmd = time_call(mmd_only, repeats=reps, warmup=1)["median_s"]
        t_l2 = time_call(l2_only, repeats=reps, warmup=1)["median_s"]
        t_mmd_old = time_call(mmd_original, repeats=max(2, reps // 2), warmup=1)["median_s"]

        def step() -> None:
            nlp.update(batch, sgd=optimizer, drop=dropout)

        big = size > 4 * opts.train_batch_size  # a few seconds per step on 2 cores: time fewer
        t_step = time_call(step, repeats=1 if big else opts.step_repeats, warmup=0 if big else 1)["median_s"]
        mask_a, mask_b = enc.mask[rows_a], enc.mask[rows_b]
        y_a = match.shared_a[gold[rows_a][mask_a]]
        y_b = match.shared_b[gold[rows_b][mask_b]]
        cap = settings.mmd_max_tokens
        n_mmd = int(
            sum(
                min(int((y == lab).sum()), cap)
                for lab in range(match.n_shared)
                for y in (y_a, y_b)
                if int((y_a == lab).sum()) >= settings.mmd_min_tokens and int((y_b == lab).sum()) >= settings.mmd_min_tokens
            )
        )
        transfer = t_mmd + t_l2
        rows.append(
            {
                "batch_sentences": size,
                "words": int(enc.mask.sum()),
                "mmd_tokens": n_mmd,
                "la_mmd_s": t_mmd,
                "la_mmd_before_fast_paths_s": t_mmd_old,
                "crf_l2_s": t_l2,
                "loss_full_s": t_full,
                "loss_crf_only_s": t_crf,
                "step_s": t_step,
                "transfer_s": transfer,
                "transfer_share_of_step": transfer / t_step,
            }
        )
    base = rows[0]
    for r in rows:
        r["la_mmd_growth"] = r["la_mmd_s"] / base["la_mmd_s"]
        r["batch_growth"] = r["batch_sentences"] / base["batch_sentences"]
    return {"rows": rows, "mmd_max_tokens": settings.mmd_max_tokens, "default_batch": opts.train_batch_size}


# --------------------------------------------------------------------------
# memory: one subprocess per measurement
# --------------------------------------------------------------------------


def child_main(opts: argparse.Namespace) -> None:
    """Run one memory measurement in this (child) process and print a JSON line."""
    import resource

    import torch

    if opts.threads:
        torch.set_num_threads(opts.threads)
    kind, system = opts.child, opts.system
    info: Dict[str, Any] = {"kind": kind, "system": system}
    start = time.perf_counter()
    if kind == "import":
        import spacy  # noqa: F401

        import spacy_ladtl  # noqa: F401
    else:
        corpora = {k: Path(v) for k, v in json.loads(opts.corpora).items()}
        if kind == "train":
            nlp, examples, optimizer, dropout = initialized(system, corpora, opts.read_limit)
            batches = training_batches(examples, opts.train_batch_size, opts.mem_steps)
            words = 0
            for batch in batches:
                nlp.update(batch, sgd=optimizer, drop=dropout)
                words += sum(len(eg.predicted) for eg in batch)
            info.update({"examples": len(examples), "steps": len(batches), "words": words})
        elif kind == "annotate":
            from spacy.tokens import Doc

            nlp, _examples, optimizer, dropout = initialized(system, corpora, 300)
            del _examples
            sents = read_words(Path(opts.data_dir) / ANNOTATE_SOURCE, limit_sents=opts.mem_sentences)
            n_words = n_ents = n_docs = 0
            for doc in nlp.pipe((Doc(nlp.vocab, words=ws) for ws in sents), batch_size=opts.mem_batch_size):
                n_docs += 1
                n_words += len(doc)
                n_ents += len(doc.ents)
            info.update({"sentences": n_docs, "words": n_words, "entities": n_ents, "batch_size": opts.mem_batch_size})
        else:
            raise SystemExit(f"unknown child kind {kind!r}")
    info["seconds"] = time.perf_counter() - start
    info["self_maxrss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    info["vm_hwm_bytes"] = _vm_hwm_bytes()
    print("RESULT " + json.dumps(info), flush=True)


# A tiny launcher between this (large) process and the measured child: on Linux a
# child's ru_maxrss starts from the RSS of the process it was forked from, so the
# child is forked from this ~10 MB launcher, which reports its rusage (os.wait4).
_LAUNCHER = (
    "import json, os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print('RUSAGE ' + json.dumps({'rc': os.waitstatus_to_exitcode(status), 'maxrss_kib': usage.ru_maxrss}), flush=True)\n"
)


def _vm_hwm_bytes() -> Optional[int]:
    """Peak RSS of this process's address space (Linux /proc), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def run_child(args: List[str]) -> Dict[str, Any]:
    """Run this script as a measured child process; returns its RESULT plus peak RSS."""
    cmd = [sys.executable, "-c", _LAUNCHER, sys.executable, str(Path(__file__).resolve())] + args
    with tempfile.TemporaryFile() as err:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, cwd=os.getcwd())
        out = proc.stdout.decode("utf8", "replace")
        usage = [json.loads(ln[len("RUSAGE ") :]) for ln in out.splitlines() if ln.startswith("RUSAGE ")]
        if proc.returncode != 0 or not usage or usage[-1]["rc"] != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(args)} failed:\n{err.read().decode('utf8', 'replace')[-3000:]}")
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1]
    info = json.loads(line[len("RESULT ") :])
    info["peak_rss_bytes"] = usage[-1]["maxrss_kib"] * 1024  # ru_maxrss is in KiB on Linux
    return info


def bench_memory(corpora: Dict[str, Path], opts: argparse.Namespace) -> Dict[str, Any]:
    common = [
        "--corpora", json.dumps({k: str(v) for k, v in corpora.items()}),
        "--data-dir", str(opts.data_dir),
        "--train-batch-size", str(opts.train_batch_size),
        "--mem-steps", str(opts.mem_steps),
        "--mem-sentences", str(opts.mem_sentences),
        "--mem-batch-size", str(opts.mem_batch_size),
        "--read-limit", str(opts.mem_read_limit),
    ]  # fmt: skip
    if opts.threads:
        common += ["--threads", str(opts.threads)]
    runs = [("import", "ladtl")]
    for system in opts.mem_systems:
        runs += [("train", system), ("annotate", system)]
    rows = []
    for kind, system in runs:
        rows.append(run_child(["--child", kind, "--system", system] + common))
    return {"rows": rows, "train_read_limit": opts.mem_read_limit, "steps": opts.mem_steps, "sentences": opts.mem_sentences}


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------


def summarize(results: Dict[str, Any]) -> Dict[str, Any]:
    """Ratios ours/spaCy and the targets met or missed."""
    summary: Dict[str, Any] = {"ratios": {}, "targets": {}}
    pipes = {r["system"]: r for r in results.get("pipeline", [])}
    if "spacy_eff" in pipes:
        eff = pipes["spacy_eff"]
        for ours in OURS:
            if ours not in pipes:
                continue
            mine = pipes[ours]
            ratios: Dict[str, Any] = {}
            for ref_name in ("spacy_eff", "spacy_acc"):
                if ref_name not in pipes:
                    continue
                ref = pipes[ref_name]
                ratios[f"train_vs_{ref_name}"] = mine["train"]["words_per_s"] / ref["train"]["words_per_s"]
                ratios[f"inference_vs_{ref_name}"] = {
                    str(a["batch_size"]): a["words_per_s"] / b["words_per_s"] for a, b in zip(mine["inference"], ref["inference"])
                }
            summary["ratios"][ours] = ratios
        for ours, suffix in (("ladtl", ""), ("ladtl_1thread", ", torch threads=1"), ("ladtl_packed", ", packed BiLSTM (v2)")):
            if ours not in pipes:
                continue
            r = summary["ratios"][ours]
            inf = r["inference_vs_spacy_eff"]
            summary["targets"][f"inference >= 1.0x spaCy efficiency, every batch size{suffix}"] = {
                "value": min(inf.values()),
                "met": min(inf.values()) >= TARGETS["inference_vs_spacy_eff"],
            }
            summary["targets"][f"training >= 0.5x spaCy efficiency{suffix}"] = {
                "value": r["train_vs_spacy_eff"],
                "met": r["train_vs_spacy_eff"] >= TARGETS["training_vs_spacy_eff"],
            }
        del eff
    crf = results.get("crf")
    if crf and crf.get("pytorch_crf"):
        for key, name in (("speedup_nll", "CRF NLL fwd+bwd >= 2x pytorch-crf"), ("speedup_viterbi", "CRF Viterbi >= 2x pytorch-crf")):
            worst = min(r[key] for r in crf["results"])
            summary["targets"][name + " (every shape)"] = {"value": worst, "met": worst >= TARGETS["crf_speedup_vs_pytorch_crf"]}
    mmd = results.get("mmd")
    if mmd:
        default = [r for r in mmd["rows"] if r["batch_sentences"] == mmd["default_batch"]] or mmd["rows"][:1]
        share = default[0]["transfer_share_of_step"]
        worst = max(r["transfer_share_of_step"] for r in mmd["rows"])
        summary["targets"][f"transfer losses <= 15% of a step (batch {default[0]['batch_sentences']})"] = {
            "value": share,
            "met": share <= TARGETS["transfer_share_of_step"],
        }
        summary["targets"]["transfer losses <= 15% of a step (every batch size)"] = {
            "value": worst,
            "met": worst <= TARGETS["transfer_share_of_step"],
        }
    mem = results.get("memory")
    if mem:
        ours = [r for r in mem["rows"] if r["system"] in OURS and r["kind"] != "import"]
        if ours:
            peak = max(r["peak_rss_bytes"] for r in ours)
            summary["targets"]["peak RSS <= 1.5 GB (ladtl train + annotate)"] = {"value": peak, "met": peak <= TARGETS["peak_rss_bytes"]}
    return summary


def report(results: Dict[str, Any]) -> str:
    out: List[str] = []
    env = results["environment"]
    out.append(f"command: {env['command']}")
    out.append(
        f"torch threads: {env['torch_num_threads']} | cpus: {env['cpu_count']} | {env['platform']} | "
        f"torch {env['versions']['torch']} spacy {env['versions']['spacy']} thinc {env['versions']['thinc']} "
        f"pytorch-crf {env['versions']['pytorch-crf']} | load avg start {env['load_average_start']} end {results.get('load_average_end')}"
    )
    set_vars = {k: v for k, v in env.get("env_vars", {}).items() if v}
    if set_vars:
        out.append("env: " + " ".join(f"{k}={v}" for k, v in set_vars.items()))
    pipes = results.get("pipeline", [])
    if pipes:
        bss = [a["batch_size"] for a in pipes[0]["inference"]]
        header = ["system", "train w/s", "x eff"] + [f"pipe bs={b} w/s" for b in bss] + [f"x eff bs={b}" for b in bss]
        eff = {p["system"]: p for p in pipes}.get("spacy_eff")
        rows = []
        for p in pipes:
            row: List[Any] = [p["label"], p["train"]["words_per_s"]]
            row.append(f"{p['train']['words_per_s'] / eff['train']['words_per_s']:.2f}x" if eff else "")
            row += [a["words_per_s"] for a in p["inference"]]
            row += [f"{a['words_per_s'] / b['words_per_s']:.2f}x" for a, b in zip(p["inference"], eff["inference"])] if eff else [""] * len(bss)
            rows.append(row)
        t = pipes[0]["train"]
        out.append(
            f"\n## Pipeline throughput (training: {t['steps']} steps x {t['batch_sentences']} sentences, "
            f"{t['words']} words, same batches for every system; inference: {pipes[0]['inference'][0]['words']} words; "
            f"{len(t['rounds_words_per_s'])} interleaved rounds)"
        )
        out.append(format_table(header, rows))
    if results.get("crf"):
        from bench_crf import table as crf_table

        out.append(f"\n## CRF alone: ours vs pytorch-crf (median of {results['crf']['repeats']}; 'old' = this package before the fast paths)")
        out.append(crf_table(results["crf"]))
    mmd = results.get("mmd")
    if mmd:
        rows = [
            [
                r["batch_sentences"], r["words"], r["mmd_tokens"], r["la_mmd_s"] * 1e3, r["la_mmd_before_fast_paths_s"] * 1e3, r["crf_l2_s"] * 1e3,
                r["loss_full_s"] * 1e3, r["loss_crf_only_s"] * 1e3, r["step_s"] * 1e3,
                f"{100 * r['transfer_share_of_step']:.1f}%", f"{r['la_mmd_growth']:.1f}x / {r['batch_growth']:.0f}x",
            ]
            for r in mmd["rows"]
        ]  # fmt: skip
        out.append(f"\n## Transfer losses vs batch size (fwd+bwd, cap {mmd['mmd_max_tokens']} tokens per label and domain)")
        out.append(
            format_table(
                ["batch", "words", "mmd tok", "la_mmd ms", "old la_mmd", "crf_l2 ms", "loss ms", "crf-only ms", "step ms", "share", "mmd growth / batch"],
                rows,
            )
        )
    mem = results.get("memory")
    if mem:
        rows = []
        for r in mem["rows"]:
            what = {"import": "import spacy+torch+spacy_ladtl", "train": f"train {r.get('steps', '')} steps ({r.get('examples', '')} examples read)", "annotate": f"annotate {r.get('sentences', '')} sentences (bs {r.get('batch_size', '')})"}[r["kind"]]
            hwm = r.get("vm_hwm_bytes")
            rows.append([SYSTEMS[r["system"]]["label"] if r["kind"] != "import" else "-", what, r["peak_rss_bytes"] / 2**20, hwm / 2**20 if hwm else None, r["seconds"]])
        out.append("\n## Peak resident memory (one subprocess each)")
        out.append(format_table(["system", "run", "peak RSS MiB", "VmHWM MiB", "seconds"], rows))
    summary = results.get("summary", {})
    if summary.get("targets"):
        out.append("\n## Targets")
        rows = []
        for name, t in summary["targets"].items():
            value = t["value"]
            shown = f"{value / 2**20:.0f} MiB" if "RSS" in name else (f"{100 * value:.1f}%" if "%" in name else f"{value:.2f}x")
            rows.append([name, shown, "met" if t["met"] else "MISSED"])
        out.append(format_table(["target", "measured", ""], rows))
    return "\n".join(out)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path("../../shared/data"))
    p.add_argument("--output", type=Path, default=Path("metrics/speed.json"))
    p.add_argument("--text-output", type=Path, default=None, help="also write the tables here (default: OUTPUT with .txt)")
    p.add_argument("--cache-dir", type=Path, default=Path("corpus/bench"))
    p.add_argument("--quick", action="store_true", help="tiny settings (about a minute), for tests")
    p.add_argument("--sections", default="pipeline,crf,mmd,memory")
    p.add_argument("--systems", default=",".join(k for k, v in SYSTEMS.items() if not v.get("optional")),
                   help="default: all but the optional ladtl_trf")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave torch's default)")
    p.add_argument(
        "--omp-passive",
        action="store_true",
        help="re-run under OMP_WAIT_POLICY=PASSIVE (OpenMP threads sleep instead of spinning; see README of the benchmark)",
    )
    p.add_argument("--train-steps", type=int, default=None)
    p.add_argument("--warmup-steps", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None, help="interleaved measurement rounds per system (default 3, quick 2)")
    p.add_argument("--train-batch-size", type=int, default=32, help="sentences per training batch (config default)")
    p.add_argument("--read-limit", type=int, default=None, help="sentences read per domain for training")
    p.add_argument("--infer-words", type=int, default=None)
    p.add_argument("--batch-sizes", default=None, help="nlp.pipe batch sizes, e.g. 32,128,512")
    p.add_argument("--mmd-batch-sizes", default=None)
    p.add_argument("--mem-steps", type=int, default=None)
    p.add_argument("--mem-sentences", type=int, default=None)
    p.add_argument("--mem-batch-size", type=int, default=256, help="nlp.pipe batch size when annotating")
    p.add_argument("--mem-read-limit", type=int, default=None, help="sentences read per domain for the memory run (0 = all)")
    p.add_argument("--mem-systems", default=None, help="default: ladtl,spacy_eff (quick: ladtl)")
    # child mode (memory measurements)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--system", default="ladtl", help=argparse.SUPPRESS)
    p.add_argument("--corpora", default="{}", help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    quick = opts.quick
    defaults = {
        "train_steps": 4 if quick else 40,
        "warmup_steps": 1 if quick else 5,
        "read_limit": 300 if quick else 3000,
        "infer_words": 1500 if quick else 12000,
        "batch_sizes": "32,128" if quick else "32,128,512",
        "mmd_batch_sizes": "16,32" if quick else "16,32,64,128,256,512",
        "mem_steps": 3 if quick else 30,
        "mem_sentences": 300 if quick else 10000,
        "mem_read_limit": 300 if quick else 0,
        "mem_systems": "ladtl" if quick else "ladtl,spacy_eff",
    }
    for key, value in defaults.items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    opts.batch_sizes = [int(x) for x in str(opts.batch_sizes).split(",") if x]
    opts.mmd_batch_sizes = [int(x) for x in str(opts.mmd_batch_sizes).split(",") if x]
    opts.sections = [s for s in opts.sections.split(",") if s]
    opts.systems = [s for s in opts.systems.split(",") if s]
    opts.mem_systems = [s for s in opts.mem_systems.split(",") if s]
    opts.mmd_repeats = 3 if quick else 7
    opts.step_repeats = 1 if quick else 3
    opts.rounds = max(1, min(opts.rounds if opts.rounds else (2 if quick else 3), opts.train_steps))
    return opts


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    opts = parse_args(argv)
    if opts.child:
        child_main(opts)
        return {}
    if opts.omp_passive and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        # must be set before libgomp starts (i.e. before torch is imported): re-exec
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    import torch

    if opts.threads:
        torch.set_num_threads(opts.threads)
    env = environment()
    env["env_vars"] = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    results: Dict[str, Any] = {"environment": env, "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items() if k not in ("child", "system", "corpora")}}
    t0 = time.perf_counter()
    corpora = prepare_corpora(opts.data_dir, opts.cache_dir)
    if "pipeline" in opts.sections:
        infer = inference_sentences(opts.data_dir, opts.infer_words)
        results["pipeline"] = bench_pipelines(opts.systems, corpora, infer, opts)
    if "crf" in opts.sections:
        print("[crf] ...", file=sys.stderr, flush=True)
        from bench_crf import run as run_crf

        results["crf"] = run_crf(quick=opts.quick)
    if "mmd" in opts.sections:
        print("[mmd] ...", file=sys.stderr, flush=True)
        results["mmd"] = bench_mmd(corpora, opts)
    if "memory" in opts.sections:
        print("[memory] ...", file=sys.stderr, flush=True)
        results["memory"] = bench_memory(corpora, opts)
    results["total_seconds"] = time.perf_counter() - t0
    results["load_average_end"] = load_average()
    results["summary"] = summarize(results)
    text = report(results)
    print(text)
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(results, indent=2))
    text_path = opts.text_output or opts.output.with_suffix(".txt")
    text_path.write_text(text + "\n")
    print(f"\nwrote {opts.output} and {text_path} ({results['total_seconds']:.0f} s)", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
