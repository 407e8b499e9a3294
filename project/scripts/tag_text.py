"""Load an installed pipeline by name, tag one text, print the entities; exit 1 if none come out.

Usage: python scripts/tag_text.py PACKAGE_NAME TEXT
"""
import sys

import spacy


def main(name: str, text: str) -> None:
    nlp = spacy.load(name)
    doc = nlp(text)
    print(f"{name} {nlp.meta.get('version')} (pipeline: {nlp.pipe_names}) on: {text}")
    for ent in doc.ents:
        print(f"  {ent.text!r:40} {ent.label_}")
    if not doc.ents:
        print("✘ no entities came out", file=sys.stderr)
        sys.exit(1)
    print(f"✔ {len(doc.ents)} entities")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2])
