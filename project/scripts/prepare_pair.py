"""Convert a source and a target corpus from the catalog into domain-marked .spacy splits.

Usage (from project/):
    python scripts/prepare_pair.py CATALOG DATA_DIR SOURCE TARGET OUTPUT_DIR

Reads the entries SOURCE and TARGET of CATALOG (``corpora.yml``), converts their
files under DATA_DIR with the package's converter (``python -m spacy_ladtl
convert`` uses the same code), and writes ``source_{train,dev,test}.spacy`` and
``target_{train_full,dev,test}.spacy`` (a missing test split is reported and
skipped) plus ``pair.json`` (catalog entries, counts, data_dir) to OUTPUT_DIR.
The target train split is written whole as ``target_train_full.spacy``; the
``subsample`` step keeps the target sampling rate of it. ``prepare_extra_sources``
adds further source domains (a benchmark pair's ``extra_sources``): every split of
each, as ``extra_<name>.spacy``, less any sentence that is also in the target's
dev or test split.

A relative DATA_DIR is looked up from project/ first, then from the directory
the command was started in (``$PWD``), so ``spacy project run full project/
--vars.data_dir ../shared/data`` works from the repository root.
"""
import os
import random
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, List, NoReturn, Tuple

import srsly
from spacy.tokens import DocBin

from spacy_ladtl.conll import ConllFormatError, ConversionOptions, convert_sequences, parse_label_map, read_sequences
from spacy_ladtl.sampling import read_docs

SPLITS = ("train", "dev", "test")
REQUIRED_SPLITS = ("train", "dev")
OPTION_NAMES = {f.name for f in fields(ConversionOptions)} - {"domain"}
Sequences = List[Tuple[List[str], List[str]]]


def fail(message: str) -> NoReturn:
    """Print an unwrapped error (paths stay greppable) to stderr and exit with code 1."""
    print(f"✘ {message}", file=sys.stderr)
    sys.exit(1)


def resolve_data_dir(data_dir: str) -> Path:
    """``data_dir`` as given, relative to project/ or else to the caller's working directory."""
    path = Path(data_dir)
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, Path(os.environ.get("PWD", ".")) / path]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    fail(
        f"data_dir {data_dir!r} not found (tried {tried}). Point --vars.data_dir at the folder holding the "
        f"corpora (e.g. ../shared/data), or use the embedded sample (data_dir = sample).")


def load_entry(catalog: Dict[str, Any], name: str, catalog_path: Path) -> Dict[str, Any]:
    if name not in catalog:
        fail(f"{catalog_path}: no corpus named {name!r}. Known: {', '.join(sorted(catalog))}.")
    entry = catalog[name]
    unknown = set(entry.get("convert", {})) - OPTION_NAMES
    if unknown:
        fail(f"{catalog_path}: {name}.convert has unknown option(s) {sorted(unknown)}; valid: {sorted(OPTION_NAMES)}.")
    covered = set(entry.get("splits", {})) | set(entry.get("resplit", {}).get("sizes", {}))
    missing = [s for s in REQUIRED_SPLITS if s not in covered]
    if missing:
        fail(f"{catalog_path}: {name} has no {missing} split(s); give them in `splits` or `resplit`.")
    return entry


def conversion_options(name: str, entry: Dict[str, Any]) -> ConversionOptions:
    options = dict(entry.get("convert", {}))
    if isinstance(options.get("label_map"), str):
        options["label_map"] = parse_label_map(options["label_map"])
    return ConversionOptions(domain=name, **options)


def read_file(path: Path, options: ConversionOptions) -> Sequences:
    if not path.is_file():
        fail(f"Corpus file not found: {path}. Check data_dir and the catalog entry.")
    return read_sequences(path, options)


def resplit(sequences: Sequences, sizes: Dict[str, float], seed: int, where: str) -> Dict[str, Sequences]:
    """Cut whole sequences (sentences, or documents before splitting) into seeded splits."""
    order = list(range(len(sequences)))
    random.Random(seed).shuffle(order)
    counts = {s: int(round(n * len(order))) if isinstance(n, float) and n <= 1.0 else int(n) for s, n in sizes.items()}
    if sum(counts.values()) > len(order):
        fail(f"{where}: resplit sizes {counts} exceed the {len(order)} sequences in the file.")
    out, start = {}, 0
    for split, count in counts.items():
        out[split] = [sequences[i] for i in sorted(order[start : start + count])]
        start += count
    return out


