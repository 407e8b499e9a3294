"""spacy-ladtl.CharacterAffixEmbed.v1: word + character embedding plus hashed PREFIX, SUFFIX and SHAPE."""
import pytest
import spacy
from spacy.util import registry
from two_domain import domain_docs, entities, gold_entities, overfit

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
    nlp, loss = overfit(MODEL, SOURCE_DATA, TARGET_DATA)
    assert loss < 0.1
    gold = gold_entities(SOURCE_DATA, TARGET_DATA)
    assert entities(nlp(doc) for doc in domain_docs(nlp, SOURCE_DATA, TARGET_DATA)) == gold
    assert entities(nlp.pipe(domain_docs(nlp, SOURCE_DATA, TARGET_DATA))) == gold
    nlp.to_disk(tmp_path)
    nlp2 = spacy.load(tmp_path)
    assert entities(nlp2(doc) for doc in domain_docs(nlp2, SOURCE_DATA, TARGET_DATA)) == gold
