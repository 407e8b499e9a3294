"""``spacy-ladtl.domain_batcher.v1``: every training batch holds every domain.

spaCy's trainer shuffles the whole corpus each epoch, so a plain batcher can
produce batches of a single domain, where the MMD has nothing to compare. This
batcher gives each domain a fixed share of each batch. An epoch is one pass over
the domain that needs the most batches; smaller domains (the few target
sentences) are cycled, reshuffled on each pass, i.e. upsampled.
"""
import itertools
import random
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

from spacy.training import Example
from spacy.util import registry

from .domains import example_domain

Sizing = Union[int, Sequence[int], Iterator[int]]


@registry.batchers("spacy-ladtl.domain_batcher.v1")
def configure_domain_batcher(
    size: Sizing = 32, shares: Optional[Dict[str, float]] = None
) -> Callable[[Iterable[Example]], Iterator[List[Example]]]:
    """Batches of ``size`` Examples (an int or a schedule), split by domain ``shares``.

    shares: fraction of each batch per domain (default: equal shares). Every
        domain gets at least one Example per batch.
    """
    def batcher(examples: Iterable[Example]) -> Iterator[List[Example]]:
        return domain_batches(examples, size, shares)

    return batcher


def domain_batches(examples: Iterable[Example], size: Sizing, shares: Optional[Dict[str, float]] = None) -> Iterator[List[Example]]:
    """Yield batches that each hold every domain of ``examples``."""
    by_domain: Dict[str, List[Example]] = {}
    for eg in examples:
        domain = example_domain(eg)
        if domain is None:
            raise ValueError(
                "spacy-ladtl.domain_batcher.v1 got an Example without a domain marker. "
                "Read the corpus with spacy-ladtl.MultiDomainCorpus.v1, which marks every Example."
            )
        by_domain.setdefault(domain, []).append(eg)
    if not by_domain:
        return
    weights = _shares(list(by_domain), shares)
    sizes = itertools.repeat(size) if isinstance(size, int) else iter(size)
    streams = {d: _cycle_shuffled(egs) for d, egs in by_domain.items()}
    remaining = {d: len(egs) for d, egs in by_domain.items()}
    for batch_size in sizes:
        quotas = {d: max(1, round(int(batch_size) * w)) for d, w in weights.items()}
        batch = [eg for d, quota in quotas.items() for eg in itertools.islice(streams[d], quota)]
        yield batch
        for d, quota in quotas.items():
            remaining[d] -= quota
        if max(remaining.values()) <= 0:
            return


def _shares(domains: List[str], shares: Optional[Dict[str, float]]) -> Dict[str, float]:
    if not shares:
        return {d: 1.0 / len(domains) for d in domains}
    unknown = set(shares) - set(domains)
    missing = [d for d in domains if d not in shares]
    if missing:
        raise ValueError(f"domain_batcher shares has no entry for domain(s) {missing}; it has {sorted(shares)}.")
    if unknown:
        raise ValueError(f"domain_batcher shares names domain(s) {sorted(unknown)} absent from the corpus ({domains}).")
    total = sum(shares[d] for d in domains)
    return {d: shares[d] / total for d in domains}


def _cycle_shuffled(items: List[Example]) -> Iterator[Example]:
    """Endless stream of ``items``: in the given order first, reshuffled on each later pass."""
    order = list(items)
    yield from order
    while True:
        random.shuffle(order)
        yield from order
