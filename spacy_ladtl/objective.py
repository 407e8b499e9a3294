"""The La-DTL objective: L = Lc + alpha * L_LaMMD + beta * Lp (+ gamma * Lr).

Lc is the domain-weighted CRF negative log-likelihood (paper: epsilon for the
source, 1 - epsilon for the target). The transfer terms are computed for each
pair of domains present in the batch (``transfer_pairs``: the pairs that hold
the target, by default, or every pair) and averaged over those pairs: La-MMD
(or marginal MMD) on the shared encoder's vectors, CRF-L2 on the matched rows
and cells of the two heads; with two domains both choices give the one pair.
Lr, the L2 regularisation gamma, is the optimizer's ``L2`` setting in
``[training.optimizer]``.
"""
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations
from typing import Dict, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.attrs import ORTH
from spacy.training import Example

from .layers import EncodedBatch
from .losses import MMD_BANDWIDTHS, crf_l2, la_mmd, marginal_mmd
from .memory import PairMemory, widen_and_remember
from .tags import OUTSIDE, biluo_to_scheme, match_tags, split_tag

#: "label_aware+marginal" adds both, as joint distribution adaptation does (Long et al., ICCV 2013):
#: the marginal term also reaches O and the types matched in neither domain.
MMD_MODES = ("label_aware", "marginal", "label_aware+marginal", "none")
#: What La-MMD calls a label: each CRF tag (B-PER, I-PER, ...) or each entity type (PER).
MMD_LABEL_LEVELS = ("tag", "type")
#: Which domain pairs the transfer terms tie: each source with the target, or every pair.
TRANSFER_PAIRS = ("with_target", "all")


@dataclass
class TransferSettings:
    """Weights and options of the La-DTL loss (the component's settings)."""

    alpha: float = 0.02
    beta: float = 0.03
    domain_weights: Sequence[float] = (0.3, 0.7)
    mmd: str = "label_aware"
    mmd_include_o: bool = False
    mmd_bandwidth: str = "pooled"
    mmd_labels: str = "tag"
    mmd_max_tokens: int = 64
    mmd_min_tokens: int = 2
    mmd_kernels: int = 5
    mmd_memory: int = 0
    label_map: Dict[str, str] = field(default_factory=dict)
    transfer_pairs: str = "with_target"
    target_index: int = 1  # the target's position in the model's domains

    def __post_init__(self) -> None:
        if self.mmd not in MMD_MODES:
            raise ValueError(f"mmd = {self.mmd!r} in [components.ladtl_ner] is not one of {MMD_MODES}.")
        if self.mmd_bandwidth not in MMD_BANDWIDTHS:
            raise ValueError(
                f"mmd_bandwidth = {self.mmd_bandwidth!r} in [components.ladtl_ner] is not one of {MMD_BANDWIDTHS}."
            )
        if self.mmd_labels not in MMD_LABEL_LEVELS:
            raise ValueError(
                f"mmd_labels = {self.mmd_labels!r} in [components.ladtl_ner] is not one of {MMD_LABEL_LEVELS}."
            )
        if self.transfer_pairs not in TRANSFER_PAIRS:
            raise ValueError(
                f"transfer_pairs = {self.transfer_pairs!r} in [components.ladtl_ner] is not one of {TRANSFER_PAIRS}."
            )
        if self.mmd_memory < 0:
            raise ValueError(f"mmd_memory = {self.mmd_memory} in [components.ladtl_ner] must be >= 0 (0 = off).")


@dataclass
class TagMatch:
    """Matched tags of one domain pair: CRF-L2 pairs and La-MMD shared label ids."""

    pairs: torch.Tensor  # (M, 2) tag index in domain a, tag index in domain b
    shared_a: torch.Tensor  # (K_a,) shared label id per tag of a, -1 if not used by La-MMD
    shared_b: torch.Tensor  # (K_b,)
    n_shared: int


