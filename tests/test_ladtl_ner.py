"""Tests for the ladtl_ner component, shaped like spaCy's test_tagger.py."""
from typing import Dict

import pytest
import spacy
import torch
from spacy.language import Language
from spacy.training import Example
from spacy.util import registry
from thinc.api import fix_random_seed, set_dropout_rate

from spacy_ladtl.domains import get_domain, set_domain, set_example_domain
from spacy_ladtl.objective import TransferSettings, transfer_pairs
from two_domain import domain_docs, domain_examples, gold_entities

SOURCE_DATA = [
    ("Alice visited Paris last May .", [(0, 5, "PER"), (14, 19, "LOC")]),
    ("Bob lives in London now .", [(0, 3, "PER"), (13, 19, "LOC")]),
    ("We met Carol in Berlin .", [(7, 12, "PER"), (16, 22, "LOC")]),
]
TARGET_DATA = [
    ("dr smith saw the patient in boston", [(0, 8, "person"), (28, 34, "location")]),
    ("nurse jones called from denver", [(0, 11, "person"), (24, 30, "location")]),
]
SMALL_MODEL = {
    "tok2vec": {
        "embed": {"width": 32, "rows": 500, "nM": 8, "nC": 4},
        "encode": {"width": 32, "hidden_size": 16, "dropout": 0.0},
    }
}


def make_examples(nlp: Language):
    return domain_examples(nlp, SOURCE_DATA, TARGET_DATA)


def make_nlp(**config) -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("ladtl_ner", config={"model": SMALL_MODEL, **config})
    return nlp


def make_trained_nlp(steps: int) -> Language:
    """A small two-domain pipeline after ``steps`` updates on the module's data (seed 0)."""
    fix_random_seed(0)
    nlp = make_nlp()
    train_examples = make_examples(nlp)
    optimizer = nlp.initialize(get_examples=lambda: train_examples)
    for _ in range(steps):
        nlp.update(train_examples, sgd=optimizer)
    return nlp


@pytest.mark.parametrize(
    "registry_name,func_name",
    [
        ("architectures", "spacy-ladtl.LaDTLTagger.v1"),
        ("architectures", "spacy-ladtl.BiLSTMEncoder.v1"),
        ("readers", "spacy-ladtl.MultiDomainCorpus.v1"),
        ("batchers", "spacy-ladtl.domain_batcher.v1"),
        ("scorers", "spacy-ladtl.ner_scorer.v1"),
    ],
)
def test_registry_names_resolve(registry_name, func_name):
    assert getattr(registry, registry_name).get(func_name)


def test_factory_found_without_import():
    """`add_pipe("ladtl_ner")` works in a fresh interpreter through the entry points."""
    import subprocess
    import sys

    code = "import spacy; nlp = spacy.blank('en'); nlp.add_pipe('ladtl_ner'); import sys; print('spacy_ladtl' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"


def test_no_label():
    nlp = make_nlp()
    with pytest.raises(ValueError):
        nlp.initialize()


def test_initialize_examples_infers_labels_per_domain():
    nlp = make_nlp()
    nlp.initialize(get_examples=lambda: make_examples(nlp))
    ner = nlp.get_pipe("ladtl_ner")
    assert ner.label_data == {"source": ["LOC", "PER"], "target": ["location", "person"]}
    assert ner.tag_sets["target"][0] == "O" and "U-person" in ner.tag_sets["target"]
    with pytest.raises(TypeError):
        nlp.initialize(get_examples=lambda: None)


def test_initialize_with_labels_argument():
    nlp = make_nlp()
    ner = nlp.get_pipe("ladtl_ner")
    ner.initialize(lambda: make_examples(nlp), nlp=nlp, labels={"source": ["PER"], "target": ["person", "location"]})
    assert ner.label_data == {"source": ["PER"], "target": ["location", "person"]}
    with pytest.raises(ValueError, match="exactly the model's domains"):
        ner.initialize(lambda: make_examples(nlp), nlp=nlp, labels={"target": ["person"]})


def test_domain_without_examples_is_an_error():
    nlp = make_nlp()
    target_only = [eg for eg in make_examples(nlp) if get_domain(eg.reference) == "target"]
    with pytest.raises(ValueError, match="no training examples"):
        nlp.initialize(get_examples=lambda: target_only)


