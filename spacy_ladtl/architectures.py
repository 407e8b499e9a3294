"""Thinc architectures: the La-DTL tagger and its BiLSTM encoders (v1 padded, v2 packed)."""
from typing import List

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, Model, PyTorchLSTM, chain
from thinc.types import Floats2d

from .encoders import PackedBiLSTM
from .layers import EncodedBatch, build_domain_heads_layer
from .tags import check_scheme


@registry.architectures("spacy-ladtl.LaDTLTagger.v1")
def build_ladtl_tagger(
    tok2vec: Model[List[Doc], List[Floats2d]], domains: List[str], tag_scheme: str = "BILUO"
) -> Model[List[Doc], EncodedBatch]:
    """One encoder shared by all ``domains`` and one CRF head per domain.

    tok2vec: the shared encoder (BiLSTM, CNN or a TransformerListener).
    domains: domain names; each gets an emission layer and a CRF.
    tag_scheme: "BILUO" or "BIO"; the CRF's transitions are constrained to it.
    """
    if not domains:
        raise ValueError("domains in [components.ladtl_ner.model] is empty: name at least one domain.")
    if len(set(domains)) != len(domains):
        raise ValueError(f"domains in [components.ladtl_ner.model] repeats a name: {domains}.")
    return build_domain_heads_layer(tok2vec, domains, check_scheme(tag_scheme))


@registry.architectures("spacy-ladtl.BiLSTMEncoder.v1")
def build_bilstm_encoder(
    width: int, hidden_size: int = 200, depth: int = 1, dropout: float = 0.5
) -> Model[List[Floats2d], List[Floats2d]]:
    """Word-level BiLSTM (paper: hidden 200 per direction), output 2 * hidden_size.

    width: the input (embedding) width.
    dropout: applied to the LSTM input; spaCy sets it from [training] dropout.
    """
    return chain(Dropout(dropout), PyTorchLSTM(2 * hidden_size, width, bi=True, depth=depth))


@registry.architectures("spacy-ladtl.BiLSTMEncoder.v2")
def build_packed_bilstm_encoder(
    width: int, hidden_size: int = 200, depth: int = 1, dropout: float = 0.5
) -> Model[List[Floats2d], List[Floats2d]]:
    """Word-level BiLSTM on packed sequences (batch-independent), output 2 * hidden_size.

    width: the input (embedding) width.
    dropout: applied to the LSTM input; spaCy sets it from [training] dropout.
    """
    return chain(Dropout(dropout), PackedBiLSTM(2 * hidden_size, width, depth=depth))