def match_domains(
    tags_a: Sequence[str], tags_b: Sequence[str], settings: TransferSettings, device: torch.device
) -> TagMatch:
    """Which tags of two domains are tied by the transfer terms.

    CRF-L2 ties every matched tag pair. La-MMD groups matched tags into shared
    labels: one per tag (``mmd_labels = "tag"``) or one per entity type, so that
    B-, I-, L- and U-PER vectors are compared as one label (``"type"``).
    """
    pairs = match_tags(tags_a, tags_b, settings.label_map)
    shared_a = torch.full((len(tags_a),), -1, dtype=torch.long)
    shared_b = torch.full((len(tags_b),), -1, dtype=torch.long)
    shared_ids: Dict[str, int] = {}
    for i, j in pairs:
        if tags_a[i] == OUTSIDE and not settings.mmd_include_o:
            continue
        key = tags_a[i] if settings.mmd_labels == "tag" else split_tag(tags_a[i])[1] or OUTSIDE
        shared_id = shared_ids.setdefault(key, len(shared_ids))
        shared_a[i] = shared_id
        shared_b[j] = shared_id
    pair_tensor = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)
    return TagMatch(pair_tensor.to(device), shared_a.to(device), shared_b.to(device), len(shared_ids))


def ladtl_loss(
    batch: EncodedBatch,
    gold: torch.Tensor,
    settings: TransferSettings,
    matches: Dict[Tuple[int, int], TagMatch],
    memories: Optional[Dict[Tuple[int, int], PairMemory]] = None,
) -> Dict[str, torch.Tensor]:
    """All loss terms of one batch; ``"total"`` is what backprop differentiates.

    gold: (B, T) tag ids in each sentence's own domain tag set (0 on padding).
    matches: the TagMatch of every domain pair (a, b) with a < b.
    memories: La-MMD's per-label memories by domain pair (``mmd_memory > 0``);
        read and then updated with this batch's vectors.
    """
    heads = batch.heads.heads
    present: List[int] = sorted(batch.domain_ids.unique().tolist())
    zero = batch.hidden.new_zeros(())
    crf = zero
    rows_of = {d: (batch.domain_ids == d).nonzero(as_tuple=True)[0] for d in present}
    for d in present:
        rows = rows_of[d]
        nll = heads[d].nll(batch.hidden[rows], gold[rows], batch.mask[rows])
        crf = crf + settings.domain_weights[d] * nll.mean()
    mmd, l2 = zero, zero
    pair_list = transfer_pairs(present, settings)
    for a, b in pair_list:
        match = matches[(a, b)]
        if settings.mmd != "none" and settings.alpha:
            memory = memories.get((a, b)) if memories is not None else None
            mmd = mmd + _pair_mmd(batch, gold, rows_of[a], rows_of[b], match, settings, memory)
        if settings.beta:
            l2 = l2 + crf_l2(heads[a], heads[b], match.pairs)
    if pair_list:
        mmd = mmd / len(pair_list)
        l2 = l2 / len(pair_list)
    total = crf + settings.alpha * mmd + settings.beta * l2
    return {"total": total, "crf": crf, "mmd": mmd, "crf_l2": l2}


def transfer_pairs(present: Sequence[int], settings: TransferSettings) -> List[Tuple[int, int]]:
    """The domain pairs (a < b) of a batch that the transfer terms tie."""
    pairs = list(combinations(sorted(present), 2))
    if settings.transfer_pairs == "all":
        return pairs
    return [(a, b) for a, b in pairs if settings.target_index in (a, b)]


def _pair_mmd(
    batch: EncodedBatch,
    gold: torch.Tensor,
    rows_a: torch.Tensor,
    rows_b: torch.Tensor,
    match: TagMatch,
    settings: TransferSettings,
    memory: Optional[PairMemory] = None,
) -> torch.Tensor:
    """La-MMD, marginal MMD or their sum between the real tokens of two domains' rows.

    With a ``memory``, La-MMD's samples also hold the remembered vectors of the
    labels present in this batch; afterwards this batch's vectors are remembered.
    """
    mask_a, mask_b = batch.mask[rows_a], batch.mask[rows_b]
    h_a, h_b = batch.hidden[rows_a][mask_a], batch.hidden[rows_b][mask_b]
    marginal = None
    if settings.mmd in ("marginal", "label_aware+marginal"):
        marginal = marginal_mmd(h_a, h_b, max_tokens=settings.mmd_max_tokens, n_kernels=settings.mmd_kernels)
        if settings.mmd == "marginal":
            return marginal
    y_a = match.shared_a[gold[rows_a][mask_a]]
    y_b = match.shared_b[gold[rows_b][mask_b]]
    sample_a, sample_b = (h_a, y_a), (h_b, y_b)
    if memory is not None:
        sample_a, sample_b = widen_and_remember(memory, h_a, y_a, h_b, y_b, match.n_shared)
    total, _ = la_mmd(
        sample_a[0],
        sample_a[1],
        sample_b[0],
        sample_b[1],
        match.n_shared,
        max_tokens_per_label=settings.mmd_max_tokens,
        min_tokens=settings.mmd_min_tokens,
        n_kernels=settings.mmd_kernels,
        bandwidth=settings.mmd_bandwidth,
    )
    return total if marginal is None else total + marginal


