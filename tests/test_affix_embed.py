"""spacy-ladtl.CharacterAffixEmbed.v1: word + character embedding plus hashed PREFIX, SUFFIX and SHAPE."""
import pytest
import spacy
from spacy.training import Example
from spacy.util import registry
from thinc.api import fix_random_seed

from spacy_ladtl.domains import set_domain, set_example_domain

SOURCE_DATA = [
    ("Alice visited Paris last May .", [(0, 5, "PER"), (14, 19, "LOC")]),
    ("Bob lives in London now .", [(0, 3, "PER"), (13, 19, "LOC")]),
]
TARGET_DATA = [
    ("Dr Smith saw the patient in Boston", [(0, 8, "person"), (28, 34, "location")]),
    ("Nurse Jones called from Denver", [(0, 11, "person"), (24, 30, "location")]),
]
EMBED = {"@architectures": "spacy-ladtl.CharacterAffixEmbed.v1", "width": 32, "rows": 500, "nM": 8, "nC": 4}
MODEL = {
    "tok2vec": {
        "embed": EMBED,
        "encode": {"@architectures": "spacy-ladtl.BiLSTMEncoder.v1", "width": 32, "hidden_size": 16, "dropout": 0.0},
    }
}


def _entities(docs):
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs]


def test_embed_gives_width_per_token_and_hashes_each_attribute():
    build = registry.architectures.get("spacy-ladtl.CharacterAffixEmbed.v1")
    model = build(width=16, rows=100, nM=4, nC=3, affix_attrs=["PREFIX", "SHAPE"], affix_rows=[50, 60])
    nlp = spacy.blank("en")
    docs = [nlp.make_doc("Alice visited Paris"), nlp.make_doc("ok")]
    model.initialize(X=docs)
    vectors = model.predict(docs)
    assert [v.shape for v in vectors] == [(3, 16), (1, 16)]
    # the word (LOWER) table of CharacterEmbed plus one table per affix attribute
    tables = sorted(node.get_dim("nV") for node in model.walk() if node.name == "hashembed")
    assert tables == [50, 60, 100]
    # dropout only where spacy.CharacterEmbed.v2 and spacy.MultiHashEmbed.v2 have it (one each):
    # spaCy sets every Dropout to [training] dropout, so an extra one would regularise twice
    assert sum(node.name == "dropout" for node in model.walk()) == 2


@pytest.mark.parametrize(
    "attrs,rows,message",
    [([], [], "affix_attrs .* is empty"), (["PREFIX", "SUFFIX"], [10], "2 affix_attrs .* but 1 affix_rows")],
)
def test_embed_rejects_bad_affix_settings(attrs, rows, message):
    build = registry.architectures.get("spacy-ladtl.CharacterAffixEmbed.v1")
    with pytest.raises(ValueError, match=message):
        build(width=8, rows=10, nM=2, nC=2, affix_attrs=attrs, affix_rows=rows)


def test_ladtl_ner_with_affix_embed_overfits_and_round_trips(tmp_path):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("ladtl_ner", config={"model": MODEL, "label_map": {"person": "PER", "location": "LOC"}})
    examples = []
    for domain, data in (("source", SOURCE_DATA), ("target", TARGET_DATA)):
        for text, ents in data:
            examples.append(set_example_domain(Example.from_dict(nlp.make_doc(text), {"entities": ents}), domain))
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01
    for _ in range(60):
        losses = nlp.update(examples, sgd=optimizer)
    assert losses["ladtl_ner"] < 0.1
    texts = [t for t, _ in SOURCE_DATA + TARGET_DATA]
    domains = ["source"] * len(SOURCE_DATA) + ["target"] * len(TARGET_DATA)
    gold = [ents for _, ents in SOURCE_DATA + TARGET_DATA]
    docs = [nlp(set_domain(nlp.make_doc(t), d)) for t, d in zip(texts, domains)]
    assert _entities(docs) == gold
    piped = list(nlp.pipe([set_domain(nlp.make_doc(t), d) for t, d in zip(texts, domains)]))
    assert _entities(piped) == gold
    nlp.to_disk(tmp_path)
    nlp2 = spacy.load(tmp_path)
    assert _entities(nlp2(set_domain(nlp2.make_doc(t), d)) for t, d in zip(texts, domains)) == gold
