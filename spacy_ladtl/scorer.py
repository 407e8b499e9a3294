"""``spacy-ladtl.ner_scorer.v1``: entity P/R/F overall, per type, and per domain.

Keys: spaCy's ``ents_p/r/f`` and ``ents_per_type`` over all examples;
``ents_{p,r,f}_<domain>`` and ``ents_per_type_<domain>`` per domain; and
``ents_target_{p,r,f}`` for the component's target domain, which the default
score weights use, so ``model-best`` is chosen on target dev.
"""
from typing import Any, Callable, Dict, Iterable, List, Optional

from spacy.scorer import Scorer
from spacy.training import Example
from spacy.util import registry

from .domains import example_domain


def ladtl_ner_score(examples: Iterable[Example], *, target_domain: Optional[str] = None, **kwargs: Any) -> Dict[str, Any]:
    """Score ``doc.ents`` overall and for each domain of ``examples`` (other kwargs: the pipe's cfg, unused)."""
    examples = list(examples)
    scores: Dict[str, Any] = dict(Scorer.score_spans(examples, "ents"))
    by_domain: Dict[str, List[Example]] = {}
    for eg in examples:
        by_domain.setdefault(example_domain(eg) or "unmarked", []).append(eg)
    for domain, domain_examples in by_domain.items():
        domain_scores = Scorer.score_spans(domain_examples, "ents")
        for key, value in domain_scores.items():
            scores[f"{key}_{domain}"] = value
    target = by_domain.get(target_domain or "", [])
    for metric in ("p", "r", "f"):
        scores[f"ents_target_{metric}"] = scores.get(f"ents_{metric}_{target_domain}") if target else None
    return scores


@registry.scorers("spacy-ladtl.ner_scorer.v1")
def make_ner_scorer() -> Callable[..., Dict[str, Any]]:
    return ladtl_ner_score
