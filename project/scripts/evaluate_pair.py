"""Score a trained pipeline on each domain's test split with that domain's CRF head.

Usage (from project/):
    python scripts/evaluate_pair.py MODEL CORPUS_DIR METRICS_DIR

For each role (target, source) whose ``CORPUS_DIR/<role>_test.spacy`` exists,
writes ``METRICS_DIR/<role>_test.json`` (overall and per-type P/R/F, via
``spacy_ladtl.cli.evaluate.evaluate_domain``) and prints the scores.
"""
import sys
from pathlib import Path

import srsly
from wasabi import msg

from spacy_ladtl.cli.evaluate import evaluate_domain


def main(model: str, corpus_dir: Path, metrics_dir: Path) -> None:
    pair = srsly.read_json(corpus_dir / "pair.json")
    metrics_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for role in ("target", "source"):
        data = corpus_dir / f"{role}_test.spacy"
        domain = pair["domains"][role]["name"]
        if not data.exists():
            msg.warn(f"No test split for the {role} domain {domain!r}: not scored.")
            continue
        scores = evaluate_domain(model, data, domain)
        scores["role"] = role
        srsly.write_json(metrics_dir / f"{role}_test.json", scores)
        rows.append((role, domain, scores["n_docs"], *(f"{100 * scores[k]:.2f}" for k in ("ents_p", "ents_r", "ents_f"))))
        per_type = [(label, f"{100 * s['f']:.2f}") for label, s in sorted(scores["ents_per_type"].items())]
        msg.table(per_type, header=(f"{domain} type", "F"))
    msg.table(rows, header=("role", "domain", "sentences", "P", "R", "F"), divider=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__)
        sys.exit(2)
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
