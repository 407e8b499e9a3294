"""Read CoNLL/IOB column files and turn them into domain-marked spaCy Docs.

The reader copes with the quirks of public NER corpora: whitespace-only or
TAB-only separator lines, ``-DOCSTART-`` and ``IMGID:`` lines, IOB1 / BIO /
IOBES / BILUO tag schemes, BIO files with ``I-`` tags that start a chunk, a
custom outside tag (``N`` in SIGHAN), Weibo's position digits, undecodable
bytes, and one-document-per-sequence corpora that need sentence splitting.
"""
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from .domains import set_domain

SCHEMES = ("auto", "bio", "iob1", "iobes", "biluo")
ENCODING_ERRORS = ("strict", "replace", "surrogatepass")
CHUNK_PREFIXES = frozenset("BIESLU")
SENTENCE_FINAL_TOKENS = frozenset({".", "!", "?"})
SKIPPED_LINE_PREFIXES = ("-DOCSTART-", "IMGID:")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")

PathLike = Union[str, Path]
TokenSpan = Tuple[int, int, str]  # token start, token end (exclusive), label


class ConllFormatError(ValueError):
    """A CoNLL file could not be read; the message names file, line and fix."""


@dataclass
class ConllSentence:
    """One token sequence of a CoNLL file with the line number of each token."""

    words: List[str]
    tags: List[str]
    line_numbers: List[int]


@dataclass
class ConversionStats:
    """Counts reported after converting one file."""

    scheme: str = ""
    sequences: int = 0
    sentences: int = 0
    tokens: int = 0
    repairs: int = 0
    entities: Counter = field(default_factory=Counter)


@dataclass
class ConversionOptions:
    """Everything that controls how a CoNLL file becomes Docs."""

    domain: str
    scheme: str = "auto"
    outside_tag: str = "O"
    label_map: Dict[str, str] = field(default_factory=dict)
    split_sentences: bool = False
    max_length: Optional[int] = None
    encoding_errors: str = "strict"
    limit: Optional[int] = None
    token_column: int = 0
    tag_column: int = -1
    strip_token_suffix_digit: bool = False


# --------------------------------------------------------------------------
# Reading lines and sentences
# --------------------------------------------------------------------------


def decode_line(raw: bytes, path: PathLike, line_number: int, errors: str = "strict") -> str:
    """Decode one raw line as UTF-8; lone surrogates become U+FFFD."""
    if errors not in ENCODING_ERRORS:
        raise ValueError(f"encoding_errors must be one of {ENCODING_ERRORS}, got {errors!r}")
    try:
        text = raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as err:
        raise ConllFormatError(
            f"{path}:{line_number}: cannot decode byte(s) {raw[err.start:err.end]!r} at "
            f"column {err.start + 1} as UTF-8 ({err.reason}). Fix: re-run with "
            f"--encoding-errors replace (or --encoding-errors surrogatepass for "
            f"CESU-8 / UTF-16 surrogate halves, as in Weibo v1)."
        ) from None
    return LONE_SURROGATE.sub("\ufffd", text)


def iter_decoded_lines(path: PathLike, encoding_errors: str = "strict") -> Iterator[Tuple[int, str]]:
    """Yield (1-based line number, text without line ending) for every line of ``path``."""
    with open(path, "rb") as file_:
        for line_number, raw in enumerate(file_, start=1):
            text = decode_line(raw.rstrip(b"\r\n"), path, line_number, encoding_errors)
            if line_number == 1:
                text = text.lstrip("\ufeff")
            yield line_number, text


def split_columns(line: str) -> List[str]:
    """Split a token line on TABs if it has any, else on whitespace."""
    if "\t" in line:
        fields = line.split("\t")
        while fields and fields[-1].strip() == "":
            fields.pop()
        return fields
    return line.split()


def is_separator_line(line: str) -> bool:
    """True for empty, whitespace-only or TAB-only lines."""
    return line.strip() == ""


def is_skipped_line(line: str) -> bool:
    """True for ``-DOCSTART-`` and ``IMGID:`` lines, which are not tokens."""
    return line.lstrip().startswith(SKIPPED_LINE_PREFIXES)


def strip_suffix_digit(token: str) -> str:
    """Strip one trailing digit (Weibo's word-position marker: ``科0`` → ``科``)."""
    if len(token) > 1 and token[-1] in "0123456789":
        return token[:-1]
    return token