def domain_sequences(name: str, entry: Dict[str, Any], data_dir: Path, options: ConversionOptions) -> Dict[str, Sequences]:
    splits: Dict[str, Sequences] = {}
    if "resplit" in entry:
        spec = entry["resplit"]
        sequences = read_file(data_dir / spec["file"], options)
        splits.update(resplit(sequences, spec["sizes"], int(spec.get("seed", 0)), f"{name}.resplit"))
    for split, rel_path in entry.get("splits", {}).items():
        splits[split] = read_file(data_dir / rel_path, options)
    return splits


def prepare(catalog_path: Path, data_dir: str, source: str, target: str, output_dir: Path) -> Dict[str, Any]:
    if source == target:
        fail(f"source and target are both {source!r}; pick two different catalog entries.")
    catalog = srsly.read_yaml(catalog_path)
    root = resolve_data_dir(data_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary: Dict[str, Any] = {"data_dir": str(root), "catalog": str(catalog_path), "domains": {}}
    for role, name in (("source", source), ("target", target)):
        entry = load_entry(catalog, name, catalog_path)
        options = conversion_options(name, entry)
        counts = {}
        for split, sequences in domain_sequences(name, entry, root, options).items():
            docs, stats = convert_sequences(sequences, options, where=f"{name}/{split}")
            file_split = "train_full" if (role, split) == ("target", "train") else split
            out = output_dir / f"{role}_{file_split}.spacy"
            DocBin(store_user_data=True, docs=docs).to_disk(out)
            counts[split] = {"sentences": stats.sentences, "tokens": stats.tokens, "entities": dict(stats.entities.most_common())}
            print(f"✔ {role} {name} {split}: {stats.sentences} sentences, {stats.tokens} tokens, "
                  f"{sum(stats.entities.values())} entities ({stats.scheme}) -> {out}")
        if "test" not in counts:
            print(f"⚠ {role} {name} has no test split: it is trained on but not scored.")
        summary["domains"][role] = {"name": name, **{k: v for k, v in entry.items() if k != "convert"}, "counts": counts}
    srsly.write_json(output_dir / "pair.json", summary)
    print(f"✔ Saved {output_dir / 'pair.json'}")
    return summary


def extra_source_path(output_dir: Path, name: str) -> Path:
    """The DocBin of one extra source domain: all its splits, for training."""
    return output_dir / f"extra_{name}.spacy"


def prepare_extra_sources(catalog_path: Path, data_dir: str, names: List[str], output_dir: Path) -> Dict[str, Any]:
    """Write ``extra_<name>.spacy`` (every split of each catalog entry) next to a prepared pair,
    dropping the sentences whose tokens are also a target dev or test sentence; return the counts."""
    catalog = srsly.read_yaml(catalog_path)
    root = resolve_data_dir(data_dir)
    held_out = set()
    for split in ("dev", "test"):
        path = output_dir / f"target_{split}.spacy"
        if path.exists():
            held_out.update(tuple(t.text for t in doc) for doc in read_docs(path))
    summary: Dict[str, Any] = {}
    for name in names:
        entry = load_entry(catalog, name, catalog_path)
        options = conversion_options(name, entry)
        docs, dropped = [], 0
        for split, sequences in domain_sequences(name, entry, root, options).items():
            kept = [seq for seq in sequences if tuple(seq[0]) not in held_out]
            dropped += len(sequences) - len(kept)
            docs += convert_sequences(kept, options, where=f"{name}/{split}")[0]
        out = extra_source_path(output_dir, name)
        DocBin(store_user_data=True, docs=docs).to_disk(out)
        summary[name] = {"sentences": len(docs), "dropped_as_in_target_dev_or_test": dropped}
        print(f"✔ extra source {name} (all splits): {len(docs)} sentences, {dropped} dropped as target dev/test "
              f"sentences -> {out}")
    return summary


if __name__ == "__main__":
    if len(sys.argv) != 6:
        print(__doc__)
        sys.exit(2)
    catalog_arg, data_dir_arg, source_arg, target_arg, output_arg = sys.argv[1:]
    try:
        prepare(Path(catalog_arg), data_dir_arg, source_arg, target_arg, Path(output_arg))
    except ConllFormatError as err:
        fail(str(err))
