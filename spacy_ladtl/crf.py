"""A batched, masked linear-chain CRF with tag-scheme constraints.

All methods take ``emissions`` of shape ``(B, T, K)`` and a left-aligned boolean
``mask`` of shape ``(B, T)`` (``True`` for the first ``len_i`` positions, every
``len_i >= 1``). Forbidden transitions are not removed but penalised with the
finite ``CONSTRAINT_PENALTY`` both in training and in decoding, so gradients
stay finite and decoded paths obey the scheme.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

CONSTRAINT_PENALTY: float = -1e4

# scheme name -> {prefix in the tag: canonical BILUO prefix}
_SCHEME_PREFIXES: Dict[str, Dict[str, str]] = {
    "BILUO": {"B": "B", "I": "I", "L": "L", "U": "U"},
    "BIOES": {"B": "B", "I": "I", "E": "L", "S": "U"},
    "BIO": {"B": "B", "I": "I"},
}


def _parse_tag(tag: str, scheme: str) -> Tuple[str, str]:
    """Split ``tag`` into (canonical prefix, entity type); ``("O", "")`` for outside."""
    if tag == "O":
        return "O", ""
    prefixes = _SCHEME_PREFIXES[scheme]
    prefix, sep, label = tag.partition("-")
    if not sep or not label or prefix not in prefixes:
        raise ValueError(f"Tag {tag!r} does not fit the tagging scheme {scheme!r}")
    return prefixes[prefix], label


def tag_constraints(tags: Sequence[str], scheme: str) -> Tuple[Tensor, Tensor, Tensor]:
    """Allowed transitions for a tag set under a tagging scheme.

    Returns boolean tensors ``allowed`` (K, K) where ``allowed[i, j]`` means tag
    ``j`` may follow tag ``i``, ``allowed_start`` (K,) and ``allowed_end`` (K,).
    ``scheme`` is "BILUO", "BIOES" (E/S treated as L/U), "BIO" or "none".
    """
    k = len(tags)
    if scheme == "none":
        ones = torch.ones(k, dtype=torch.bool)
        return torch.ones(k, k, dtype=torch.bool), ones, ones.clone()
    if scheme not in _SCHEME_PREFIXES:
        raise ValueError(f"Unknown tagging scheme {scheme!r} (for tags {list(tags)!r})")
    parsed = [_parse_tag(tag, scheme) for tag in tags]
    allowed = torch.zeros(k, k, dtype=torch.bool)
    if scheme == "BIO":
        start = torch.tensor([p in ("O", "B") for p, _ in parsed], dtype=torch.bool)
        end = torch.ones(k, dtype=torch.bool)
        for i, (p_i, l_i) in enumerate(parsed):
            for j, (p_j, l_j) in enumerate(parsed):
                allowed[i, j] = p_j in ("O", "B") or (p_i in ("B", "I") and l_i == l_j)
    else:  # BILUO / BIOES
        start = torch.tensor([p in ("O", "B", "U") for p, _ in parsed], dtype=torch.bool)
        end = torch.tensor([p in ("O", "L", "U") for p, _ in parsed], dtype=torch.bool)
        for i, (p_i, l_i) in enumerate(parsed):
            for j, (p_j, l_j) in enumerate(parsed):
                if p_i in ("B", "I"):
                    allowed[i, j] = p_j in ("I", "L") and l_i == l_j
                else:
                    allowed[i, j] = p_j in ("O", "B", "U")
    return allowed, start, end


def _penalty(allowed: Tensor) -> Tensor:
    """0.0 where allowed, ``CONSTRAINT_PENALTY`` where forbidden."""
    return torch.where(allowed, 0.0, CONSTRAINT_PENALTY).to(torch.get_default_dtype())


class CRF(nn.Module):
    """Linear-chain CRF over ``len(tags)`` tags with scheme constraints."""

    def __init__(self, tags: Sequence[str], scheme: str = "BILUO") -> None:
        super().__init__()
        self.tags: List[str] = list(tags)
        self.scheme = scheme
        self.num_tags = len(self.tags)
        allowed, start, end = tag_constraints(self.tags, scheme)
        k = self.num_tags
        self.transitions = nn.Parameter(torch.empty(k, k).uniform_(-0.1, 0.1))
        self.start_transitions = nn.Parameter(torch.empty(k).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(k).uniform_(-0.1, 0.1))
        self.transition_penalty: Tensor
        self.start_penalty: Tensor
        self.end_penalty: Tensor
        self.register_buffer("transition_penalty", _penalty(allowed), persistent=False)
        self.register_buffer("start_penalty", _penalty(start), persistent=False)
        self.register_buffer("end_penalty", _penalty(end), persistent=False)

    def constrained(self) -> Tuple[Tensor, Tensor, Tensor]:
        """(transitions, start, end) scores with the constraint penalties added."""
        return (
            self.transitions + self.transition_penalty,
            self.start_transitions + self.start_penalty,
            self.end_transitions + self.end_penalty,
        )

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Log normaliser ``log Z`` per sentence, shape (B,), by the forward algorithm."""
        batch, length, _ = emissions.shape
        if batch == 0:
            return emissions.new_zeros(0)
        mask = mask.to(device=emissions.device, dtype=torch.bool)
        trans, start, end = self.constrained()
        alpha = start + emissions[:, 0]  # (B, K)
        for t in range(1, length):
            # (B, K_prev, 1) + (K_prev, K_next) + (B, 1, K_next)
            scores = alpha.unsqueeze(2) + trans + emissions[:, t].unsqueeze(1)
            alpha = torch.where(mask[:, t, None], torch.logsumexp(scores, dim=1), alpha)
        return torch.logsumexp(alpha + end, dim=1)

    def gold_score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Unnormalised score of the given tag sequences, shape (B,)."""
        batch, length, _ = emissions.shape
        if batch == 0:
            return emissions.new_zeros(0)
        mask = mask.to(device=emissions.device, dtype=torch.bool)
        tags = tags.to(emissions.device).long().masked_fill(~mask, 0)
        trans, start, end = self.constrained()
        weights = mask.to(emissions.dtype)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        score = start[tags[:, 0]] + (emit * weights).sum(1)
        if length > 1:
            score = score + (trans[tags[:, :-1], tags[:, 1:]] * weights[:, 1:]).sum(1)
        last = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)
        return score + end[last]

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Per-sentence negative log-likelihood ``log Z - score(tags)``, shape (B,)."""
        return self.log_partition(emissions, mask) - self.gold_score(emissions, tags, mask)

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Alias of :meth:`nll`."""
        return self.nll(emissions, tags, mask)

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
        """Viterbi: best paths (B, T) (padding = 0) and their scores (B,)."""
        batch, length, _ = emissions.shape
        device = emissions.device
        paths = torch.zeros(batch, length, dtype=torch.long, device=device)
        if batch == 0:
            return paths, emissions.new_zeros(0)
        mask = mask.to(device=device, dtype=torch.bool)
        trans, start, end = self.constrained()
        score = start + emissions[:, 0]  # (B, K)
        backpointers: List[Tensor] = []  # backpointers[t-1][b, j]: best tag at t-1 given j at t
        for t in range(1, length):
            best, idx = (score.unsqueeze(2) + trans).max(dim=1)
            backpointers.append(idx)
            score = torch.where(mask[:, t, None], best + emissions[:, t], score)
        best_score, best_last = (score + end).max(dim=1)
        last_pos = mask.sum(1) - 1  # (B,)
        current = best_last
        for t in range(length - 1, -1, -1):
            current = torch.where(last_pos == t, best_last, current)
            paths[:, t] = torch.where(t <= last_pos, current, 0)
            if t > 0:
                current = backpointers[t - 1].gather(1, current.unsqueeze(1)).squeeze(1)
        return paths, best_score
