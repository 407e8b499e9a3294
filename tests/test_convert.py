"""Tests for spacy_ladtl.conll and the ``convert`` command."""
from pathlib import Path
from typing import List, Tuple

import pytest
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_ladtl.cli import app
from spacy_ladtl.conll import (
    ConllFormatError,
    ConversionOptions,
    convert_conll_file,
    detect_scheme,
    parse_label_map,
    read_conll,
    segment_sequence,
    tags_to_biluo,
    tags_to_spans,
)
from spacy_ladtl.domains import get_domain

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT / "project" / "sample"
SAMPLE_SIZES = {
    "bionlp13pc/IOB/train.tsv": 600,
    "bionlp13pc/IOB/devel.tsv": 100,
    "bionlp13pc/IOB/test.tsv": 100,
    "bionlp13cg/IOB/train.tsv": 600,
    "bionlp13cg/IOB/devel.tsv": 150,
    "bionlp13cg/IOB/test.tsv": 200,
}

runner = CliRunner()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def ents(doc: Doc, joiner: str = " ") -> List[Tuple[str, str]]:
    return [(joiner.join(t.text for t in ent), ent.label_) for ent in doc.ents]


def convert(path: Path, **kwargs) -> Tuple[List[Doc], object]:
    return convert_conll_file(path, ConversionOptions(domain="test", **kwargs))


def read_docbin(path: Path) -> List[Doc]:
    return list(DocBin().from_disk(path).get_docs(Vocab()))


# --- reading -----------------------------------------------------------------


def test_tab_only_and_repeated_separators_without_final_blank_line(tmp_path: Path) -> None:
    text = "a\tO\nb\tB-X\n\t\nc\tO\n\n\n  \nd\tB-Y\ne\tI-Y"  # no newline at the end
    sentences = list(read_conll(write(tmp_path, "f.tsv", text)))
    assert sentences == [(["a", "b"], ["O", "B-X"]), (["c"], ["O"]), (["d", "e"], ["B-Y", "I-Y"])]


def test_docstart_and_imgid_lines_are_skipped(tmp_path: Path) -> None:
    text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nIMGID:123\nRT\tO\n@bob\tB-PER\n"
    sentences = list(read_conll(write(tmp_path, "f.txt", text)))
    assert sentences == [(["EU", "rejects"], ["B-ORG", "O"]), (["RT", "@bob"], ["O", "B-PER"])]


def test_whitespace_separated_columns_and_custom_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "f.txt", "1 John NNP B-PER\n2 runs VBZ O\n")
    assert list(read_conll(path)) == [(["1", "2"], ["B-PER", "O"])]
    assert list(read_conll(path, token_column=1)) == [(["John", "runs"], ["B-PER", "O"])]


def test_outside_tag_n_is_read_as_o(tmp_path: Path) -> None:
    path = write(tmp_path, "sighan", "我 N\n在 N\n北 B-LOC\n京 I-LOC\n")
    docs, stats = convert(path, outside_tag="N")
    assert ents(docs[0], joiner="") == [("北京", "LOC")]
    with pytest.raises(ConllFormatError, match="invalid tag 'N'"):
        convert(path)


def test_strip_token_suffix_digit(tmp_path: Path) -> None:
    path = write(tmp_path, "weibo", "科0\tB-ORG.NAM\n技1\tI-ORG.NAM\n好0\tO\n")
    docs, _ = convert(path, strip_token_suffix_digit=True)
    assert [t.text for t in docs[0]] == ["科", "技", "好"]
    assert ents(docs[0], joiner="") == [("科技", "ORG.NAM")]


def test_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "f.tsv", "a\tO\n\nb\tO\n\nc\tO\n")
    docs, stats = convert(path, limit=2)
    assert [d[0].text for d in docs] == ["a", "b"] and stats.sentences == 2


# --- tag schemes -----------------------------------------------------------------


def test_detect_scheme() -> None:
    assert detect_scheme([["B-X", "E-X", "S-Y"]]) == "iobes"
    assert detect_scheme([["B-X", "L-X", "U-Y"]]) == "biluo"
    assert detect_scheme([["I-X", "O", "I-Y"]]) == "iob1"
    assert detect_scheme([["B-X", "I-X"], ["O", "I-Y"]]) == "bio"
    assert detect_scheme([["O"]]) == "bio"


