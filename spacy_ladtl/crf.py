"""A batched, masked linear-chain CRF with tag-scheme constraints.

All methods take ``emissions`` of shape ``(B, T, K)`` and a left-aligned boolean
``mask`` of shape ``(B, T)`` (``True`` for the first ``len_i`` positions, every
``len_i >= 1``). Forbidden transitions are not removed but penalised with the
finite ``CONSTRAINT_PENALTY`` both in training and in decoding, so gradients
stay finite and decoded paths obey the scheme.
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
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


# --------------------------------------------------------------------------
# Forward algorithm and Viterbi as functions of (emissions, mask, scores)
# --------------------------------------------------------------------------

# The scaled (probability-space) forward algorithm drops states whose mass falls
# below float64's range (~e^-708) relative to the best state. That is exact when
# every tag can reach every other within ``diameter`` allowed steps and
# ``diameter * (emission spread + score spread + log K)`` stays below this bound;
# otherwise the log-space recursion is used.
_FAST_GAP_LIMIT = 600.0


def scheme_diameter(allowed: Tensor) -> Optional[int]:
    """Least ``d`` such that any tag reaches any tag in exactly ``d`` allowed steps.

    ``None`` if there is no such ``d`` <= K + 1 (some tag is unreachable, or the
    allowed graph is periodic); the CRF then always uses the log-space recursion.
    """
    k = allowed.shape[0]
    if k == 0:
        return None
    step = allowed.to(torch.float64)
    reach = step.clone()
    for d in range(1, k + 2):
        if bool((reach > 0).all()):
            return d
        reach = ((reach @ step) > 0).to(torch.float64)
    return None


def fast_path_is_exact(
    emissions: Tensor, mask: Tensor, trans: Tensor, start: Tensor, end: Tensor, diameter: Optional[int]
) -> bool:
    """Whether :func:`fast_log_partition` equals the log-space recursion (to rounding).

    Checks ``diameter * (largest emission spread of a real token + spread of the
    allowed transition/start/end scores + log K) < _FAST_GAP_LIMIT``.
    """
    if diameter is None or emissions.dtype not in (torch.float32, torch.float64):
        return False
    with torch.no_grad():
        em = emissions.detach().masked_fill(~mask.unsqueeze(2), 0.0)
        low, high = torch.aminmax(em, dim=2)
        scores = torch.cat([trans.detach().reshape(-1), start.detach(), end.detach()])
        allowed = scores > CONSTRAINT_PENALTY / 2
        score_spread = torch.where(allowed, scores, -math.inf).max() - torch.where(allowed, scores, math.inf).min()
        gap = diameter * ((high - low).max() + score_spread + math.log(max(emissions.shape[2], 2)))
        return float(gap) < _FAST_GAP_LIMIT  # False for nan / inf


def log_partition_reference(emissions: Tensor, mask: Tensor, trans: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Log-space forward algorithm, one logsumexp per position (B,); autograd does the rest."""
    length = emissions.shape[1]
    alpha = start + emissions[:, 0]  # (B, K)
    for t in range(1, length):
        # (B, K_prev, 1) + (K_prev, K_next) + (B, 1, K_next)
        scores = alpha.unsqueeze(2) + trans + emissions[:, t].unsqueeze(1)
        alpha = torch.where(mask[:, t, None], torch.logsumexp(scores, dim=1), alpha)
    return torch.logsumexp(alpha + end, dim=1)


