"""Helpers for the tests of ``ladtl_ner``: examples and docs of a few source and target sentences,
an overfitted pipeline, and the entities read back from each doc in its own domain."""
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple

import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import fix_random_seed

from spacy_ladtl.domains import set_domain, set_example_domain

Annotated = Sequence[Tuple[str, List[Tuple[int, int, str]]]]
LABEL_MAP = {"person": "PER", "location": "LOC"}


def by_domain(source: Annotated, target: Annotated) -> Iterator[Tuple[str, str, List[Tuple[int, int, str]]]]:
    """(domain, text, entities) of every sentence of ``source`` then ``target``."""
    for domain, data in (("source", source), ("target", target)):
        for text, ents in data:
            yield domain, text, list(ents)


def domain_examples(nlp: Language, source: Annotated, target: Annotated) -> List[Example]:
    """The annotated sentences of ``source`` then ``target`` as examples, each marked with its domain."""
    return [
        set_example_domain(Example.from_dict(nlp.make_doc(text), {"entities": ents}), domain)
        for domain, text, ents in by_domain(source, target)
    ]


def overfit(model: Dict, source: Annotated, target: Annotated, steps: int = 60) -> Tuple[Language, float]:
    """A blank English pipeline with ``ladtl_ner`` (``model``) after ``steps`` updates (seed 0, lr 0.01)
    on ``source`` and ``target``, and its last loss."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("ladtl_ner", config={"model": model, "label_map": LABEL_MAP})
    examples = domain_examples(nlp, source, target)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01
    for _ in range(steps):
        losses = nlp.update(examples, sgd=optimizer)
    return nlp, losses["ladtl_ner"]


def domain_docs(nlp: Language, source: Annotated, target: Annotated) -> List[Doc]:
    """The texts of ``source`` then ``target`` as unannotated docs, each marked with its domain."""
    return [set_domain(nlp.make_doc(text), domain) for domain, text, _ in by_domain(source, target)]


def gold_entities(source: Annotated, target: Annotated) -> List[List[Tuple[int, int, str]]]:
    """The annotated entities of ``source`` then ``target``, in the order of ``domain_docs``."""
    return [ents for _, _, ents in by_domain(source, target)]


def entities(docs: Iterable[Doc]) -> List[List[Tuple[int, int, str]]]:
    """(start_char, end_char, label) of every predicted entity, doc by doc."""
    return [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs]