def test_iob1_file(tmp_path: Path) -> None:
    path = write(tmp_path, "f.txt", "Peter I-PER\nPaul I-PER\nin O\nNew I-LOC\nYork I-LOC\nBonn I-LOC\n")
    docs, stats = convert(path)
    assert stats.scheme == "iob1" and stats.repairs == 0
    assert ents(docs[0]) == [("Peter Paul", "PER"), ("New York Bonn", "LOC")]


def test_iob1_with_b_tags_is_bio_with_repairs_unless_scheme_given(tmp_path: Path) -> None:
    path = write(tmp_path, "f.txt", "Peter I-PER\nPaul I-PER\nMary B-PER\nin O\nNew I-LOC\nYork I-LOC\n")
    expected = [("Peter Paul", "PER"), ("Mary", "PER"), ("New York", "LOC")]
    docs, stats = convert(path)
    assert (stats.scheme, stats.repairs, ents(docs[0])) == ("bio", 2, expected)
    docs, stats = convert(path, scheme="iob1")
    assert (stats.scheme, stats.repairs, ents(docs[0])) == ("iob1", 0, expected)


def test_iobes_file(tmp_path: Path) -> None:
    path = write(tmp_path, "f.tsv", "New\tB-LOC\nYork\tE-LOC\nand\tO\nParis\tS-LOC\nJo\tS-PER\n")
    docs, stats = convert(path)
    assert stats.scheme == "iobes" and stats.repairs == 0
    assert ents(docs[0]) == [("New York", "LOC"), ("Paris", "LOC"), ("Jo", "PER")]


def test_biluo_tags() -> None:
    spans, repairs = tags_to_spans(["B-X", "I-X", "L-X", "U-Y", "O"], "biluo")
    assert spans == [(0, 3, "X"), (3, 4, "Y")] and repairs == 0


def test_bio_i_without_b_is_repaired_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "f.tsv", "a\tB-X\nb\tO\nc\tI-X\nd\tI-Y\ne\tI-Y\n")
    docs, stats = convert(path)
    assert stats.scheme == "bio" and stats.repairs == 2
    assert ents(docs[0]) == [("a", "X"), ("c", "X"), ("d e", "Y")]
    assert tags_to_biluo(["O", "I-X", "I-X"], "bio") == (["O", "B-X", "L-X"], 1)


def test_label_map() -> None:
    assert parse_label_map(" person=PER, location=LOC ") == {"person": "PER", "location": "LOC"}
    with pytest.raises(ValueError, match="OLD=NEW"):
        parse_label_map("person")


# --- splitting ---------------------------------------------------------------


def test_split_sentences_never_splits_inside_entity(tmp_path: Path) -> None:
    words = "Yahoo ! Inc sued Bob . He left ! Ok".split()
    tags = ["B-ORG", "I-ORG", "I-ORG", "O", "B-PER", "O", "O", "O", "O", "O"]
    path = write(tmp_path, "doc.tsv", "".join(f"{w}\t{t}\n" for w, t in zip(words, tags)))
    docs, stats = convert(path, split_sentences=True)
    assert [d.text for d in docs] == ["Yahoo ! Inc sued Bob .", "He left !", "Ok"]
    assert ents(docs[0]) == [("Yahoo ! Inc", "ORG"), ("Bob", "PER")]
    assert stats.sequences == 1 and stats.sentences == 3 and stats.tokens == len(words)
    assert sum(stats.entities.values()) == 2


def test_max_length_splits_only_between_entities() -> None:
    words = [f"w{i}" for i in range(10)]
    spans = [(2, 5, "X")]
    assert segment_sequence(words, spans, max_length=4) == [(0, 2), (2, 6), (6, 10)]
    assert segment_sequence(words, [(0, 6, "X")], max_length=4) == [(0, 6), (6, 10)]


# --- errors ------------------------------------------------------------------


def test_non_utf8_error_names_file_line_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"ok\tO\n\nfa\xe7ade\tO\n")
    result = runner.invoke(app, ["convert", str(path), str(tmp_path / "out.spacy"), "--domain", "x"])
    assert result.exit_code == 1
    assert f"{path}:3" in result.output and "--encoding-errors replace" in result.output
    result = runner.invoke(
        app, ["convert", str(path), str(tmp_path / "out.spacy"), "--domain", "x", "--encoding-errors", "replace"]
    )
    assert result.exit_code == 0, result.output
    assert read_docbin(tmp_path / "out.spacy")[1][0].text == "fa\ufffdade"