def test_label_map_naming_no_label_is_an_error():
    nlp = make_nlp(label_map={"persn": "PER"})
    with pytest.raises(ValueError, match="persn"):
        nlp.initialize(get_examples=lambda: make_examples(nlp))


def test_label_map_matches_renamed_types_and_keeps_empty_ones_out():
    from spacy_ladtl.tags import match_tags

    tags_a = ["O", "B-person", "I-person", "B-location", "I-location"]
    tags_b = ["O", "B-PER", "I-PER", "B-location", "I-location"]
    assert match_tags(tags_a, tags_b, {"person": "PER"}) == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]
    assert match_tags(tags_a, tags_b, {"person": "PER", "location": ""}) == [(0, 0), (1, 1), (2, 2)]
    assert match_tags(tags_a, tags_b, {}) == [(0, 0), (3, 3), (4, 4)]


def test_unknown_settings_are_errors():
    with pytest.raises(ValueError, match="target_domain"):
        make_nlp(target_domain="cardiology")
    with pytest.raises(ValueError, match="mmd"):
        make_nlp(mmd="sometimes")
    with pytest.raises(ValueError, match="mmd_bandwidth = 'auto'"):
        make_nlp(mmd_bandwidth="auto")
    with pytest.raises(ValueError, match="mmd_labels = 'entity'"):
        make_nlp(mmd_labels="entity")
    with pytest.raises(ValueError, match="transfer_pairs = 'some'"):
        make_nlp(transfer_pairs="some")


@pytest.mark.parametrize("include_o", [False, True])
def test_mmd_labels_type_pools_the_tags_of_each_matched_type(include_o):
    from spacy_ladtl.objective import TransferSettings, match_domains

    tags_a = ["O", "B-person", "I-person", "B-misc", "I-misc", "B-location", "I-location"]
    tags_b = ["O", "B-PER", "I-PER", "B-location", "I-location"]
    cpu = torch.device("cpu")
    common = dict(label_map={"person": "PER"}, mmd_include_o=include_o)
    by_tag = match_domains(tags_a, tags_b, TransferSettings(mmd_labels="tag", **common), cpu)
    by_type = match_domains(tags_a, tags_b, TransferSettings(mmd_labels="type", **common), cpu)
    # CRF-L2 ties the same tag pairs either way
    assert by_tag.pairs.tolist() == by_type.pairs.tolist()
    assert by_tag.n_shared == 4 + include_o
    assert by_type.n_shared == 2 + include_o
    a, b = by_type.shared_a.tolist(), by_type.shared_b.tolist()
    assert a[1] == a[2] == b[1] == b[2] >= 0  # person / PER
    assert a[5] == a[6] == b[3] == b[4] >= 0  # location
    assert a[1] != a[5]
    assert a[3] == a[4] == -1  # misc has no match in b
    assert (a[0] >= 0) == include_o and a[0] == b[0]


def test_overfitting_IO():
    fix_random_seed(0)
    nlp = make_nlp(label_map={"person": "PER", "location": "LOC"})
    train_examples = make_examples(nlp)
    optimizer = nlp.initialize(get_examples=lambda: train_examples)
    optimizer.learn_rate = 0.01
    for i in range(60):
        losses = {}
        nlp.update(train_examples, sgd=optimizer, losses=losses)
    assert losses["ladtl_ner"] < 0.1
    for key in ("ladtl_ner_crf", "ladtl_ner_mmd", "ladtl_ner_crf_l2"):
        assert key in losses

    gold = gold_entities(SOURCE_DATA, TARGET_DATA)

    def annotate(model_nlp):
        return [model_nlp(doc) for doc in domain_docs(model_nlp, SOURCE_DATA, TARGET_DATA)]

    docs = annotate(nlp)
    for doc, expected in zip(docs, gold):
        assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == expected

    # Also test the results are still the same after IO
    import tempfile

    with tempfile.TemporaryDirectory() as tmp_dir:
        nlp.to_disk(tmp_dir)
        nlp2 = spacy.load(tmp_dir)
        docs2 = annotate(nlp2)
        for doc, doc2 in zip(docs, docs2):
            assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == [
                (e.start_char, e.end_char, e.label_) for e in doc2.ents
            ]
        nlp_bytes = nlp.to_bytes()
        nlp4 = make_nlp(label_map={"person": "PER", "location": "LOC"})
        nlp4.from_bytes(nlp_bytes)
        docs4 = annotate(nlp4)
        assert [[e.label_ for e in d.ents] for d in docs4] == [[e.label_ for e in d.ents] for d in docs]

    # Make sure that running pipe twice, or comparing to call, always amounts to the same predictions
    batch_docs = list(nlp.pipe(domain_docs(nlp, SOURCE_DATA, TARGET_DATA)))
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in batch_docs] == [
        [(e.start, e.end, e.label_) for e in d.ents] for d in docs
    ]


