"""``subsample``: seeded, exact-count selection and replay from its manifest."""
from pathlib import Path

import pytest
import srsly
from spacy.tokens import Doc, Span
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_ladtl.cli import app
from spacy_ladtl.domains import get_domain, set_domain
from spacy_ladtl.sampling import choose_indices, doc_fingerprint, read_docs, replay, subsample, write_docs

runner = CliRunner()


def make_corpus(path: Path, n: int = 40) -> Path:
    vocab = Vocab()
    docs = []
    for i in range(n):
        doc = Doc(vocab, words=[f"w{i}", "saw", f"x{i}"])
        doc.ents = [Span(doc, 0, 1, label="PER")] if i % 2 else []
        docs.append(set_domain(doc, "target"))
    write_docs(path, docs)
    return path


def test_choose_indices_counts_and_seed():
    assert choose_indices(100, 0.1, 0) == choose_indices(100, 0.1, 0)
    assert len(choose_indices(100, 0.1, 0)) == 10
    assert len(choose_indices(7, 0.01, 0)) == 1  # never empty
    assert choose_indices(5, 1.0, 3) == [0, 1, 2, 3, 4]
    assert choose_indices(100, 0.1, 0) != choose_indices(100, 0.1, 1)
    with pytest.raises(ValueError, match="0.1 for 10%"):
        choose_indices(10, 10, 0)


def test_subsample_cli_and_replay_from_manifest(tmp_path):
    corpus = make_corpus(tmp_path / "train.spacy")
    out, manifest_path = tmp_path / "train10.spacy", tmp_path / "m.json"
    args = ["subsample", str(corpus), str(out), "--rate", "0.25", "--seed", "3", "--manifest", str(manifest_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    kept = read_docs(out)
    manifest = srsly.read_json(manifest_path)
    assert manifest["n_kept"] == len(kept) == 10 and manifest["n_input"] == 40
    assert [doc_fingerprint(d) for d in kept] == manifest["kept_fingerprints"]
    assert all(get_domain(d) == "target" for d in kept)  # the domain marker survives
    # replaying the manifest gives the very same docs
    replayed = tmp_path / "replayed.spacy"
    result = runner.invoke(app, ["subsample", str(corpus), str(replayed), "--from-manifest", str(manifest_path)])
    assert result.exit_code == 0, result.output
    assert [d.text for d in read_docs(replayed)] == [d.text for d in kept]


def test_replay_refuses_a_different_corpus(tmp_path):
    corpus = make_corpus(tmp_path / "a.spacy")
    _, manifest = subsample(corpus, 0.5, 0)
    other = make_corpus(tmp_path / "b.spacy", n=41)
    with pytest.raises(ValueError, match="41 docs"):
        replay(manifest, other)
    docs = read_docs(corpus)
    docs[manifest["kept"][0]] = set_domain(Doc(Vocab(), words=["an", "edited", "sentence"]), "target")
    write_docs(tmp_path / "edited.spacy", docs)
    with pytest.raises(ValueError, match="differ from the manifest"):
        replay(manifest, tmp_path / "edited.spacy")
