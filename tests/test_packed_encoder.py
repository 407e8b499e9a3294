"""spacy-ladtl.BiLSTMEncoder.v2: packed sequences make each doc's vectors batch-independent."""
import numpy
import pytest
import spacy
import torch
from spacy.util import registry
from thinc.api import fix_random_seed

from spacy_ladtl.domains import set_domain
from spacy_ladtl.encoders import PackedBiLSTM
from two_domain import domain_docs, entities, gold_entities, overfit


def _arrays(lengths, width=6, seed=0):
    rng = numpy.random.default_rng(seed)
    return [rng.standard_normal((n, width)).astype("float32") for n in lengths]


def test_packed_bilstm_is_batch_independent_and_matches_torch():
    fix_random_seed(0)
    layer = PackedBiLSTM(8, 6)
    layer.initialize()
    X = _arrays([3, 7, 1, 5])
    Y = layer.predict(X)
    assert [y.shape for y in Y] == [(3, 8), (7, 8), (1, 8), (5, 8)]
    for x, y in zip(X, Y):
        alone = layer.predict([x])[0]
        numpy.testing.assert_allclose(alone, y, rtol=1e-5, atol=1e-6)
    # equals torch's LSTM run on the unpadded sentence
    lstm = layer.layers[0].shims[0]._model.lstm
    with torch.no_grad():
        ref, _ = lstm(torch.from_numpy(X[1]).unsqueeze(0))
    numpy.testing.assert_allclose(Y[1], ref[0].numpy(), rtol=1e-5, atol=1e-6)
    assert layer.predict([]) == []


def test_packed_bilstm_gradient_matches_per_sentence():
    fix_random_seed(1)
    layer = PackedBiLSTM(4, 3)
    layer.initialize()
    X = _arrays([4, 2], width=3, seed=1)
    Y, backprop = layer.begin_update(X)
    dY = [numpy.ones_like(y) for y in Y]
    dX = backprop(dY)
    assert [d.shape for d in dX] == [x.shape for x in X]
    _, bp_alone = layer.begin_update([X[1]])
    numpy.testing.assert_allclose(bp_alone([numpy.ones_like(Y[1])])[0], dX[1], rtol=1e-5, atol=1e-6)


SOURCE_DATA = [
    ("Alice visited Paris last May .", [(0, 5, "PER"), (14, 19, "LOC")]),
    ("Bob lives in London now .", [(0, 3, "PER"), (13, 19, "LOC")]),
]
TARGET_DATA = [
    ("dr smith saw the patient in boston", [(0, 8, "person"), (28, 34, "location")]),
    ("nurse jones called from denver", [(0, 11, "person"), (24, 30, "location")]),
]
PACKED_MODEL = {
    "tok2vec": {
        "embed": {"width": 32, "rows": 500, "nM": 8, "nC": 4},
        "encode": {"@architectures": "spacy-ladtl.BiLSTMEncoder.v2", "width": 32, "hidden_size": 16, "dropout": 0.0},
    }
}


def test_v2_encoder_overfits_and_round_trips(tmp_path):
    assert registry.architectures.get("spacy-ladtl.BiLSTMEncoder.v2")
    nlp, loss = overfit(PACKED_MODEL, SOURCE_DATA, TARGET_DATA)
    assert loss < 0.1
    gold = gold_entities(SOURCE_DATA, TARGET_DATA)
    assert entities(nlp(doc) for doc in domain_docs(nlp, SOURCE_DATA, TARGET_DATA)) == gold
    # one batch with a long doc: same entities as one doc at a time
    long_doc = set_domain(nlp.make_doc("word " * 40), "target")
    batch = list(nlp.pipe(domain_docs(nlp, SOURCE_DATA, TARGET_DATA) + [long_doc], batch_size=8))
    assert entities(batch[:-1]) == gold
    nlp.to_disk(tmp_path)
    nlp2 = spacy.load(tmp_path)
    assert entities(nlp2(doc) for doc in domain_docs(nlp2, SOURCE_DATA, TARGET_DATA)) == gold