def test_domain_routing_at_inference():
    nlp = make_trained_nlp(40)
    text = "dr smith saw the patient in boston"
    unmarked = nlp(text)  # default_domain = target
    assert {e.label_ for e in unmarked.ents} <= {"person", "location"}
    as_source = nlp(set_domain(nlp.make_doc(text), "source"))
    assert {e.label_ for e in as_source.ents} <= {"PER", "LOC"}
    with pytest.raises(ValueError, match="Known domains"):
        nlp(set_domain(nlp.make_doc(text), "cardiology"))


def test_default_domain_comes_from_config_on_load(tmp_path):
    """A saved pipeline can be re-pointed at another head through the config (per-specialty packages)."""
    nlp = make_trained_nlp(40)
    nlp.to_disk(tmp_path)
    text = "Alice visited Paris last May ."
    as_target = spacy.load(tmp_path)
    as_source = spacy.load(tmp_path, config={"components": {"ladtl_ner": {"default_domain": "source"}}})
    assert as_target.get_pipe("ladtl_ner").default_domain == "target"
    assert as_source.get_pipe("ladtl_ner").default_domain == "source"
    assert as_source.config["components"]["ladtl_ner"]["default_domain"] == "source"
    source_ents = [(e.text, e.label_) for e in as_source(text).ents]
    assert source_ents == [(e.text, e.label_) for e in nlp(set_domain(nlp.make_doc(text), "source")).ents]
    assert {label for _, label in source_ents} <= {"PER", "LOC"}
    assert {e.label_ for e in as_target(text).ents} <= {"person", "location"}
    with pytest.raises(ValueError, match="not one of the model's domains"):
        as_target.get_pipe("ladtl_ner").default_domain = "cardiology"


def test_empty_and_whitespace_docs():
    nlp = make_nlp()
    nlp.initialize(get_examples=lambda: make_examples(nlp))
    assert nlp("").ents == ()
    docs = list(nlp.pipe(["", "   ", "dr smith", "\n\n"]))
    assert len(docs) == 4 and docs[0].ents == ()


def test_single_domain_batch_skips_transfer_terms():
    nlp = make_nlp()
    examples = make_examples(nlp)
    optimizer = nlp.initialize(get_examples=lambda: examples)
    target_only = [eg for eg in examples if get_domain(eg.reference) == "target"]
    losses = nlp.update(target_only, sgd=optimizer, losses={})
    assert losses["ladtl_ner_crf"] > 0
    assert losses["ladtl_ner_mmd"] == 0.0 and losses["ladtl_ner_crf_l2"] == 0.0


def test_spans_key_and_scorer_keys():
    nlp = make_nlp(spans_key="ladtl")
    examples = make_examples(nlp)
    nlp.initialize(get_examples=lambda: examples)
    scores = nlp.evaluate(examples)
    for key in ("ents_f", "ents_target_f", "ents_f_source", "ents_f_target", "ents_per_type_target"):
        assert key in scores
    doc = nlp("dr smith saw the patient in boston")
    assert list(doc.spans["ladtl"]) == list(doc.ents)


