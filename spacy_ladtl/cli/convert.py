"""``convert``: CoNLL/IOB column files → domain-marked ``.spacy`` DocBins."""
from enum import Enum
from pathlib import Path
from typing import List, NoReturn, Optional, Tuple

import typer
from spacy.tokens import DocBin
from spacy.vocab import Vocab
from wasabi import msg

from ..conll import ConllFormatError, ConversionOptions, ConversionStats, convert_conll_file, parse_label_map
from . import app


class Scheme(str, Enum):
    auto = "auto"
    bio = "bio"
    iob1 = "iob1"
    iobes = "iobes"
    biluo = "biluo"


class EncodingErrors(str, Enum):
    strict = "strict"
    replace = "replace"
    surrogatepass = "surrogatepass"


def fail(message: str) -> NoReturn:
    """Print an unwrapped error (paths stay greppable) to stderr and exit with code 1."""
    typer.secho(f"✘ {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def input_files(input_path: Path) -> List[Path]:
    """The files to convert: ``input_path`` itself, or the visible files of a directory."""
    if input_path.is_dir():
        return sorted(p for p in input_path.iterdir() if p.is_file() and not p.name.startswith("."))
    return [input_path]


def output_file(input_file: Path, output_path: Path, many: bool) -> Path:
    """Where one input's DocBin goes: OUTPUT if it ends in .spacy, else OUTPUT/<stem>.spacy."""
    if not many and output_path.suffix == ".spacy":
        return output_path
    return output_path / f"{input_file.stem}.spacy"


def report(input_file: Path, output: Path, stats: ConversionStats) -> None:
    """Print the counts of one converted file."""
    msg.good(f"{input_file} → {output}")
    split = f" (from {stats.sequences} sequences)" if stats.sequences != stats.sentences else ""
    msg.text(
        f"scheme: {stats.scheme}; sentences: {stats.sentences}{split}; tokens: {stats.tokens}; "
        f"entities: {sum(stats.entities.values())}; repairs: {stats.repairs}"
    )
    if stats.entities:
        rows: List[Tuple[str, int]] = sorted(stats.entities.items(), key=lambda kv: (-kv[1], kv[0]))
        msg.table(rows, header=("type", "entities"), divider=True)
    if stats.repairs:
        msg.warn(f"Repaired {stats.repairs} I-/E- tag(s) that did not continue a chunk (treated as chunk starts).")


@app.command("convert")
def convert_command(
    input_path: Path = typer.Argument(..., exists=True, help="CoNLL/IOB file or directory of files"),
    output_path: Path = typer.Argument(..., help="Output .spacy file, or a directory for <stem>.spacy files"),
    domain: str = typer.Option(..., "--domain", "-d", help="Domain name marked on every Doc (doc._.ladtl_domain)"),
    scheme: Scheme = typer.Option(Scheme.auto, "--scheme", help="Tag scheme; auto detects it per file"),
    outside_tag: str = typer.Option("O", "--outside-tag", help="Tag used for outside tokens (SIGHAN uses N)"),
    label_map: str = typer.Option("", "--label-map", help='Rename types, e.g. "person=PER,location=LOC"; map a type to O to drop it'),
    split_sentences: bool = typer.Option(
        False, "--split-sentences", help="Split sequences after . ! ? tokens (never inside an entity)"
    ),
    max_length: Optional[int] = typer.Option(
        None, "--max-length", min=1, help="Hard-split longer sequences, only between entities"
    ),
    encoding_errors: EncodingErrors = typer.Option(
        EncodingErrors.strict, "--encoding-errors", help="How to handle bytes that are not valid UTF-8"
    ),
    limit: Optional[int] = typer.Option(None, "--limit", min=0, help="Keep at most N sentences per file"),
    token_column: int = typer.Option(0, "--token-column", help="Column index of the token"),
    tag_column: int = typer.Option(-1, "--tag-column", help="Column index of the tag"),
    strip_token_suffix_digit: bool = typer.Option(
        False, "--strip-token-suffix-digit", help="Strip one trailing digit per token (Weibo: 科0 → 科)"
    ),
) -> None:
    """Convert CoNLL/IOB column files to .spacy DocBins with one Doc per sentence."""
    try:
        mapping = parse_label_map(label_map)
    except ValueError as err:
        fail(str(err))
    options = ConversionOptions(
        domain=domain,
        scheme=scheme.value,
        outside_tag=outside_tag,
        label_map=mapping,
        split_sentences=split_sentences,
        max_length=max_length,
        encoding_errors=encoding_errors.value,
        limit=limit,
        token_column=token_column,
        tag_column=tag_column,
        strip_token_suffix_digit=strip_token_suffix_digit,
    )
    files = input_files(input_path)
    if not files:
        fail(f"No files to convert in {input_path}")
    for input_file in files:
        convert_one(input_file, output_file(input_file, output_path, input_path.is_dir()), options)


def convert_one(input_file: Path, output: Path, options: ConversionOptions) -> None:
    """Convert one file, write its DocBin and print its counts; exit 1 on a format error."""
    try:
        docs, stats = convert_conll_file(input_file, options, Vocab())
    except ConllFormatError as err:
        fail(str(err))
    doc_bin = DocBin(store_user_data=True, docs=docs)
    output.parent.mkdir(parents=True, exist_ok=True)
    doc_bin.to_disk(output)
    report(input_file, output, stats)
