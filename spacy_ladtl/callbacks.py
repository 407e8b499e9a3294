"""Registered callbacks: start a pipeline's shared encoder from another trained pipeline.

``spacy-ladtl.init_encoder_from.v1`` is the re-training / fine-tuning baseline
(Lee et al. 2017): train on the source domain, then continue on the target with
the encoder's weights (not the CRF heads, whose tag sets differ). Use it as
``[initialize.after_init]``, so the shapes exist before the weights are copied.
"""
from pathlib import Path
from typing import Callable, Union

import spacy
from spacy.language import Language
from spacy.util import registry


@registry.callbacks("spacy-ladtl.init_encoder_from.v1")
def make_init_encoder_from(path: Union[str, Path], component: str = "ladtl_ner") -> Callable[[Language], Language]:
    """Copy ``component``'s ``tok2vec`` weights from the pipeline saved at ``path``."""

    def init_encoder_from(nlp: Language) -> Language:
        if not Path(path).exists():
            raise FileNotFoundError(f"[initialize.after_init] spacy-ladtl.init_encoder_from.v1: no pipeline at {path}.")
        trained = spacy.load(path)
        source = trained.get_pipe(component).model.get_ref("tok2vec")
        target = nlp.get_pipe(component).model.get_ref("tok2vec")
        target.from_bytes(source.to_bytes())
        return nlp

    return init_encoder_from