def is_valid_tag(tag: str) -> bool:
    """True for ``O`` or ``PREFIX-TYPE`` with a known chunk prefix."""
    if tag == "O":
        return True
    prefix, sep, label = tag.partition("-")
    return bool(sep) and prefix in CHUNK_PREFIXES and label != ""


def parse_token_line(
    line: str,
    path: PathLike,
    line_number: int,
    token_column: int = 0,
    tag_column: int = -1,
    outside_tag: str = "O",
) -> Tuple[str, str]:
    """Return (token, tag) of one token line; the outside tag is normalised to ``O``."""
    fields = split_columns(line)
    if len(fields) < 2:
        raise ConllFormatError(
            f"{path}:{line_number}: expected a token and a tag column, found "
            f"{len(fields)} column(s) in line {line!r}. Fix the line or separate "
            f"sentences with an empty line."
        )
    try:
        token, tag = fields[token_column], fields[tag_column].strip()
    except IndexError:
        raise ConllFormatError(
            f"{path}:{line_number}: line {line!r} has {len(fields)} columns; "
            f"--token-column {token_column} / --tag-column {tag_column} is out of range."
        ) from None
    if token == "":
        raise ConllFormatError(f"{path}:{line_number}: empty token in line {line!r}.")
    if tag == outside_tag:
        tag = "O"
    if not is_valid_tag(tag):
        raise ConllFormatError(
            f"{path}:{line_number}: invalid tag {tag!r} in line {line!r}. A tag must be "
            f"the outside tag {outside_tag!r} (see --outside-tag) or PREFIX-TYPE with "
            f"prefix B, I, E, S, L or U (check --tag-column)."
        )
    return token, tag


def iter_conll_sentences(
    path: PathLike,
    *,
    token_column: int = 0,
    tag_column: int = -1,
    outside_tag: str = "O",
    encoding_errors: str = "strict",
    strip_token_suffix_digit: bool = False,
) -> Iterator[ConllSentence]:
    """Yield the token sequences of ``path`` with their line numbers."""
    sentence = ConllSentence([], [], [])
    for line_number, line in iter_decoded_lines(path, encoding_errors):
        if is_separator_line(line) or is_skipped_line(line):
            if sentence.words:
                yield sentence
                sentence = ConllSentence([], [], [])
            continue
        token, tag = parse_token_line(line, path, line_number, token_column, tag_column, outside_tag)
        if strip_token_suffix_digit:
            token = strip_suffix_digit(token)
        sentence.words.append(token)
        sentence.tags.append(tag)
        sentence.line_numbers.append(line_number)
    if sentence.words:
        yield sentence


def read_conll(
    path: PathLike,
    *,
    token_column: int = 0,
    tag_column: int = -1,
    outside_tag: str = "O",
    encoding_errors: str = "strict",
    strip_token_suffix_digit: bool = False,
) -> Iterator[Tuple[List[str], List[str]]]:
    """Yield (words, tags) per sequence of a CoNLL/IOB column file."""
    for sentence in iter_conll_sentences(
        path,
        token_column=token_column,
        tag_column=tag_column,
        outside_tag=outside_tag,
        encoding_errors=encoding_errors,
        strip_token_suffix_digit=strip_token_suffix_digit,
    ):
        yield sentence.words, sentence.tags


# --------------------------------------------------------------------------
# Tag schemes
# --------------------------------------------------------------------------


def split_tag(tag: str) -> Tuple[str, Optional[str]]:
    """``B-PER`` → (``B``, ``PER``); ``O`` → (``O``, None)."""
    if tag == "O":
        return "O", None
    prefix, _, label = tag.partition("-")
    return prefix, label


def detect_scheme(tag_sequences: Iterable[Sequence[str]]) -> str:
    """Guess the tag scheme: iobes, biluo, iob1 (I- chunks and no B- at all) or bio."""
    prefixes = {split_tag(tag)[0] for tags in tag_sequences for tag in tags}
    if prefixes & {"E", "S"}:
        return "iobes"
    if prefixes & {"L", "U"}:
        return "biluo"
    if "I" in prefixes and "B" not in prefixes:
        return "iob1"
    return "bio"


