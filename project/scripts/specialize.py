"""Turn a trained multi-domain pipeline into one specialty's pipeline, ready for ``spacy package``.

Usage (from project/):
    python scripts/specialize.py MODEL CORPUS_DIR METRICS_DIR ROLE OUTPUT_DIR VERSION [NAME]

ROLE is ``source`` or ``target``; its domain (from ``CORPUS_DIR/pair.json``)
becomes the pipeline's ``default_domain``, so plain ``nlp(text)`` uses that
specialty's CRF head, while the other heads stay reachable through
``doc._.ladtl_domain``. The meta gets the name NAME (default ``ladtl_<domain>``), VERSION, a
description, the corpora with their origin and licence, the domain's test
scores (``METRICS_DIR/<role>_test.json``) and a requirement on spacy-ladtl, whose
entry points let ``spacy.load`` find the ``ladtl_ner`` factory.
"""
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import spacy
import srsly
from wasabi import msg

import spacy_ladtl


def performance(metrics_path: Path) -> Dict[str, Any]:
    if not metrics_path.exists():
        msg.warn(f"{metrics_path} not found: the meta gets no test scores.")
        return {}
    scores = srsly.read_json(metrics_path)
    keys = ("ents_p", "ents_r", "ents_f", "ents_per_type")
    return {**{k: scores[k] for k in keys}, "test_data": scores["data"], "test_sentences": scores["n_docs"]}


def source_entry(domain: Dict[str, Any]) -> Dict[str, str]:
    """A meta.json ``sources`` item; the catalog's ``origin`` is "URL (details)"."""
    url, _, details = domain.get("origin", "").partition(" ")
    return {"name": domain["name"], "url": url, "license": domain.get("license", ""), "description": f"{domain.get('description', '')} {details}".strip()}


def licenses_text(pair: Dict[str, Any]) -> str:
    """LICENSES_SOURCES: the corpora the pipeline was trained on and their licences."""
    lines = ["This pipeline's weights were trained on the following corpora.", ""]
    for role, d in pair["domains"].items():
        lines += [f"{d['name']} ({role} domain): {d.get('description', '')}", f"  origin:  {d.get('origin', '')}", f"  licence: {d.get('license', '')}", ""]
    return "\n".join(lines)


def specialize(model: Path, corpus_dir: Path, metrics_dir: Path, role: str, output_dir: Path, version: str, name: Optional[str] = None) -> None:
    pair = srsly.read_json(corpus_dir / "pair.json")
    if role not in pair["domains"]:
        msg.fail(f"ROLE must be one of {sorted(pair['domains'])}, got {role!r}.", exits=1)
    domain = pair["domains"][role]["name"]
    other_roles = [r for r in pair["domains"] if r != role]
    nlp = spacy.load(model, config={"components": {"ladtl_ner": {"default_domain": domain}}})
    ner = nlp.get_pipe("ladtl_ner")
    entry = pair["domains"][role]
    others = ", ".join(pair["domains"][r]["name"] for r in other_roles)
    encoder = "transformer encoder" if "transformer" in nlp.pipe_names else "shared BiLSTM encoder"
    nlp.meta.update(
        {
            "name": name or f"ladtl_{domain}",
            "version": version,
            "description": (
                f"La-DTL named-entity recognizer for {domain}: {entry['description']}. Trained with "
                f"spacy-ladtl ({encoder}, one CRF per domain, La-MMD + CRF-L2 transfer) on "
                f"{pair['domains']['source']['name']} -> {pair['domains']['target']['name']}. "
                f"Unmarked docs use the {domain} head; set doc._.ladtl_domain to use another ({others})."
            ),
            "license": entry.get("license", ""),
            "sources": [source_entry(d) for d in pair["domains"].values()],
            "performance": performance(metrics_dir / f"{role}_test.json"),
            "labels": {"ladtl_ner": list(ner.cfg["labels"][domain])},
            "requirements": [f"spacy-ladtl>={spacy_ladtl.__version__}"],
            "spacy_ladtl": {"default_domain": domain, "domains": ner.domains, "labels": ner.label_data},
        }
    )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output_dir)
    (output_dir / "LICENSES_SOURCES").write_text(licenses_text(pair), encoding="utf-8")
    msg.good(f"Saved the {domain} pipeline (default head {domain!r}) to {output_dir}")


if __name__ == "__main__":
    if len(sys.argv) not in (7, 8):
        print(__doc__)
        sys.exit(2)
    model_arg, corpus_arg, metrics_arg, role_arg, output_arg, version_arg = sys.argv[1:7]
    name_arg = sys.argv[7] if len(sys.argv) == 8 else None
    specialize(Path(model_arg), Path(corpus_arg), Path(metrics_arg), role_arg, Path(output_arg), version_arg, name_arg)
