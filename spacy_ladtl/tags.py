"""Per-domain tag sets and the matching of tags across domains.

A domain's CRF tags are built from its entity labels in the model's tag scheme
(BILUO by default). Two domains' tags are *matched* when they have the same
prefix and the same canonical type, where ``label_map`` renames types (e.g.
``person -> PER``) so corpora that spell types differently can still share
La-MMD and CRF-L2 terms. A type renamed to ``""`` is matched with nothing (for a
name that means different things in the two domains). Unmatched tags are left free.
"""
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from spacy.training.iob_utils import iob_to_biluo

SCHEME_PREFIXES: Dict[str, Tuple[str, ...]] = {
    "BILUO": ("B", "I", "L", "U"),
    "BIO": ("B", "I"),
}
OUTSIDE = "O"


def check_scheme(scheme: str) -> str:
    """Return ``scheme`` upper-cased, or raise if it is not supported."""
    upper = scheme.upper()
    if upper not in SCHEME_PREFIXES:
        raise ValueError(
            f"Unknown tag scheme '{scheme}'. Set tag_scheme in "
            f"[components.ladtl_ner.model] to one of {sorted(SCHEME_PREFIXES)}."
        )
    return upper


def make_tags(labels: Sequence[str], scheme: str) -> List[str]:
    """The CRF tag set for entity ``labels``: 'O' first, then prefix-type tags."""
    prefixes = SCHEME_PREFIXES[check_scheme(scheme)]
    return [OUTSIDE] + [f"{p}-{label}" for label in labels for p in prefixes]


def split_tag(tag: str) -> Tuple[str, str]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', '')."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, _, label = tag.partition("-")
    return prefix, label


def canonical_label(label: str, label_map: Mapping[str, str]) -> str:
    """The name under which ``label`` is matched across domains."""
    return label_map.get(label, label)


def match_tags(
    tags_a: Sequence[str], tags_b: Sequence[str], label_map: Mapping[str, str]
) -> List[Tuple[int, int]]:
    """Index pairs (i, j) of tags_a[i] and tags_b[j] that denote the same tag.

    'O' always matches 'O'; 'B-person' matches 'B-PER' when
    ``label_map == {"person": "PER"}``; a type mapped to ``""`` matches nothing.
    """
    def key(tag: str) -> Optional[Tuple[str, str]]:
        prefix, label = split_tag(tag)
        name = canonical_label(label, label_map)
        return None if label and not name else (prefix, name)

    index_b = {k: j for j, k in enumerate(map(key, tags_b)) if k is not None}
    return [(i, index_b[k]) for i, k in enumerate(map(key, tags_a)) if k in index_b]


_BILUO_TO_BIO = {"B": "B", "I": "I", "L": "I", "U": "B"}


def biluo_to_scheme(tag: str, scheme: str) -> str:
    """Convert one BILUO tag (as spaCy's aligned NER gives it) to ``scheme``."""
    if scheme == "BILUO" or tag == OUTSIDE:
        return tag
    prefix, label = split_tag(tag)
    return f"{_BILUO_TO_BIO[prefix]}-{label}"


def scheme_to_biluo(tags: Sequence[str], scheme: str) -> List[str]:
    """Convert a decoded tag sequence in ``scheme`` to BILUO for span building."""
    return list(tags) if scheme == "BILUO" else iob_to_biluo(list(tags))