def tags_to_spans(tags: Sequence[str], scheme: str) -> Tuple[List[TokenSpan], int]:
    """Return the entity chunks of ``tags`` and how many ill-formed tags were repaired.

    Repairs: under BIO / IOBES / BILUO an ``I-`` (or ``E-``/``L-``) that does not
    continue a chunk of its type starts a new chunk (an ``E-``/``L-`` one becomes
    a single-token chunk). Under IOB1 an ``I-`` starting a chunk is legal.
    """
    if scheme not in SCHEMES or scheme == "auto":
        raise ValueError(f"scheme must be one of bio, iob1, iobes, biluo; got {scheme!r}")
    to_iobes = {"L": "E", "U": "S"} if scheme == "biluo" else {}
    spans: List[TokenSpan] = []
    repairs = 0
    start: Optional[int] = None
    label: Optional[str] = None

    def close(end: int) -> None:
        nonlocal start, label
        if start is not None and label is not None:
            spans.append((start, end, label))
        start, label = None, None

    for i, tag in enumerate(tags):
        prefix, tag_label = split_tag(tag)
        prefix = to_iobes.get(prefix, prefix)
        continues = start is not None and label == tag_label
        if scheme in ("bio", "iob1") and prefix in ("E", "S"):
            raise ValueError(f"tag {tag!r} is not valid in the {scheme} scheme")
        if prefix == "O":
            close(i)
        elif prefix in ("B", "S"):
            close(i)
            start, label = i, tag_label
            if prefix == "S":
                close(i + 1)
        elif prefix == "I":
            if not continues:
                repairs += scheme != "iob1"
                close(i)
                start, label = i, tag_label
        elif prefix == "E":
            if not continues:
                repairs += 1
                close(i)
                start, label = i, tag_label
            close(i + 1)
    close(len(tags))
    return spans, repairs


def spans_to_biluo(length: int, spans: Iterable[TokenSpan]) -> List[str]:
    """Write token spans as BILUO tags."""
    biluo = ["O"] * length
    for start, end, label in spans:
        if end - start == 1:
            biluo[start] = f"U-{label}"
            continue
        biluo[start] = f"B-{label}"
        for i in range(start + 1, end - 1):
            biluo[i] = f"I-{label}"
        biluo[end - 1] = f"L-{label}"
    return biluo


def tags_to_biluo(tags: Sequence[str], scheme: str) -> Tuple[List[str], int]:
    """Convert ``tags`` in ``scheme`` to BILUO; also return the number of repairs."""
    spans, repairs = tags_to_spans(tags, scheme)
    return spans_to_biluo(len(tags), spans), repairs


def parse_label_map(text: str) -> Dict[str, str]:
    """Parse ``"person=PER,location=LOC"`` into a dict."""
    mapping: Dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        old, sep, new = (s.strip() for s in item.partition("="))
        if not sep or not old or not new:
            raise ValueError(f"Invalid --label-map entry {item!r}: expected OLD=NEW, e.g. person=PER")
        mapping[old] = new
    return mapping


def rename_labels(spans: Iterable[TokenSpan], label_map: Dict[str, str]) -> List[TokenSpan]:
    """Rename span labels with ``label_map``; unmapped labels are kept, those mapped to O dropped."""
    renamed = ((start, end, label_map.get(label, label)) for start, end, label in spans)
    return [span for span in renamed if span[2] != "O"]


# --------------------------------------------------------------------------
# Splitting long sequences
# --------------------------------------------------------------------------


def inside_entity_boundaries(spans: Iterable[TokenSpan]) -> set:
    """Token indices ``b`` where a split before ``b`` would cut an entity."""
    return {b for start, end, _ in spans for b in range(start + 1, end)}


def sentence_boundaries(words: Sequence[str], spans: Iterable[TokenSpan]) -> List[int]:
    """Split points after sentence-final tokens that do not cut an entity."""
    blocked = inside_entity_boundaries(spans)
    return [
        i + 1
        for i, word in enumerate(words[:-1])
        if word in SENTENCE_FINAL_TOKENS and (i + 1) not in blocked
    ]


def hard_split(start: int, end: int, max_length: int, blocked: set) -> List[Tuple[int, int]]:
    """Cut [start, end) into pieces of at most ``max_length`` tokens, never inside an entity.

    A piece is longer than ``max_length`` only when an entity crosses the whole window.
    """
    pieces: List[Tuple[int, int]] = []
    while end - start > max_length:
        cut = next((b for b in range(start + max_length, start, -1) if b not in blocked), None)
        if cut is None:
            cut = next((b for b in range(start + max_length + 1, end) if b not in blocked), end)
        pieces.append((start, cut))
        start = cut
    if start < end:
        pieces.append((start, end))
    return pieces


