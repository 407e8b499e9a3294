"""Print entity P/R/F of several metrics JSON files side by side (La-DTL vs baselines).

Usage: python scripts/show_metrics.py NAME=metrics.json [NAME=metrics.json ...]
Reads the ``ents_p``/``ents_r``/``ents_f`` keys written by ``spacy evaluate`` and
``python -m spacy_ladtl evaluate``.
"""
import sys

import srsly
from wasabi import msg


def main(pairs: list) -> None:
    rows = []
    for pair in pairs:
        name, _, path = pair.partition("=")
        scores = srsly.read_json(path)
        rows.append((name, *(f"{100 * scores[key]:.2f}" for key in ("ents_p", "ents_r", "ents_f")), path))
    msg.divider("Target test, entity-level")
    msg.table(rows, header=("model", "P", "R", "F", "metrics file"), divider=True)


if __name__ == "__main__":
    main(sys.argv[1:])
