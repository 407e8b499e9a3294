"""``spacy-ladtl.MultiDomainCorpus.v1``: one ``.spacy`` file per domain, every Example tagged."""
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Union

from spacy.language import Language
from spacy.training import Corpus, Example
from spacy.util import registry

from .domains import set_example_domain
from .sampling import choose_indices

PerDomain = Union[float, Mapping[str, float]]


@registry.readers("spacy-ladtl.MultiDomainCorpus.v1")
def create_multi_domain_corpus(
    paths: Dict[str, Optional[Path]],
    *,
    limit: Union[int, Dict[str, int]] = 0,
    sample_rate: PerDomain = 1.0,
    seed: int = 0,
    max_length: int = 0,
    gold_preproc: bool = False,
) -> Callable[[Language], Iterator[Example]]:
    """Read one DocBin per domain (``{domain: path}``) and mark every Example's domain.

    limit: keep the first N docs (per domain if a dict; 0 = all).
    sample_rate: keep this fraction of each domain's docs, chosen with ``seed``
        (the same docs every epoch), e.g. ``{"target": 0.1}`` for 10% of target.
    max_length: split docs longer than this many tokens into sentences (spaCy's rule).
    """
    return MultiDomainCorpus(paths, limit=limit, sample_rate=sample_rate, seed=seed, max_length=max_length, gold_preproc=gold_preproc)


class MultiDomainCorpus:
    """Iterate the Examples of several domains, each marked with its domain."""

    def __init__(
        self,
        paths: Mapping[str, Optional[Union[str, Path]]],
        *,
        limit: Union[int, Mapping[str, int]] = 0,
        sample_rate: PerDomain = 1.0,
        seed: int = 0,
        max_length: int = 0,
        gold_preproc: bool = False,
    ) -> None:
        if not paths:
            raise ValueError("spacy-ladtl.MultiDomainCorpus.v1 needs at least one domain in its `paths` table.")
        self.paths = dict(paths)
        self.limits = {d: int(_per_domain(limit, d, 0)) for d in self.paths}
        self.rates = {d: float(_per_domain(sample_rate, d, 1.0)) for d in self.paths}
        for domain, rate in self.rates.items():
            if not 0.0 < rate <= 1.0:
                raise ValueError(f"sample_rate for domain {domain!r} is {rate}: use a fraction in (0, 1].")
        self.seed = seed
        self.max_length = max_length
        self.gold_preproc = gold_preproc

    def __call__(self, nlp: Language) -> Iterator[Example]:
        """Yield every domain's Examples; paths are checked here, not at config time."""
        checked = {domain: _checked_path(domain, path) for domain, path in self.paths.items()}
        for domain, path in checked.items():
            examples = self.read_domain(nlp, domain, path)
            if not examples:
                raise ValueError(f"Domain {domain!r} has no examples in {path}. Check the file, limit and sample_rate.")
            yield from examples

    def read_domain(self, nlp: Language, domain: str, path: Path) -> List[Example]:
        """The (sampled) Examples of one domain, marked with ``domain``."""
        corpus = Corpus(path, limit=self.limits[domain], gold_preproc=self.gold_preproc, max_length=self.max_length)
        examples = list(corpus(nlp))
        chosen = choose_indices(len(examples), self.rates[domain], f"{self.seed}:{domain}")
        examples = [examples[i] for i in chosen]
        return [set_example_domain(eg, domain) for eg in examples]


def _per_domain(value: Union[float, Mapping[str, float]], domain: str, default: float) -> float:
    if isinstance(value, Mapping):
        return value.get(domain, default)
    return value


def _checked_path(domain: str, path: Optional[Union[str, Path]]) -> Path:
    if path is None or str(path) in ("", "None", "null"):
        raise ValueError(
            f"No corpus path for domain {domain!r}. Set it in the reader's [paths] table "
            f"(e.g. --paths.{domain}_train path/to/{domain}.spacy)."
        )
    resolved = Path(path)
    if not resolved.exists():
        raise FileNotFoundError(f"Corpus file for domain {domain!r} not found: {resolved}. Convert it with `python -m spacy_ladtl convert` or fix the path.")
    return resolved