def segment_sequence(
    words: Sequence[str],
    spans: Sequence[TokenSpan],
    split_sentences: bool = False,
    max_length: Optional[int] = None,
) -> List[Tuple[int, int]]:
    """Token ranges that a sequence is cut into (one range if nothing is split)."""
    cuts = sentence_boundaries(words, spans) if split_sentences else []
    edges = [0, *cuts, len(words)]
    ranges = [(a, b) for a, b in zip(edges, edges[1:]) if b > a]
    if max_length is None:
        return ranges
    if max_length < 1:
        raise ValueError(f"max_length must be positive, got {max_length}")
    blocked = inside_entity_boundaries(spans)
    return [piece for a, b in ranges for piece in hard_split(a, b, max_length, blocked)]


# --------------------------------------------------------------------------
# Docs
# --------------------------------------------------------------------------


def make_doc(vocab: Vocab, words: Sequence[str], spans: Iterable[TokenSpan], domain: Optional[str]) -> Doc:
    """A Doc with ``words``, entities from token ``spans`` and the domain marker."""
    spaces = [True] * (len(words) - 1) + [False]  # no trailing space after the last token
    doc = Doc(vocab, words=list(words), spaces=spaces)
    doc.ents = [Span(doc, start, end, label=label) for start, end, label in spans]
    set_domain(doc, domain)
    return doc


def slice_spans(spans: Iterable[TokenSpan], start: int, end: int) -> List[TokenSpan]:
    """Spans inside token range [start, end), re-based to start at 0."""
    return [(s - start, e - start, label) for s, e, label in spans if s >= start and e <= end]


def sentences_to_docs(
    vocab: Vocab,
    sentences: Iterable[Tuple[Sequence[str], Sequence[str]]],
    options: ConversionOptions,
    stats: Optional[ConversionStats] = None,
) -> Iterator[Doc]:
    """Turn (words, tags) sequences into domain-marked Docs, counting into ``stats``.

    ``options.scheme`` must be resolved (not ``auto``); see :func:`detect_scheme`.
    """
    stats = stats if stats is not None else ConversionStats(scheme=options.scheme)
    for words, tags in sentences:
        spans, repairs = tags_to_spans(tags, options.scheme)
        spans = rename_labels(spans, options.label_map)
        stats.sequences += 1
        stats.repairs += repairs
        for start, end in segment_sequence(words, spans, options.split_sentences, options.max_length):
            if options.limit is not None and stats.sentences >= options.limit:
                return
            piece_spans = slice_spans(spans, start, end)
            stats.sentences += 1
            stats.tokens += end - start
            stats.entities.update(label for _, _, label in piece_spans)
            yield make_doc(vocab, words[start:end], piece_spans, options.domain)


def convert_conll_file(
    path: PathLike, options: ConversionOptions, vocab: Optional[Vocab] = None
) -> Tuple[List[Doc], ConversionStats]:
    """Read ``path`` and return its Docs and counts (the scheme is detected if ``auto``)."""
    return convert_sequences(read_sequences(path, options), options, vocab, where=str(path))


def read_sequences(path: PathLike, options: ConversionOptions) -> List[Tuple[List[str], List[str]]]:
    """All (words, tags) sequences of ``path``, read with ``options``' column and encoding settings."""
    return list(
        read_conll(
            path,
            token_column=options.token_column,
            tag_column=options.tag_column,
            outside_tag=options.outside_tag,
            encoding_errors=options.encoding_errors,
            strip_token_suffix_digit=options.strip_token_suffix_digit,
        )
    )


def convert_sequences(
    sequences: Sequence[Tuple[Sequence[str], Sequence[str]]],
    options: ConversionOptions,
    vocab: Optional[Vocab] = None,
    where: str = "<sequences>",
) -> Tuple[List[Doc], ConversionStats]:
    """Turn (words, tags) sequences into Docs and counts; ``where`` names them in errors."""
    if options.scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {options.scheme!r}")
    scheme = options.scheme
    if scheme == "auto":
        scheme = detect_scheme(tags for _, tags in sequences)
    resolved = replace(options, scheme=scheme)
    stats = ConversionStats(scheme=scheme)
    try:
        docs = list(sentences_to_docs(vocab or Vocab(), sequences, resolved, stats))
    except ValueError as err:
        raise ConllFormatError(f"{where}: {err}. Fix: pass the right --scheme.") from None
    return docs, stats
