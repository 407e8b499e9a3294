"""The project's corpus catalog and ``scripts/prepare_pair.py`` (catalog -> domain-marked splits)."""
from pathlib import Path

import pytest
import srsly

from spacy_ladtl.domains import get_domain
from spacy_ladtl.sampling import read_docs

from project_scripts import PROJECT, load_script

prepare_pair = load_script("prepare_pair")


def write_catalog(tmp_path: Path, entries: dict) -> Path:
    path = tmp_path / "corpora.yml"
    srsly.write_yaml(path, entries)
    return path


def test_sample_pair_from_the_real_catalog(tmp_path):
    summary = prepare_pair.prepare(PROJECT / "corpora.yml", str(PROJECT / "sample"), "bionlp13pc", "bionlp13cg", tmp_path)
    assert summary["domains"]["target"]["counts"]["train"]["sentences"] == 600
    for name in ("source_train", "source_dev", "source_test", "target_train_full", "target_dev", "target_test"):
        docs = read_docs(tmp_path / f"{name}.spacy")
        assert docs and {get_domain(d) for d in docs} == {"bionlp13pc" if name.startswith("source") else "bionlp13cg"}
    assert srsly.read_json(tmp_path / "pair.json")["domains"]["source"]["license"].startswith("CC BY-SA 3.0")


def test_resplit_is_seeded_and_keeps_whole_sequences(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    # 20 one-"document" sequences of two sentences each, with a nominal type to drop
    blocks = [f"doc{i}\tB-PER.NAM\nsays\tO\n.\tO\nnurse\tB-PER.NOM\nleft\tO\n.\tO\n" for i in range(20)]
    (data / "all.txt").write_text("\n".join(blocks), encoding="utf-8")
    entry = {
        "lang": "en",
        "resplit": {"file": "all.txt", "seed": 1, "sizes": {"train": 0.5, "dev": 5, "test": 5}},
        "convert": {"split_sentences": True, "label_map": "PER.NAM=PER,PER.NOM=O"},
    }
    catalog = write_catalog(tmp_path, {"a": entry, "b": entry})
    prepare_pair.prepare(catalog, str(data), "a", "b", tmp_path / "out")
    train = read_docs(tmp_path / "out" / "target_train_full.spacy")
    dev = read_docs(tmp_path / "out" / "target_dev.spacy")
    assert len(train) == 20 and len(dev) == 10  # 10 and 5 documents, two sentences each
    assert {e.label_ for d in train for e in d.ents} == {"PER"}
    docs_of = lambda docs: {d[0].text for d in docs if d[0].text.startswith("doc")}
    assert not docs_of(train) & docs_of(dev)
    prepare_pair.prepare(catalog, str(data), "a", "b", tmp_path / "again")
    assert [d.text for d in read_docs(tmp_path / "again" / "target_train_full.spacy")] == [d.text for d in train]


def test_bad_catalog_and_data_dir_fail_clearly(tmp_path, capsys):
    catalog = write_catalog(tmp_path, {"a": {"splits": {"train": "x.txt"}}, "b": {"splits": {"train": "x", "dev": "y"}}})
    with pytest.raises(SystemExit):
        prepare_pair.prepare(catalog, str(tmp_path), "a", "b", tmp_path / "out")
    assert "no ['dev'] split" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prepare_pair.prepare(catalog, str(tmp_path), "nope", "b", tmp_path / "out")
    assert "no corpus named 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prepare_pair.prepare(PROJECT / "corpora.yml", str(tmp_path / "missing"), "bionlp13pc", "bionlp13cg", tmp_path / "out")
    assert "data_dir" in capsys.readouterr().err


def test_extra_sources_hold_every_split_less_the_target_dev_and_test_sentences(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("Ann\tB-PER\nleft\tO\n", encoding="utf-8")
    (data / "b_dev.txt").write_text("Bob\tB-person\nstayed\tO\n\nCid\tB-person\nran\tO\n", encoding="utf-8")
    (data / "c_train.txt").write_text("Bob\tB-person\nstayed\tO\n\nDee\tB-person\nsang\tO\n", encoding="utf-8")
    (data / "c_test.txt").write_text("Eve\tB-person\nwrote\tO\n", encoding="utf-8")
    catalog = write_catalog(tmp_path, {
        "a": {"lang": "en", "splits": {"train": "a.txt", "dev": "a.txt"}},
        "b": {"lang": "en", "splits": {"train": "b_dev.txt", "dev": "b_dev.txt"}},
        "c": {"lang": "en", "splits": {"train": "c_train.txt", "dev": "c_test.txt", "test": "c_test.txt"}},
    })
    out = tmp_path / "out"
    prepare_pair.prepare(catalog, str(data), "a", "b", out)
    counts = prepare_pair.prepare_extra_sources(catalog, str(data), ["c"], out)
    docs = read_docs(prepare_pair.extra_source_path(out, "c"))
    # train, dev and test of c, less "Bob stayed" (a target dev sentence)
    assert [d.text for d in docs] == ["Dee sang", "Eve wrote", "Eve wrote"]
    assert {get_domain(d) for d in docs} == {"c"}
    assert counts == {"c": {"sentences": 3, "dropped_as_in_target_dev_or_test": 1}}
