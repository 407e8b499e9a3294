"""Tests for the multi-domain reader, the domain batcher and the scorer."""
from collections import Counter

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example

from spacy_ladtl.batchers import domain_batches
from spacy_ladtl.domains import example_domain, set_domain, set_example_domain
from spacy_ladtl.readers import MultiDomainCorpus
from spacy_ladtl.scorer import ladtl_ner_score


def write_docbin(nlp, path, n, label):
    docs = []
    for i in range(n):
        doc = nlp.make_doc(f"entity{i} is here . Second sentence {i} .")
        doc.ents = [doc.char_span(0, len(f"entity{i}"), label=label)]
        for token in doc:
            token.is_sent_start = token.i == 0 or token.text == "Second"
        docs.append(doc)
    DocBin(docs=docs).to_disk(path)
    return path


@pytest.fixture
def nlp():
    return spacy.blank("en")


def test_reader_marks_domains_and_samples_reproducibly(nlp, tmp_path):
    src = write_docbin(nlp, tmp_path / "s.spacy", 20, "PER")
    tgt = write_docbin(nlp, tmp_path / "t.spacy", 50, "person")
    corpus = MultiDomainCorpus({"source": src, "target": tgt}, sample_rate={"target": 0.1}, seed=3)
    examples = list(corpus(nlp))
    counts = Counter(example_domain(eg) for eg in examples)
    assert counts == {"source": 20, "target": 5}
    for eg in examples:
        assert eg.predicted._.ladtl_domain == eg.reference._.ladtl_domain
    again = [eg.reference.text for eg in corpus(nlp)]
    assert again == [eg.reference.text for eg in examples]
    other_seed = [eg.reference.text for eg in MultiDomainCorpus({"target": tgt}, sample_rate=0.1, seed=4)(nlp)]
    assert other_seed != [eg.reference.text for eg in examples if example_domain(eg) == "target"]


def test_reader_marks_after_max_length_split(nlp, tmp_path):
    src = write_docbin(nlp, tmp_path / "s.spacy", 3, "PER")
    examples = list(MultiDomainCorpus({"source": src}, max_length=6)(nlp))
    assert len(examples) > 3
    assert all(example_domain(eg) == "source" and eg.predicted._.ladtl_domain == "source" for eg in examples)


def test_reader_errors(nlp, tmp_path):
    with pytest.raises(FileNotFoundError, match="target"):
        list(MultiDomainCorpus({"target": tmp_path / "missing.spacy"})(nlp))
    with pytest.raises(ValueError, match="No corpus path"):
        list(MultiDomainCorpus({"source": None})(nlp))
    empty = tmp_path / "empty.spacy"
    DocBin().to_disk(empty)
    with pytest.raises(ValueError, match="no examples"):
        list(MultiDomainCorpus({"source": empty})(nlp))
    with pytest.raises(ValueError, match="sample_rate"):
        MultiDomainCorpus({"source": empty}, sample_rate=0.0)


def make_examples(nlp, domain, n):
    return [set_example_domain(Example(nlp.make_doc(f"{domain} {i}"), nlp.make_doc(f"{domain} {i}")), domain) for i in range(n)]


def test_domain_batcher_puts_every_domain_in_every_batch(nlp):
    examples = make_examples(nlp, "source", 100) + make_examples(nlp, "target", 7)
    batches = list(domain_batches(examples, size=10))
    assert len(batches) == 20  # 100 source / 5 per batch
    for batch in batches:
        assert Counter(example_domain(eg) for eg in batch) == {"source": 5, "target": 5}
    seen_source = Counter(eg.reference.text for b in batches for eg in b if example_domain(eg) == "source")
    assert len(seen_source) == 100 and set(seen_source.values()) == {1}


def test_domain_batcher_shares_and_errors(nlp):
    examples = make_examples(nlp, "source", 40) + make_examples(nlp, "target", 40)
    batches = list(domain_batches(examples, size=10, shares={"source": 0.8, "target": 0.2}))
    assert Counter(example_domain(eg) for eg in batches[0]) == {"source": 8, "target": 2}
    with pytest.raises(ValueError, match="no entry"):
        list(domain_batches(examples, size=10, shares={"source": 1.0}))
    unmarked = [Example(nlp.make_doc("x"), nlp.make_doc("x"))]
    with pytest.raises(ValueError, match="domain marker"):
        list(domain_batches(unmarked, size=4))


def test_scorer_per_domain_and_target_keys(nlp):
    examples = []
    for domain, label, predicted_right in (("source", "PER", True), ("target", "person", False)):
        ref = nlp.make_doc("Alice runs")
        ref.ents = [ref.char_span(0, 5, label=label)]
        pred = nlp.make_doc("Alice runs")
        if predicted_right:
            pred.ents = [pred.char_span(0, 5, label=label)]
        examples.append(set_example_domain(Example(pred, ref), domain))
    scores = ladtl_ner_score(examples, target_domain="target")
    assert scores["ents_f_source"] == 1.0
    assert scores["ents_f_target"] == 0.0
    assert scores["ents_target_f"] == 0.0
    assert scores["ents_f"] == pytest.approx(2 / 3)
    assert "PER" in scores["ents_per_type_source"]