# --------------------------------------------------------------------------
# Gold tag ids of a batch
# --------------------------------------------------------------------------

_BILUO = ("B", "I", "L", "U")


@lru_cache(maxsize=64)
def _tag_index(tags: Tuple[str, ...]) -> Dict[str, int]:
    return {tag: i for i, tag in enumerate(tags)}


def _unknown_tag(name: str, tag: str, domain: str, index: Dict[str, int]) -> ValueError:
    return ValueError(
        f"[{name}] tag {tag!r} in domain {domain!r} was not seen at "
        f"initialize (known tags: {list(index)}). Re-run initialize on data with this label."
    )


def _aligned_ids(eg: Example, index: Dict[str, int], scheme: str, name: str, domain: str) -> List[int]:
    """Per-token reference path: ``eg.get_aligned_ner()`` mapped to tag ids (None/'-' -> O)."""
    ids = []
    for tag in eg.get_aligned_ner():
        tag = OUTSIDE if tag in (None, "-", "") else biluo_to_scheme(tag, scheme)
        if tag not in index:
            raise _unknown_tag(name, tag, domain, index)
        ids.append(index[tag])
    return ids


def _identity_aligned(eg: Example) -> bool:
    """Predicted and reference docs have the same tokens (one ORTH array comparison)."""
    x, y = eg.predicted, eg.reference
    return len(x) == len(y) and bool(numpy.array_equal(x.to_array(ORTH), y.to_array(ORTH)))


def _entity_ids(
    eg: Example, index: Dict[str, int], scheme: str, name: str, domain: str, out: numpy.ndarray
) -> None:
    """Write the tag ids of the reference entities into ``out`` (already O), one slice per entity.

    Only for identity-aligned examples, where ``get_aligned_ner`` is the BILUO
    encoding of ``reference.ents`` and every other token is O (or missing -> O).
    """
    for ent in eg.reference.ents:
        start, end, label = ent.start, ent.end, ent.label_
        ids = []
        for prefix in _BILUO:
            tag = biluo_to_scheme(f"{prefix}-{label}", scheme)
            if tag not in index:
                raise _unknown_tag(name, tag, domain, index)
            ids.append(index[tag])
        b, i, l, u = ids
        if end - start == 1:
            out[start] = u
        else:
            out[start] = b
            out[start + 1 : end - 1] = i
            out[end - 1] = l


def gold_tag_ids(
    examples: Sequence[Example],
    domain_ids: Sequence[int],
    tag_sets: Sequence[Sequence[str]],
    scheme: str,
    shape: Tuple[int, int],
    *,
    domains: Optional[Sequence[str]] = None,
    name: str = "ladtl_ner",
) -> torch.Tensor:
    """(B, T) gold tag ids, each row in its own domain's tag set; misaligned tokens count as O.

    Same result (and errors) as mapping ``eg.get_aligned_ner()`` token by token,
    but when an Example's predicted and reference tokens are identical (the
    usual case in training) it writes one numpy slice per entity instead of
    building Token objects and tag strings for every token.
    tag_sets: the tags of each domain, by domain index; domains: their names
    (for error messages).
    """
    gold = numpy.zeros(shape, dtype=numpy.int64)
    indexes = [_tag_index(tuple(tags)) for tags in tag_sets]
    names = list(domains) if domains is not None else [str(i) for i in range(len(tag_sets))]
    outside = [index.get(OUTSIDE) for index in indexes]
    for row, (eg, domain_id) in enumerate(zip(examples, domain_ids)):
        index, domain = indexes[domain_id], names[domain_id]
        n = len(eg.predicted)
        if _identity_aligned(eg):
            if outside[domain_id] is None:
                raise _unknown_tag(name, OUTSIDE, domain, index)
            ids = gold[row, :n]
            ids.fill(outside[domain_id])
            _entity_ids(eg, index, scheme, name, domain, ids)
        else:
            gold[row, :n] = _aligned_ids(eg, index, scheme, name, domain)
    return torch.from_numpy(gold)
