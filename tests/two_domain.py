"""Helpers for the overfitting tests of ``ladtl_ner`` with another encoder: train on a few
source and target sentences, then read back the entities of each doc in its own domain."""
from typing import Dict, Iterable, List, Sequence, Tuple

import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import fix_random_seed

from spacy_ladtl.domains import set_domain, set_example_domain

Annotated = Sequence[Tuple[str, List[Tuple[int, int, str]]]]
LABEL_MAP = {"person": "PER", "location": "LOC"}


def overfit(model: Dict, source: Annotated, target: Annotated, steps: int = 60) -> Tuple[Language, float]:
    """A blank English pipeline with ``ladtl_ner`` (``model``) after ``steps`` updates (seed 0, lr 0.01)
    on ``source`` and ``target``, and its last loss."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("ladtl_ner", config={"model": model, "label_map": LABEL_MAP})
    examples = [
        set_example_domain(Example.from_dict(nlp.make_doc(text), {"entities": ents}), domain)
        for domain, data in (("source", source), ("target", target))
        for text, ents in data
    ]
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01
    for _ in range(steps):
        losses = nlp.update(examples, sgd=optimizer)
    return nlp, losses["ladtl_ner"]


def domain_docs(nlp: Language, source: Annotated, target: Annotated) -> List[Doc]:
    """The texts of ``source`` then ``target`` as unannotated docs, each marked with its domain."""
    return [set_domain(nlp.make_doc(text), domain) for domain, data in (("source", source), ("target", target)) for text, _ in data]


def gold_entities(source: Annotated, target: Annotated) -> List[List[Tuple[int, int, str]]]:
    """The annotated entities of ``source`` then ``target``, in the order of ``domain_docs``."""
    return [list(ents) for _, ents in list(source) + list(target)]


def entities(docs: Iterable[Doc]) -> List[List[Tuple[int, int, str]]]:
    """(start_char, end_char, label) of every predicted entity, doc by doc."""
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs]
