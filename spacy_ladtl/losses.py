"""Transfer terms of La-DTL (Wang et al., NAACL 2018, sections 4.3-4.4).

* :func:`la_mmd` - label-aware MMD between the hidden vectors of two domains
  (eq. 4-5), computed for all labels in one kernel pass.
* :func:`marginal_mmd` - label-blind MMD (the paper's MMD-CRF-L2 ablation).
* :func:`crf_l2` - L2 distance between the CRF parameters of matched tags
  (eq. 6).

All functions are pure torch, differentiable, and return finite values for
empty inputs.
"""
from typing import Any, Optional, Tuple

import torch
from torch import Tensor

__all__ = [
    "gaussian_kernel_sum",
    "median_bandwidth",
    "mmd2",
    "MMD_BANDWIDTHS",
    "la_mmd",
    "marginal_mmd",
    "crf_l2",
]

_BANDWIDTH_FLOOR = 1e-6
MMD_BANDWIDTHS = ("pooled", "per_label")


def _sq_dists(x: Tensor, y: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances (Nx, Ny), clamped at 0.

    Both sets are shifted by the same (detached) vector first, which leaves
    distances and gradients unchanged but reduces cancellation error.
    """
    if x.shape[0] > 0:
        shift = x.detach().mean(0, keepdim=True)
        x = x - shift
        y = y - shift
    xx = (x * x).sum(1, keepdim=True)
    yy = (y * y).sum(1, keepdim=True).transpose(0, 1)
    return (xx + yy - 2.0 * (x @ y.transpose(0, 1))).clamp_min(0.0)


class _SelfSqDists(torch.autograd.Function):
    """``_sq_dists(z, z)`` with a one-matmul backward.

    The gradient of ``sum_ij G_ij d2_ij`` is ``2 (diag(S 1) zc - S zc)`` with
    ``S = G + G^T`` (``zc`` = z minus its detached mean), where autograd would
    differentiate both operands of ``zc @ zc^T``.
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor) -> Tensor:  # type: ignore[override]
        zc = z - z.mean(0, keepdim=True)
        sq = (zc * zc).sum(1, keepdim=True)
        raw = torch.addmm(sq + sq.transpose(0, 1), zc, zc.transpose(0, 1), alpha=-2.0)
        keep = raw >= 0.0  # clamp_min's gradient mask
        ctx.save_for_backward(zc, keep)
        return raw.clamp_min_(0.0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        zc, keep = ctx.saved_tensors
        g = grad * keep
        sym = g + g.transpose(0, 1)
        return 2.0 * (sym.sum(1, keepdim=True) * zc - sym @ zc)


def _self_sq_dists(z: Tensor) -> Tensor:
    """Pairwise squared distances of ``z`` (N, d) with itself, as ``_sq_dists(z, z)``."""
    if z.shape[0] == 0:
        return _sq_dists(z, z)
    return _SelfSqDists.apply(z)


def _kernel_from_sq_dists(
    d2: Tensor, bandwidth: Tensor, n_kernels: int, kernel_mul: float
) -> Tensor:
    """Multi-bandwidth Gaussian kernel sum from squared distances.

    ``bandwidth`` is a scalar or one value per row of ``d2`` (N,).

    For an integer ``kernel_mul`` >= 2 the bandwidths are ``bw_max / m**j``, so
    ``exp(-d2 / bw_j) = u ** (m**j)`` with ``u = exp(-d2 / bw_max)``: one ``exp``
    and repeated powers (squarings for m = 2) instead of ``n_kernels`` exps over a
    (n_kernels, Nx, Ny) stack.
    """
    mul = float(kernel_mul)
    bandwidth = torch.as_tensor(bandwidth, device=d2.device, dtype=d2.dtype)
    if bandwidth.dim() == 1:  # one bandwidth per row
        bandwidth = bandwidth.unsqueeze(1)
    if n_kernels >= 1 and mul >= 2.0 and mul == int(mul):
        m = int(mul)
        bw_max = bandwidth * (mul ** (n_kernels - 1 - n_kernels // 2))
        term = torch.exp(d2 / -bw_max)
        total = term
        for _ in range(n_kernels - 1):
            term = term * term if m == 2 else term**m
            total = total + term
        return total
    exps = torch.arange(n_kernels, device=d2.device, dtype=d2.dtype) - (n_kernels // 2)
    bws = bandwidth.unsqueeze(0) * (mul**exps).view(-1, 1, 1)
    # (n_kernels, Nx, Ny) -> (Nx, Ny)
    return torch.exp(-d2.unsqueeze(0) / bws).sum(0)


def gaussian_kernel_sum(
    x: Tensor,
    y: Tensor,
    bandwidth: Tensor,
    n_kernels: int = 5,
    kernel_mul: float = 2.0,
) -> Tensor:
    """Sum over ``n_kernels`` Gaussian kernels
    ``exp(-||x_i - y_j||^2 / (bandwidth * kernel_mul**(k - n_kernels//2)))`` -> (Nx, Ny)."""
    return _kernel_from_sq_dists(_sq_dists(x, y), bandwidth, n_kernels, kernel_mul)


def median_bandwidth(z: Tensor) -> Tensor:
    """Median of the non-zero pairwise squared distances of ``z`` (N, d).

    Detached, floored at 1e-6; 1.0 if N < 2 or all points coincide.
    """
    z = z.detach()
    one = torch.ones((), device=z.device, dtype=z.dtype)
    n = z.shape[0]
    if n < 2:
        return one
    # Exact (non-matmul) distances so that identical points give exactly 0.
    d = torch.cdist(z.unsqueeze(0), z.unsqueeze(0), compute_mode="donot_use_mm_for_euclid_dist")[0]
    iu = torch.triu_indices(n, n, offset=1, device=z.device)
    d2 = d[iu[0], iu[1]] ** 2
    d2 = d2[d2 > 0]
    if d2.numel() == 0:
        return one
    return d2.median().clamp_min(_BANDWIDTH_FLOOR)


def _median_from_sq_dists(d2: Tensor, z: Tensor) -> Tensor:
    """:func:`median_bandwidth` of ``z`` from its matmul squared distances ``d2`` (N, N).

    Saves the exact O(N^2 d) ``cdist``: pairs the matmul formula puts near zero
    (where its rounding noise could hide coincident points) are recomputed
    exactly, so coincident points still count as distance 0 and are left out.
    Equal to :func:`median_bandwidth` up to float rounding.
    """
    z = z.detach()
    one = torch.ones((), device=z.device, dtype=z.dtype)
    n = z.shape[0]
    if n < 2:
        return one
    d2 = d2.detach()
    zc = z - z.mean(0, keepdim=True)
    sq = (zc * zc).sum(1)
    upper = torch.ones(n, n, dtype=torch.bool, device=z.device).triu_(1)
    near = (d2 <= 1e-4 * (sq.unsqueeze(1) + sq.unsqueeze(0))) & upper
    rows, cols = near.nonzero(as_tuple=True)
    if rows.numel():
        d2 = d2.clone()
        d2[rows, cols] = ((zc[rows] - zc[cols]) ** 2).sum(1)
    values = d2[upper & (d2 > 0)]
    if values.numel() == 0:
        return one
    return values.median().clamp_min(_BANDWIDTH_FLOOR)


def _per_label_medians(d2: Tensor, z: Tensor, labels: Tensor) -> Tensor:
    """Per row of ``z``: the median bandwidth of the rows sharing its label -> (N,).

    Only same-label kernel entries enter La-MMD, so each label's kernel can use
    the scale of its own distances.
    """
    bw = z.new_ones(z.shape[0])
    for label in labels.unique().tolist():
        rows = (labels == label).nonzero(as_tuple=True)[0]
        bw[rows] = _median_from_sq_dists(d2[rows][:, rows], z[rows])
    return bw


def _zero_like_graph(*tensors: Tensor) -> Tensor:
    """A scalar zero that is connected to the graph of ``tensors``."""
    out = tensors[0].new_zeros(())
    for t in tensors:
        out = out + t.sum() * 0.0
    return out


def mmd2(
    x: Tensor,
    y: Tensor,
    n_kernels: int = 5,
    kernel_mul: float = 2.0,
    bandwidth: Optional[Tensor] = None,
) -> Tensor:
    """Biased (V-statistic) squared MMD between ``x`` (n, d) and ``y`` (m, d), eq. (4).

    ``bandwidth`` defaults to :func:`median_bandwidth` of the pooled sample.
    Returns a (graph-connected) zero if either side is empty.
    """
    n, m = x.shape[0], y.shape[0]
    if n == 0 or m == 0:
        return _zero_like_graph(x, y)
    z = torch.cat([x, y], 0)
    d2 = _self_sq_dists(z)
    if bandwidth is None:
        bandwidth = _median_from_sq_dists(d2, z)
    k = _kernel_from_sq_dists(d2, bandwidth, n_kernels, kernel_mul)
    w = torch.cat([z.new_full((n,), 1.0 / n), z.new_full((m,), -1.0 / m)])
    return (w @ k @ w).clamp_min(0.0)


def _random_cap(n: int, cap: int, device: torch.device, generator: Optional[torch.Generator]) -> Tensor:
    """Indices of a random subset of ``range(n)`` of size ``min(n, cap)``."""
    if n <= cap:
        return torch.arange(n, device=device)
    gdev = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(n, generator=generator, device=gdev)
    return perm[:cap].to(device)


def _capped_label_indices(
    y: Tensor,
    n_labels: int,
    cap: int,
    generator: Optional[torch.Generator],
) -> Tuple[Tensor, Tensor, Tensor]:
    """Randomly keep at most ``cap`` tokens per label (vectorised).

    Returns (token indices, their labels, kept count per label (n_labels,)).
    Tokens with labels outside ``[0, n_labels)`` (e.g. -1) are dropped.
    """
    device = y.device
    y = y.reshape(-1).long()
    n = y.shape[0]
    counts_dtype = torch.long
    if n == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty, torch.zeros(n_labels, dtype=counts_dtype, device=device)
    gdev = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(n, generator=generator, device=gdev).to(device)
    lab = y[perm]
    valid = (lab >= 0) & (lab < n_labels)
    perm, lab = perm[valid], lab[valid]
    # stable sort keeps the random order within each label
    lab, order = torch.sort(lab, stable=True)
    perm = perm[order]
    counts = torch.bincount(lab, minlength=n_labels)
    keep = rank_within_label(lab, n_labels) < cap
    return perm[keep], lab[keep], counts.clamp_max(cap)


def rank_within_label(sorted_labels: Tensor, n_labels: int) -> Tensor:
    """Position of each entry among the entries of its label, for labels sorted ascending."""
    counts = torch.bincount(sorted_labels, minlength=n_labels)
    starts = torch.cumsum(counts, 0) - counts
    return torch.arange(sorted_labels.shape[0], device=sorted_labels.device) - starts[sorted_labels]


def la_mmd(
    h_a: Tensor,
    y_a: Tensor,
    h_b: Tensor,
    y_b: Tensor,
    n_labels: int,
    *,
    mu: Optional[Tensor] = None,
    max_tokens_per_label: int = 64,
    min_tokens: int = 2,
    n_kernels: int = 5,
    kernel_mul: float = 2.0,
    bandwidth: str = "pooled",
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor]:
    """Label-aware MMD: ``sum_y mu_y * MMD^2(h_a[y_a==y], h_b[y_b==y])``, eq. (5).

    ``y_a``/``y_b`` hold a shared label id per token, -1 = ignore. Per label
    and side at most ``max_tokens_per_label`` random tokens are used; labels
    with fewer than ``min_tokens`` tokens on either side are skipped. All
    labels share one distance matrix over the pooled tokens ``Z`` and
    per-label MMD^2 is ``w_y^T K w_y``. ``bandwidth``: ``"pooled"`` = one
    median over all of ``Z``; ``"per_label"`` = each label's own median over
    its two sides' tokens (the scale of the distances its MMD compares).

    Returns ``(total, per_label)`` with ``per_label`` of shape (n_labels,)
    and 0 for skipped labels. Always finite; gradients flow to h_a and h_b.
    """
    device, dtype = h_a.device, h_a.dtype
    per_label = torch.zeros(n_labels, device=device, dtype=dtype)
    zero = _zero_like_graph(h_a, h_b)
    if n_labels <= 0:
        return zero, per_label
    cap = max(int(max_tokens_per_label), 1)
    idx_a, lab_a, n_a = _capped_label_indices(y_a.to(device), n_labels, cap, generator)
    idx_b, lab_b, n_b = _capped_label_indices(y_b.to(device), n_labels, cap, generator)
    min_t = max(int(min_tokens), 1)
    active = (n_a >= min_t) & (n_b >= min_t)
    if not bool(active.any()):
        return zero, per_label
    keep_a = active[lab_a]
    keep_b = active[lab_b]
    idx_a, lab_a = idx_a[keep_a], lab_a[keep_a]
    idx_b, lab_b = idx_b[keep_b], lab_b[keep_b]

    z = torch.cat([h_a[idx_a], h_b[idx_b]], 0)
    d2 = _self_sq_dists(z)  # one distance matrix for both the bandwidth and the kernel
    if bandwidth == "pooled":
        bw = _median_from_sq_dists(d2, z)
    elif bandwidth == "per_label":
        bw = _per_label_medians(d2, z, torch.cat([lab_a, lab_b]))
    else:
        raise ValueError(f"bandwidth = {bandwidth!r} is not one of {MMD_BANDWIDTHS}.")
    k = _kernel_from_sq_dists(d2, bw, n_kernels, kernel_mul)

    inv_a = 1.0 / n_a.clamp_min(1).to(dtype)
    inv_b = 1.0 / n_b.clamp_min(1).to(dtype)
    n_tok = z.shape[0]
    w = torch.zeros(n_tok, n_labels, device=device, dtype=dtype)
    rows = torch.arange(n_tok, device=device)
    na_tok = idx_a.shape[0]
    w[rows[:na_tok], lab_a] = inv_a[lab_a]
    w[rows[na_tok:], lab_b] = -inv_b[lab_b]

    per_label = ((k @ w) * w).sum(0).clamp_min(0.0)
    per_label = torch.where(active, per_label, torch.zeros_like(per_label))
    if mu is None:
        weights = torch.ones(n_labels, device=device, dtype=dtype)
    else:
        weights = torch.as_tensor(mu, device=device, dtype=dtype).reshape(-1)
    total = (weights * per_label).sum() + zero
    return total, per_label


def marginal_mmd(
    h_a: Tensor,
    h_b: Tensor,
    *,
    max_tokens: int = 256,
    n_kernels: int = 5,
    kernel_mul: float = 2.0,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Label-blind MMD^2 between the two domains' vectors, each side randomly
    capped at ``max_tokens`` (the paper's MMD-CRF-L2 ablation)."""
    cap = max(int(max_tokens), 1)
    ia = _random_cap(h_a.shape[0], cap, h_a.device, generator)
    ib = _random_cap(h_b.shape[0], cap, h_b.device, generator)
    return mmd2(h_a[ia], h_b[ib], n_kernels=n_kernels, kernel_mul=kernel_mul)


def crf_l2(head_a: torch.nn.Module, head_b: torch.nn.Module, pairs: Tensor) -> Tensor:
    """CRF parameter transfer ``||W_a - W_b||^2 + ||A_a - A_b||^2`` over matched tags.

    Each head exposes ``emission`` (nn.Linear, weight (K, nI), bias (K,)) and
    ``crf.transitions`` (K, K), ``crf.start_transitions`` (K,),
    ``crf.end_transitions`` (K,). ``pairs`` (M, 2) rows ``(i, j)`` mean tag i
    of head_a matches tag j of head_b. Emission rows/biases, start/end
    entries and all transition cells between matched tags are compared;
    unmatched tags contribute nothing. M == 0 -> zero.
    """
    w_a, w_b = head_a.emission.weight, head_b.emission.weight
    device, dtype = w_a.device, w_a.dtype
    pairs = torch.as_tensor(pairs, device=device, dtype=torch.long).reshape(-1, 2)
    if pairs.shape[0] == 0:
        return (w_a.sum() + w_b.sum()) * 0.0
    ia, ib = pairs[:, 0], pairs[:, 1]
    total = ((w_a[ia] - w_b[ib]) ** 2).sum()
    b_a, b_b = head_a.emission.bias, head_b.emission.bias
    if b_a is not None and b_b is not None:
        total = total + ((b_a[ia] - b_b[ib]) ** 2).sum()
    crf_a, crf_b = head_a.crf, head_b.crf
    t_a = crf_a.transitions[ia.unsqueeze(1), ia.unsqueeze(0)]
    t_b = crf_b.transitions[ib.unsqueeze(1), ib.unsqueeze(0)]
    total = total + ((t_a - t_b) ** 2).sum()
    total = total + ((crf_a.start_transitions[ia] - crf_b.start_transitions[ib]) ** 2).sum()
    total = total + ((crf_a.end_transitions[ia] - crf_b.end_transitions[ib]) ** 2).sum()
    return total.to(dtype)