@pytest.mark.parametrize("bandwidth,labels", [("pooled", "tag"), ("per_label", "tag"), ("pooled", "type")])
def test_mmd_gradient_reaches_the_encoder(bandwidth, labels):
    """With alpha > 0 and only the MMD term differentiated, the tok2vec weights get a gradient."""
    fix_random_seed(0)
    nlp = make_nlp(
        label_map={"person": "PER", "location": "LOC"}, mmd_min_tokens=1, mmd_bandwidth=bandwidth, mmd_labels=labels
    )
    ner = nlp.get_pipe("ladtl_ner")
    assert ner.settings.mmd_bandwidth == bandwidth and ner.settings.mmd_labels == labels
    examples = make_examples(nlp)
    nlp.initialize(get_examples=lambda: examples)
    batch, backprop = ner.model.begin_update([eg.predicted for eg in examples])
    terms = ner._loss_terms(examples, batch)
    assert terms["mmd"].item() > 0
    backprop(terms["mmd"])
    lstm_grads = [
        torch_param.grad
        for node in ner.model.walk()
        for shim in node.shims
        if shim is not ner.model.shims[0]
        for torch_param in shim._model.parameters()
    ]
    assert lstm_grads and any(g is not None and float(g.abs().sum()) > 0 for g in lstm_grads)


def test_label_aware_plus_marginal_adds_both_terms():
    """mmd = "label_aware+marginal" is La-MMD plus marginal MMD on the same batch (caps not reached)."""
    mmd = {}
    for mode in ("label_aware", "marginal", "label_aware+marginal"):
        fix_random_seed(0)
        nlp = make_nlp(label_map={"person": "PER", "location": "LOC"}, mmd_min_tokens=1, mmd=mode)
        examples = make_examples(nlp)
        nlp.initialize(get_examples=lambda: examples)
        ner = nlp.get_pipe("ladtl_ner")
        batch = ner.model.predict([eg.predicted for eg in examples])
        mmd[mode] = ner._loss_terms(examples, batch)["mmd"].item()
    assert mmd["label_aware"] > 0 and mmd["marginal"] > 0
    assert mmd["label_aware+marginal"] == pytest.approx(mmd["label_aware"] + mmd["marginal"], rel=1e-5)


def test_mmd_memory_widens_la_mmd_and_fills_during_training():
    """mmd_memory > 0: the second batch's La-MMD also sees the first batch's vectors; 0 keeps none."""
    fix_random_seed(0)
    nlp = make_nlp(label_map={"person": "PER", "location": "LOC"}, mmd_min_tokens=1, mmd_memory=8)
    examples = make_examples(nlp)
    nlp.initialize(get_examples=lambda: examples)
    ner = nlp.get_pipe("ladtl_ner")
    assert ner.settings.mmd_memory == 8
    docs = [eg.predicted for eg in examples]
    batch = ner.model.predict(docs)
    alone = ner._loss_terms(examples, batch)["mmd"].item()
    (mem_a, mem_b), = ner._memories.values()
    assert len(mem_a) > 0 and len(mem_b) > 0
    ner._memories = None
    set_dropout_rate(ner.model, 0.5)
    noisy, _ = ner.model.begin_update(docs)  # other vectors of the same tokens
    ner._loss_terms(examples, noisy)
    with_memory = ner._loss_terms(examples, batch)["mmd"].item()
    assert with_memory != pytest.approx(alone, rel=1e-3)
    nlp.initialize(get_examples=lambda: examples)
    assert ner._memories is None  # initialize starts training with an empty memory
    off = make_nlp(label_map={"person": "PER", "location": "LOC"}, mmd_min_tokens=1)
    off.initialize(get_examples=lambda: make_examples(off))
    off_ner = off.get_pipe("ladtl_ner")
    off_ner._loss_terms(examples, batch)
    assert off_ner._domain_memories() is None


def test_crf_l2_ties_matched_tags_only():
    nlp = make_nlp(label_map={"person": "PER"}, alpha=0.0)
    examples = make_examples(nlp)
    nlp.initialize(get_examples=lambda: examples)
    ner = nlp.get_pipe("ladtl_ner")
    batch, _ = ner.model.begin_update([eg.predicted for eg in examples])
    terms = ner._loss_terms(examples, batch)
    terms["crf_l2"].backward()
    source_head, target_head = batch.heads.heads
    source_tags = ner.tag_sets["source"]
    grads = source_head.emission.weight.grad
    for i, tag in enumerate(source_tags):
        touched = bool(grads[i].abs().sum() > 0)
        assert touched == (tag == "O" or tag.endswith("-PER")), tag