class _ScaledForward(torch.autograd.Function):
    """log Z by the scaled forward algorithm in float64; gradient by forward-backward.

    Per position only a (B, K) @ (K, K) product and a rescaling are done, with no
    autograd graph; the backward pass runs the matching scaled beta recursion
    and forms all marginals (hence all gradients) in a few batched operations.
    """

    @staticmethod
    def forward(ctx: Any, emissions: Tensor, mask: Tensor, trans: Tensor, start: Tensor, end: Tensor) -> Tensor:  # type: ignore[override]
        f64 = torch.float64
        batch, length, k = emissions.shape
        valid = mask.unsqueeze(2)
        em = emissions.detach().to(f64).masked_fill(~valid, 0.0)  # padding: neutral emissions
        em_t = em.transpose(0, 1)  # (T, B, K) view
        emax = em_t.amax(2, keepdim=True)  # (T, B, 1)
        weights = torch.exp(em_t - emax)  # (T, B, K), position-wise shifted emissions
        tr = trans.detach().to(f64)
        tmax = tr.max()
        e_trans = torch.exp(tr - tmax)  # forbidden cells become exactly 0
        st = start.detach().to(f64)
        en = end.detach().to(f64)
        first = st + em_t[0]
        m0 = first.amax(1, keepdim=True)
        alphas = torch.empty(length, batch, k, dtype=f64, device=em.device)  # unnormalised
        scales = torch.empty(length, batch, 1, dtype=f64, device=em.device)
        steps, step_scales, step_weights = alphas.unbind(0), scales.unbind(0), weights.unbind(0)
        torch.exp(first - m0, out=steps[0])
        torch.sum(steps[0], 1, keepdim=True, out=step_scales[0])
        a = steps[0] / step_scales[0]
        for t in range(1, length):
            alpha_t, scale_t = steps[t], step_scales[t]
            torch.mm(a, e_trans, out=alpha_t)
            alpha_t.mul_(step_weights[t])
            torch.sum(alpha_t, 1, keepdim=True, out=scale_t)
            a = alpha_t / scale_t
        mask_t = mask.transpose(0, 1)  # (T, B)
        last = mask.sum(1) - 1
        rows = torch.arange(batch, device=em.device)
        log_scales = torch.where(mask_t, scales.squeeze(2).log(), 0.0).sum(0)
        shifts = torch.where(mask_t[1:], emax[1:, :, 0] + tmax, 0.0).sum(0)
        a_last = alphas[last, rows] / scales[last, rows]
        emx = en.max()
        end_w = torch.exp(en - emx)
        log_z = m0.squeeze(1) + log_scales + shifts + torch.log(a_last @ end_w) + emx
        ctx.save_for_backward(alphas, scales, weights, e_trans, end_w, mask, last)
        ctx.dtypes = (emissions.dtype, trans.dtype, start.dtype, end.dtype)
        return log_z.to(emissions.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> Tuple[Optional[Tensor], ...]:  # type: ignore[override]
        alphas, scales, weights, e_trans, end_w, mask, last = ctx.saved_tensors
        length, batch, k = alphas.shape
        f64 = torch.float64
        g = grad.detach().to(f64)
        mask_t = mask.transpose(0, 1)
        betas = torch.empty_like(alphas)
        end_b = end_w.expand(batch, k)
        betas[length - 1] = end_b
        e_trans_t = e_trans.t()
        steps, step_scales, step_weights = betas.unbind(0), scales.unbind(0), weights.unbind(0)
        ends_inside = (~mask_t.all(1)).tolist()  # positions where some sentence is padding
        step_mask = mask_t.unsqueeze(2).unbind(0)
        scratch = torch.empty(batch, k, dtype=f64, device=alphas.device)
        for t in range(length - 1, 0, -1):
            # beta_{t-1}[i] = sum_j E[i, j] w_t[j] beta_t[j], scaled by the forward's c_t
            beta_prev = steps[t - 1]
            torch.mul(step_weights[t], steps[t], out=scratch)
            torch.mm(scratch, e_trans_t, out=beta_prev)
            beta_prev.div_(step_scales[t])
            if ends_inside[t]:  # rows whose sentence ends at t-1 (or earlier) restart from the end scores
                torch.where(step_mask[t], beta_prev, end_b, out=beta_prev)
        joint = alphas * betas  # (T, B, K) unnormalised unary marginals
        norm = joint.sum(2, keepdim=True)
        coef = torch.where(mask_t.unsqueeze(2), g.view(1, batch, 1) / norm, 0.0)  # (T, B, 1)
        unary = joint * coef  # g_b * P(y_t = j), 0 on padding
        d_emissions = d_trans = d_start = d_end = None
        if ctx.needs_input_grad[0]:
            d_emissions = unary.transpose(0, 1).to(ctx.dtypes[0])
        if ctx.needs_input_grad[2] and length > 1:
            prev = (alphas[:-1] / scales[:-1]) * coef[1:]  # (T-1, B, K)
            nxt = weights[1:] * betas[1:]
            d_trans = (e_trans * (prev.reshape(-1, k).t() @ nxt.reshape(-1, k))).to(ctx.dtypes[1])
        elif ctx.needs_input_grad[2]:
            d_trans = torch.zeros_like(e_trans, dtype=ctx.dtypes[1])
        if ctx.needs_input_grad[3]:
            d_start = unary[0].sum(0).to(ctx.dtypes[2])
        if ctx.needs_input_grad[4]:
            rows = torch.arange(batch, device=alphas.device)
            d_end = unary[last, rows].sum(0).to(ctx.dtypes[3])
        return d_emissions, None, d_trans, d_start, d_end


def fast_log_partition(emissions: Tensor, mask: Tensor, trans: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """log Z (B,) by the scaled float64 forward algorithm (see :class:`_ScaledForward`).

    Exact to rounding only under :func:`fast_path_is_exact`; use :func:`log_partition`.
    """
    return _ScaledForward.apply(emissions, mask, trans, start, end)


def log_partition(
    emissions: Tensor,
    mask: Tensor,
    trans: Tensor,
    start: Tensor,
    end: Tensor,
    diameter: Optional[int] = -1,
) -> Tensor:
    """log Z (B,) for constrained scores: the fast path where exact, else log space.

    ``diameter`` is :func:`scheme_diameter` of the allowed transitions (-1: compute
    it from ``trans``; None: always use the log-space recursion).
    """
    if emissions.shape[0] == 0:
        return emissions.new_zeros(0)
    if diameter == -1:
        diameter = scheme_diameter(trans.detach() > CONSTRAINT_PENALTY / 2)
    if fast_path_is_exact(emissions, mask, trans, start, end, diameter):
        log_z = fast_log_partition(emissions, mask, trans, start, end)
        if bool(torch.isfinite(log_z).all()):
            return log_z
    return log_partition_reference(emissions, mask, trans, start, end)


def viterbi_reference(emissions: Tensor, mask: Tensor, trans: Tensor, start: Tensor, end: Tensor) -> Tuple[Tensor, Tensor]:
    """Step-by-step Viterbi with torch backtracking: paths (B, T) (padding 0), scores (B,)."""
    batch, length, _ = emissions.shape
    paths = torch.zeros(batch, length, dtype=torch.long, device=emissions.device)
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


@torch.no_grad()
def viterbi(emissions: Tensor, mask: Tensor, trans: Tensor, start: Tensor, end: Tensor) -> Tuple[Tensor, Tensor]:
    """Batched Viterbi: paths (B, T) (padding 0) and best scores (B,).

    The forward pass keeps only the best score per (position, tag): one add into
    a reused (K_prev, B, K_next) buffer and one ``amax`` over its outer axis per
    position, no argmax and no masking (padding gets zero emissions and
    each sentence is read at its own last position). Backpointers are recomputed
    while backtracking, for the chosen tag only: an argmax over K per sentence and
    position (in numpy, on any device). The arithmetic, and the first-index tie-breaking, are
    those of :func:`viterbi_reference`, so paths and scores are identical.
    """
    batch, length, k = emissions.shape
    device = emissions.device
    em_t = emissions.masked_fill(~mask.unsqueeze(2), 0.0).transpose(0, 1).contiguous()  # (T, B, K)
    trans_t = trans.t().contiguous()  # (K_next, K_prev)
    scores = torch.empty(length, batch, k, dtype=emissions.dtype, device=device)
    torch.add(start, em_t[0], out=scores[0])
    if length > 1:
        # (K_prev, B, K_next): the max over K_prev is an elementwise max of K
        # contiguous (B, K_next) slabs, much faster than a short inner reduction
        block = torch.empty(k, batch, k, dtype=emissions.dtype, device=device)
        best = torch.empty(batch, k, dtype=emissions.dtype, device=device)
        trans_rows = trans.unsqueeze(1)  # (K_prev, 1, K_next)
        for t in range(1, length):
            torch.add(scores[t - 1].t().unsqueeze(2), trans_rows, out=block)
            torch.amax(block, 0, out=best)
            torch.add(best, em_t[t], out=scores[t])
    last = mask.sum(1) - 1
    rows = torch.arange(batch, device=device)
    best_score, best_last = (scores[last, rows] + end).max(dim=1)
    paths = _backtrack_numpy(scores.cpu(), trans_t.cpu(), last.cpu(), best_last.cpu(), mask.cpu())
    return torch.from_numpy(paths).to(device), best_score


def _backtrack_numpy(scores: Tensor, trans_t: Tensor, last: Tensor, best_last: Tensor, mask: Tensor) -> numpy.ndarray:
    """Best paths (B, T) from the per-position best scores (T, B, K); CPU tensors in, numpy out."""
    length, batch, _ = scores.shape
    sc, tr = scores.numpy(), trans_t.numpy()
    last_np, best_np = last.numpy(), best_last.numpy()
    out = numpy.zeros((batch, length), dtype=numpy.int64)
    cur = best_np
    for t in range(length - 1, -1, -1):
        cur = numpy.where(last_np == t, best_np, cur)
        out[:, t] = cur
        if t > 0:
            cur = (sc[t - 1] + tr[cur]).argmax(1)
    out[~mask.numpy()] = 0
    return out


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
        # constant per tag set: lets log_partition check the fast path's exactness cheaply
        self.diameter: Optional[int] = scheme_diameter(allowed)

    def constrained(self) -> Tuple[Tensor, Tensor, Tensor]:
        """(transitions, start, end) scores with the constraint penalties added."""
        return (
            self.transitions + self.transition_penalty,
            self.start_transitions + self.start_penalty,
            self.end_transitions + self.end_penalty,
        )

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Log normaliser ``log Z`` per sentence, shape (B,), by the forward algorithm.

        Uses :func:`fast_log_partition` (scaled forward algorithm with a
        forward-backward gradient) when it is exact for the inputs, else the
        plain log-space recursion :func:`log_partition_reference`.
        """
        batch = emissions.shape[0]
        if batch == 0:
            return emissions.new_zeros(0)
        mask = mask.to(device=emissions.device, dtype=torch.bool)
        trans, start, end = self.constrained()
        return log_partition(emissions, mask, trans, start, end, self.diameter)

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

    def decode(self, emissions: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
        """Viterbi: best paths (B, T) (padding = 0) and their scores (B,)."""
        batch, length, _ = emissions.shape
        if batch == 0:
            return torch.zeros(batch, length, dtype=torch.long, device=emissions.device), emissions.new_zeros(0)
        with torch.inference_mode():
            mask = mask.to(device=emissions.device, dtype=torch.bool)
            trans, start, end = self.constrained()
            paths, scores = viterbi(emissions, mask, trans, start, end)
        # plain (non-inference) tensors for callers outside inference mode
        return paths.clone(), scores.clone()
