"""Cut the small two-domain sample in project/sample/ from the BioNLP13 PC and CG corpora.

Source domain: BioNLP13PC (Pathway Curation); target domain: BioNLP13CG (Cancer
Genetics), both the BIO (``IOB/*.tsv``) files of the cambridgeltl/MTL-Bioinformatics-2016
conversion. Sentences are drawn at random with a fixed seed, ~80% of them with at
least one entity, none longer than 60 tokens, and written as ``token<TAB>tag``
with one blank line after each sentence, under the same relative paths as in
``../shared/data`` (``<corpus>/IOB/<split>.tsv``), so the project's corpus
catalog reads the sample and the full data alike. Also writes README.md
(attribution, licence, command, counts) and copies the corpus LICENSE files.

Usage (from the repository root):
    python project/scripts/make_sample.py [--data-dir ../shared/data] [--seed 0]
"""
import argparse
import random
import shutil
from collections import Counter
from pathlib import Path
from typing import List, NamedTuple, Sequence, Tuple

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT / ".." / "shared" / "data"
DEFAULT_OUTPUT_DIR = REPO_ROOT / "project" / "sample"
MAX_TOKENS = 60
ENTITY_SHARE = 0.8

Sentence = List[Tuple[str, str]]


class Cut(NamedTuple):
    """One sample file: how many sentences to take from which corpus split."""

    corpus: str
    split: str
    size: int

    @property
    def path(self) -> Path:
        """Relative path, the same in ``../shared/data`` and in the sample."""
        return Path(self.corpus) / "IOB" / self.split


CUTS: Sequence[Cut] = (
    Cut("bionlp13pc", "train.tsv", 600),
    Cut("bionlp13pc", "devel.tsv", 100),
    Cut("bionlp13pc", "test.tsv", 100),
    Cut("bionlp13cg", "train.tsv", 600),
    Cut("bionlp13cg", "devel.tsv", 150),
    Cut("bionlp13cg", "test.tsv", 200),
)


def read_sentences(path: Path) -> List[Sentence]:
    """Read a token<TAB>tag file into sentences separated by blank lines."""
    sentences: List[Sentence] = []
    current: Sentence = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() == "":
            if current:
                sentences.append(current)
                current = []
            continue
        fields = line.split("\t")
        current.append((fields[0], fields[-1]))
    if current:
        sentences.append(current)
    return sentences


def has_entity(sentence: Sentence) -> bool:
    """True if any token of ``sentence`` is tagged as part of an entity."""
    return any(tag != "O" for _, tag in sentence)


def pick_sentences(sentences: List[Sentence], size: int, seed: int) -> List[Sentence]:
    """Pick ``size`` sentences (~80% with entities, at most 60 tokens), kept in file order."""
    rng = random.Random(seed)
    candidates = [i for i, s in enumerate(sentences) if len(s) <= MAX_TOKENS]
    with_entities = [i for i in candidates if has_entity(sentences[i])]
    without_entities = [i for i in candidates if not has_entity(sentences[i])]
    n_without = min(len(without_entities), size - round(size * ENTITY_SHARE))
    n_with = size - n_without
    if n_with > len(with_entities):
        raise ValueError(f"only {len(with_entities)} sentences with entities, need {n_with}")
    picked = rng.sample(with_entities, n_with) + rng.sample(without_entities, n_without)
    return [sentences[i] for i in sorted(picked)]


def write_sentences(path: Path, sentences: Sequence[Sentence]) -> None:
    """Write sentences as token<TAB>tag lines, each sentence followed by a blank line."""
    blocks = ["".join(f"{token}\t{tag}\n" for token, tag in sentence) for sentence in sentences]
    path.write_text("\n".join(blocks) + "\n", encoding="utf-8")


def entity_counts(sentences: Sequence[Sentence]) -> Counter:
    """Count entities (B- tags; the files are BIO with no I-without-B) per type."""
    return Counter(tag[2:] for sentence in sentences for _, tag in sentence if tag.startswith("B-"))