def test_surrogatepass_text_is_reencodable(tmp_path: Path) -> None:
    path = tmp_path / "weibo_v1"
    path.write_bytes("好0\tO\n".encode() + "\ud83d0\tO\n".encode("utf-8", "surrogatepass"))
    with pytest.raises(ConllFormatError, match="weibo_v1:2"):
        convert(path)
    docs, _ = convert(path, encoding_errors="surrogatepass", strip_token_suffix_digit=True)
    assert [t.text for t in docs[0]] == ["好", "\ufffd"]
    docs[0].text.encode("utf-8")


@pytest.mark.parametrize(
    "bad_line,expected",
    [("lonely", "found 1 column"), ("word\tB_PER", "invalid tag 'B_PER'"), ("word\tX-PER", "invalid tag 'X-PER'")],
)
def test_malformed_line_error_names_file_line_and_text(tmp_path: Path, bad_line: str, expected: str) -> None:
    path = write(tmp_path, "f.tsv", f"a\tO\n\nb\tO\n{bad_line}\n")
    with pytest.raises(ConllFormatError) as err:
        convert(path)
    assert f"{path}:4" in str(err.value) and repr(bad_line) in str(err.value) and expected in str(err.value)


def test_malformed_line_cli_exits_nonzero(tmp_path: Path) -> None:
    path = write(tmp_path, "f.tsv", "a\tO\nb c d\tB-\n")
    result = runner.invoke(app, ["convert", str(path), str(tmp_path / "o.spacy"), "-d", "x"])
    assert result.exit_code == 1 and f"{path}:2" in result.output
    assert not (tmp_path / "o.spacy").exists()


# --- CLI round trip ---------------------------------------------------------------


def test_cli_round_trip_with_label_map(tmp_path: Path) -> None:
    text = "Anna\tB-person\nKarenina\tI-person\nlived\tO\nin\tO\nMoscow\tB-location\n\nOk\tO\n"
    path = write(tmp_path, "train.txt", text)
    out = tmp_path / "corpus" / "train.spacy"
    args = ["convert", str(path), str(out), "--domain", "literature", "--label-map", "person=PER,location=LOC"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "sentences: 2" in result.output and "entities: 2" in result.output
    docs = read_docbin(out)
    assert [t.text for t in docs[0]] == ["Anna", "Karenina", "lived", "in", "Moscow"]
    assert [(e.start, e.end, e.label_) for e in docs[0].ents] == [(0, 2, "PER"), (4, 5, "LOC")]
    assert [(e.start_char, e.end_char) for e in docs[0].ents] == [(0, 13), (23, 29)]
    assert len(docs[1].ents) == 0
    assert [get_domain(d) for d in docs] == ["literature", "literature"]


def test_label_map_to_o_drops_the_type(tmp_path: Path) -> None:
    """Weibo's nominal mentions: PER.NOM=O keeps only named mentions."""
    text = "王\tB-PER.NAM\n医\tB-PER.NOM\n生\tI-PER.NOM\n"
    path = write(tmp_path, "weibo.txt", text)
    out = tmp_path / "weibo.spacy"
    result = runner.invoke(app, ["convert", str(path), str(out), "-d", "weibo", "--label-map", "PER.NAM=PER,PER.NOM=O"])
    assert result.exit_code == 0, result.output
    assert "entities: 1" in result.output
    assert [(e.text, e.label_) for e in read_docbin(out)[0].ents] == [("王", "PER")]


def test_cli_directory_input_and_split_sentences(tmp_path: Path) -> None:
    in_dir = tmp_path / "in"
    in_dir.mkdir()
    write(in_dir, "a.conll", "One\tO\n.\tO\nTwo\tB-X\n.\tO\n")
    write(in_dir, "b.conll", "x\tO\n")
    result = runner.invoke(app, ["convert", str(in_dir), str(tmp_path / "out"), "-d", "src", "--split-sentences"])
    assert result.exit_code == 0, result.output
    assert [d.text for d in read_docbin(tmp_path / "out" / "a.spacy")] == ["One .", "Two ."]
    assert len(read_docbin(tmp_path / "out" / "b.spacy")) == 1


# --- embedded sample ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLE_SIZES))
def test_sample_converts(name: str) -> None:
    docs, stats = convert(SAMPLE_DIR / name)
    assert stats.scheme == "bio" and stats.repairs == 0
    assert stats.sentences == SAMPLE_SIZES[name] == len(docs)
    assert sum(stats.entities.values()) > 0
    assert all(len(doc) <= 60 for doc in docs)
