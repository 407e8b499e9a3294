"""`spacy pretrain` with the ladtl_ner config: the shared encoder pretrains, and training starts from it."""
import math
from pathlib import Path

import numpy
import spacy
import srsly
from spacy.tokens import DocBin
from spacy.training.initialize import init_nlp
from spacy.training.pretrain import pretrain
from spacy.util import load_config
from thinc.api import Model

REPO = Path(__file__).resolve().parents[1]
SOURCE = [("Alice visited Paris last May .", [(0, 5, "PER"), (14, 19, "LOC")]),
          ("Bob lives in London now .", [(0, 3, "PER"), (13, 19, "LOC")])]
TARGET = [("dr smith saw the patient in boston", [(0, 8, "person"), (28, 34, "location")]),
          ("nurse jones called from denver", [(0, 11, "person"), (24, 30, "location")])]
SMALL = {
    "components.ladtl_ner.model.tok2vec.embed.width": 32, "components.ladtl_ner.model.tok2vec.embed.rows": 500,
    "components.ladtl_ner.model.tok2vec.encode.hidden_size": 16, "pretraining.objective.hidden_size": 32,
}


def write_docs(path: Path, data) -> str:
    nlp = spacy.blank("en")
    docs = []
    for text, ents in data:
        doc = nlp.make_doc(text)
        doc.ents = [doc.char_span(start, end, label=label) for start, end, label in ents]
        docs.append(doc)
    DocBin(docs=docs).to_disk(path)
    return str(path)


def small_config(tmp_path: Path, **overrides):
    paths = {"paths.source_train": write_docs(tmp_path / "source.spacy", SOURCE * 20),
             "paths.target_train": write_docs(tmp_path / "target.spacy", TARGET * 20),
             "paths.dev": write_docs(tmp_path / "dev.spacy", TARGET)}
    return load_config(REPO / "configs" / "ladtl_bilstm.cfg", overrides={**paths, **SMALL, **overrides})


def params(model: Model):
    return [node.get_param(name) for node in model.walk() for name in node.param_names if node.has_param(name)]


def test_pretrain_writes_encoder_weights_that_training_starts_from(tmp_path):
    out = tmp_path / "pretrain"
    out.mkdir()
    pretrain(small_config(tmp_path, **{"pretraining.max_epochs": 2}).interpolate(), out, silent=True)
    weights = out / "model-last.bin"
    assert weights.exists() and (out / "model1.bin").exists()
    log = list(srsly.read_jsonl(out / "log.jsonl"))
    assert [row["epoch"] for row in log][:2] == [0, 1] and all(math.isfinite(row["loss"]) and row["loss"] > 0 for row in log)

    fresh = init_nlp(small_config(tmp_path))
    loaded = init_nlp(small_config(tmp_path, **{"paths.init_tok2vec": str(weights)}))
    expected = Model.from_bytes(fresh.get_pipe("ladtl_ner").model.get_ref("tok2vec").copy(), weights.read_bytes())
    got = params(loaded.get_pipe("ladtl_ner").model.get_ref("tok2vec"))
    assert got and all(numpy.array_equal(a, b) for a, b in zip(got, params(expected)))
    # ...and not what a fresh initialisation gives: the weights were loaded, not ignored
    assert not all(numpy.array_equal(a, b) for a, b in zip(got, params(fresh.get_pipe("ladtl_ner").model.get_ref("tok2vec"))))