def counts_row(path: str, sentences: Sequence[Sentence]) -> str:
    """A Markdown table row with sentence, token and per-type entity counts."""
    entities = entity_counts(sentences)
    per_type = ", ".join(f"{label} {n}" for label, n in sorted(entities.items(), key=lambda kv: (-kv[1], kv[0])))
    tokens = sum(len(s) for s in sentences)
    return f"| `{path}` | {len(sentences)} | {tokens} | {sum(entities.values())} | {per_type} |"


README_TEMPLATE = """# Embedded BioNLP13 PC → CG sample

A small two-domain NER sample for the demo project and the tests, so that nothing
has to be downloaded at run time. Source domain: BioNLP13PC; target domain: BioNLP13CG.

## Origin

- BioNLP Shared Task 2013 **Pathway Curation (PC)** and **Cancer Genetics (CG)** corpora,
  physical-entity annotations only, as converted to BIO (`token<TAB>tag`) by
  [cambridgeltl/MTL-Bioinformatics-2016](https://github.com/cambridgeltl/MTL-Bioinformatics-2016)
  (`data/BioNLP13PC-IOB/`, `data/BioNLP13CG-IOB/`, commit `df0df02fae6dbb87d88ffcf323b9096528f06f84`).
- The texts are PubMed abstracts.

## Licence

- **Annotations:** Creative Commons Attribution-ShareAlike 3.0 Unported
  ([CC BY-SA 3.0](http://creativecommons.org/licenses/by-sa/3.0/)), copyright
  NaCTeM and KISTI (PC) and NaCTeM (CG). See `bionlp13pc/LICENSE` and `bionlp13cg/LICENSE`,
  the corpora's own LICENSE files, copied unchanged.
- **Text:** the abstracts come from PubMed(R) (U.S. National Library of Medicine); their
  use and distribution is subject to the PubMed/NLM terms stated in those LICENSE files.
- **This sample** is a derivative work (a random cut of whole sentences; tokens and tags
  unchanged) and is shared under the same **CC BY-SA 3.0** licence.

## How it was made

```
{command}
```

Random sentences per file with `random.Random({seed})`; about 80% of the picks have at least
one entity; sentences longer than {max_tokens} tokens are skipped; picked sentences keep
their original order. Format: `token<TAB>tag`, BIO, one blank line after each sentence.
Each file sits at the same relative path as the file it was cut from in `../shared/data`
(`<corpus>/IOB/<split>.tsv`), so the project's `corpora.yml` reads either folder
(`data_dir = sample` by default).

## Counts

| file (cut from the file of the same path) | sentences | tokens | entities | per type |
|---|---|---|---|---|
{rows}
"""


def write_readme(output_dir: Path, rows: List[str], seed: int, command: str) -> None:
    """Write README.md with attribution, licence, the command and the counts."""
    text = README_TEMPLATE.format(command=command, seed=seed, max_tokens=MAX_TOKENS, rows="\n".join(rows))
    (output_dir / "README.md").write_text(text, encoding="utf-8")


def copy_licenses(data_dir: Path, output_dir: Path) -> None:
    """Copy each corpus LICENSE to <corpus>/LICENSE."""
    for corpus in sorted({cut.corpus for cut in CUTS}):
        shutil.copyfile(data_dir / corpus / "LICENSE", output_dir / corpus / "LICENSE")


def make_sample(data_dir: Path, output_dir: Path, seed: int) -> List[str]:
    """Write every sample file; return the README count rows."""
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for cut in CUTS:
        picked = pick_sentences(read_sentences(data_dir / cut.path), cut.size, seed)
        (output_dir / cut.path).parent.mkdir(parents=True, exist_ok=True)
        write_sentences(output_dir / cut.path, picked)
        rows.append(counts_row(cut.path.as_posix(), picked))
    copy_licenses(data_dir, output_dir)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder with bionlp13pc/ and bionlp13cg/")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="where the sample is written")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()
    rows = make_sample(args.data_dir, args.output_dir, args.seed)
    command = "python project/scripts/make_sample.py --data-dir ../shared/data --seed {}".format(args.seed)
    write_readme(args.output_dir, rows, args.seed, command)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
