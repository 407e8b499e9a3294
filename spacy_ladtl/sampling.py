"""Seeded subsampling of a domain's documents, with a manifest that replays it exactly.

The paper trains on 10/25/50/100% of the target training data. ``choose_indices``
is the one rule for that (the reader's ``sample_rate`` uses it too); a manifest
records the input's checksum and every kept document, so a run can be rebuilt
and checked later.
"""
import hashlib
import random
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

import srsly
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

MANIFEST_FORMAT = "spacy-ladtl.subsample.v1"
PathLike = Union[str, Path]


def choose_indices(n_items: int, rate: float, seed: Union[int, str]) -> List[int]:
    """Sorted indices of ``round(rate * n_items)`` items (at least 1), drawn with ``seed``."""
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate must be a fraction in (0, 1], got {rate} (use 0.1 for 10%).")
    if rate == 1.0 or n_items == 0:
        return list(range(n_items))
    keep = max(1, round(rate * n_items))
    return sorted(random.Random(seed).sample(range(n_items), keep))


def file_sha256(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file_:
        for block in iter(lambda: file_.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def doc_fingerprint(doc: Doc) -> str:
    """A short hash of a doc's tokens and entities (what the manifest checks on replay)."""
    words = "\u241f".join(token.text for token in doc)
    ents = "\u241f".join(f"{e.start}:{e.end}:{e.label_}" for e in doc.ents)
    return hashlib.sha1(f"{words}\u241e{ents}".encode("utf-8")).hexdigest()[:16]


def read_docs(path: PathLike) -> List[Doc]:
    return list(DocBin().from_disk(path).get_docs(Vocab()))


def write_docs(path: PathLike, docs: Sequence[Doc]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    DocBin(store_user_data=True, docs=docs).to_disk(path)


def subsample(input_path: PathLike, rate: float, seed: int) -> Tuple[List[Doc], Dict[str, Any]]:
    """Keep ``rate`` of the docs in ``input_path``; return them and their manifest."""
    docs = read_docs(input_path)
    if not docs:
        raise ValueError(f"{input_path} holds no documents.")
    kept = choose_indices(len(docs), rate, seed)
    chosen = [docs[i] for i in kept]
    manifest = {
        "format": MANIFEST_FORMAT,
        "input": str(input_path),
        "input_sha256": file_sha256(input_path),
        "rate": rate,
        "seed": seed,
        "n_input": len(docs),
        "n_kept": len(kept),
        "n_tokens_kept": sum(len(doc) for doc in chosen),
        "entities_kept": dict(Counter(e.label_ for doc in chosen for e in doc.ents).most_common()),
        "kept": kept,
        "kept_fingerprints": [doc_fingerprint(doc) for doc in chosen],
    }
    return chosen, manifest


def replay(manifest: Dict[str, Any], input_path: PathLike) -> List[Doc]:
    """The docs a manifest kept, read from ``input_path``; raise if they differ."""
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"Not a {MANIFEST_FORMAT} manifest (format = {manifest.get('format')!r}).")
    docs = read_docs(input_path)
    if len(docs) != manifest["n_input"]:
        raise ValueError(
            f"{input_path} has {len(docs)} docs but the manifest was made from {manifest['n_input']} "
            f"({manifest['input']}). Convert the same corpus version first."
        )
    chosen = [docs[i] for i in manifest["kept"]]
    mismatched = [i for i, doc, fp in zip(manifest["kept"], chosen, manifest["kept_fingerprints"]) if doc_fingerprint(doc) != fp]
    if mismatched:
        raise ValueError(
            f"{len(mismatched)} kept doc(s) of {input_path} differ from the manifest (first: doc #{mismatched[0]}). "
            f"The input is not the file the manifest was made from."
        )
    return chosen


def read_manifest(path: PathLike) -> Dict[str, Any]:
    return srsly.read_json(path)