def test_cnn_encoder_is_a_config_change():
    fix_random_seed(0)
    cnn = {
        "tok2vec": {
            "@architectures": "spacy.HashEmbedCNN.v2",
            "width": 32,
            "depth": 2,
            "embed_size": 500,
            "window_size": 1,
            "maxout_pieces": 2,
            "subword_features": True,
            "pretrained_vectors": None,
        }
    }
    nlp = spacy.blank("en")
    nlp.add_pipe("ladtl_ner", config={"model": cnn})
    examples = make_examples(nlp)
    optimizer = nlp.initialize(get_examples=lambda: examples)
    optimizer.learn_rate = 0.01
    first = nlp.update(examples, sgd=optimizer, losses={})["ladtl_ner"]
    for _ in range(30):
        last = nlp.update(examples, sgd=optimizer, losses={})["ladtl_ner"]
    assert last < first / 4


def three_domain_losses(transfer_pairs: str) -> Dict[str, float]:
    """The first update's losses of a source / target / third pipeline (seed 0)."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    model = dict(SMALL_MODEL, domains=["source", "target", "third"])
    config = {"model": model, "label_map": {"person": "PER", "location": "LOC"}, "transfer_pairs": transfer_pairs}
    nlp.add_pipe("ladtl_ner", config=config)
    examples = make_examples(nlp)
    third = [
        set_example_domain(Example.from_dict(nlp.make_doc("Mr Lee flew to Rome ."), {"entities": [(0, 6, "PER"), (15, 19, "LOC")]}), "third")
    ]
    optimizer = nlp.initialize(get_examples=lambda: examples + third)
    ner = nlp.get_pipe("ladtl_ner")
    assert ner.cfg["labels"]["third"] == ["LOC", "PER"]
    assert sorted(ner._domain_weights()) == pytest.approx([0.15, 0.15, 0.7])
    assert ner.settings.target_index == 1
    losses = nlp.update(examples + third, sgd=optimizer, losses={})
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    return losses


def test_three_domains_average_transfer_terms():
    """Each source is tied to the target (default), or every pair is ("all"): the same CRF
    loss, other transfer terms (the source and third heads start apart, so their pair adds CRF-L2)."""
    with_target, every_pair = three_domain_losses("with_target"), three_domain_losses("all")
    assert with_target["ladtl_ner_crf_l2"] > 0
    assert with_target["ladtl_ner_crf"] == pytest.approx(every_pair["ladtl_ner_crf"])
    assert with_target["ladtl_ner_crf_l2"] != pytest.approx(every_pair["ladtl_ner_crf_l2"])


@pytest.mark.parametrize("choice,expected", [("with_target", [(0, 1), (1, 2)]), ("all", [(0, 1), (0, 2), (1, 2)])])
def test_transfer_pairs_choose_the_tied_domain_pairs(choice, expected):
    settings = TransferSettings(transfer_pairs=choice, target_index=1)
    assert transfer_pairs([2, 0, 1], settings) == expected
    assert transfer_pairs([0, 2], settings) == ([] if choice == "with_target" else [(0, 2)])


def test_init_encoder_from_copies_the_shared_encoder_only(tmp_path):
    """The re-training baseline's callback copies the shared encoder's weights."""
    trained = make_trained_nlp(5)
    trained.to_disk(tmp_path / "trained")
    fresh = make_nlp()
    fresh.initialize(get_examples=lambda: make_examples(fresh))
    encoder = lambda nlp: nlp.get_pipe("ladtl_ner").model.get_ref("tok2vec")
    assert encoder(fresh).to_bytes() != encoder(trained).to_bytes()
    callback = registry.callbacks.get("spacy-ladtl.init_encoder_from.v1")(tmp_path / "trained")
    callback(fresh)
    assert encoder(fresh).to_bytes() == encoder(trained).to_bytes()
    with pytest.raises(FileNotFoundError, match="init_encoder_from"):
        registry.callbacks.get("spacy-ladtl.init_encoder_from.v1")(tmp_path / "missing")(fresh)
