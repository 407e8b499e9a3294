import time

import pytest
import torch
from torch import nn

from spacy_ladtl.losses import (
    crf_l2,
    gaussian_kernel_sum,
    la_mmd,
    marginal_mmd,
    median_bandwidth,
    mmd2,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


# ---------------------------------------------------------------- kernels


def test_gaussian_kernel_sum_matches_formula():
    x, y = _randn(4, 3, seed=1), _randn(5, 3, seed=2)
    bw = torch.tensor(1.7)
    k = gaussian_kernel_sum(x, y, bw, n_kernels=3, kernel_mul=2.0)
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    expected = sum(torch.exp(-d2 / (1.7 * 2.0 ** (i - 1))) for i in range(3))
    assert k.shape == (4, 5)
    assert torch.allclose(k, expected, atol=1e-5)


def test_median_bandwidth():
    z = torch.tensor([[0.0], [1.0], [3.0], [3.0]])
    # non-zero squared distances: 1, 9, 9, 4, 4 -> median 4
    assert median_bandwidth(z).item() == pytest.approx(4.0)
    # zero distances (duplicates) are excluded: non-zero ones are 4, 4, 4
    z = torch.tensor([[0.0], [0.0], [0.0], [2.0]])
    assert median_bandwidth(z).item() == pytest.approx(4.0)
    assert median_bandwidth(torch.zeros(1, 3)).item() == 1.0
    assert median_bandwidth(torch.zeros(0, 3)).item() == 1.0
    assert median_bandwidth(torch.zeros(5, 3)).item() > 0
    z = torch.randn(6, 2, requires_grad=True)
    assert not median_bandwidth(z).requires_grad


# ---------------------------------------------------------------- mmd2


def test_mmd2_identical_is_zero():
    x = _randn(20, 8)
    assert abs(mmd2(x, x.clone()).item()) < 1e-6


def test_mmd2_shift_positive_grows_and_symmetric():
    x, y = _randn(30, 4, seed=1), _randn(30, 4, seed=2)
    bw = median_bandwidth(torch.cat([x, y]))
    vals = [mmd2(x, y + s, bandwidth=bw).item() for s in (0.0, 1.0, 3.0)]
    assert vals[2] > 0.1
    assert vals[0] < vals[1] < vals[2]
    assert mmd2(x, y + 3).item() == pytest.approx(mmd2(y + 3, x).item(), abs=1e-6)


def test_mmd2_empty_side_is_zero():
    x = _randn(5, 3).requires_grad_()
    out = mmd2(x, torch.zeros(0, 3))
    assert out.item() == 0.0
    out.backward()
    assert torch.all(x.grad == 0)


def test_mmd2_float64():
    x = _randn(10, 3, dtype=torch.float64)
    out = mmd2(x, x + 2)
    assert out.dtype == torch.float64 and out.item() > 0


# ---------------------------------------------------------------- la_mmd


def _two_domains(n_per_label: int = 20, n_labels: int = 3, d: int = 6):
    """Identical per-label vectors in both domains (in shuffled order)."""
    h_a = _randn(n_per_label * n_labels, d, seed=3)
    y_a = torch.arange(n_labels).repeat_interleave(n_per_label)
    perm = torch.randperm(h_a.shape[0], generator=_gen(4))
    return h_a, y_a, h_a[perm].clone(), y_a[perm].clone()


def test_la_mmd_identical_domains_zero():
    h_a, y_a, h_b, y_b = _two_domains()
    total, per_label = la_mmd(h_a, y_a, h_b, y_b, 3, generator=_gen())
    assert per_label.shape == (3,)
    assert abs(total.item()) < 1e-5
    assert per_label.abs().max().item() < 1e-5


def test_la_mmd_only_shifted_label_nonzero():
    h_a, y_a, h_b, y_b = _two_domains()
    h_b = h_b.clone()
    h_b[y_b == 1] += 3.0
    total, per_label = la_mmd(h_a, y_a, h_b, y_b, 3, generator=_gen())
    assert per_label[1].item() > 0.05
    assert per_label[0].abs().item() < 1e-5
    assert per_label[2].abs().item() < 1e-5
    assert total.item() == pytest.approx(per_label.sum().item(), rel=1e-5)
    # mu weights the labels
    mu = torch.tensor([1.0, 0.5, 1.0])
    total_mu, _ = la_mmd(h_a, y_a, h_b, y_b, 3, mu=mu, generator=_gen())
    assert total_mu.item() == pytest.approx(0.5 * per_label[1].item(), rel=1e-4)


def test_la_mmd_matches_mmd2_with_shared_bandwidth():
    x, y = _randn(10, 4, seed=5), _randn(12, 4, seed=6) + 1
    total, per_label = la_mmd(x, torch.zeros(10, dtype=torch.long), y, torch.zeros(12, dtype=torch.long), 1)
    ref = mmd2(x, y, bandwidth=median_bandwidth(torch.cat([x, y])))
    assert total.item() == pytest.approx(ref.item(), rel=1e-4)


def test_la_mmd_per_label_bandwidth_is_each_labels_own_mmd():
    # Two labels far apart: the pooled median is set by the gap between them,
    # the per-label one by each label's own spread.
    x0, y0 = _randn(10, 4, seed=5), _randn(12, 4, seed=6) + 0.5
    x1, y1 = _randn(8, 4, seed=7) + 20.0, _randn(9, 4, seed=8) + 20.5
    h_a, h_b = torch.cat([x0, x1]), torch.cat([y0, y1])
    y_a = torch.tensor([0] * 10 + [1] * 8)
    y_b = torch.tensor([0] * 12 + [1] * 9)
    _, pooled = la_mmd(h_a, y_a, h_b, y_b, 2)
    total, per_label = la_mmd(h_a, y_a, h_b, y_b, 2, bandwidth="per_label")
    for label, (x, y) in enumerate([(x0, y0), (x1, y1)]):
        ref = mmd2(x, y, bandwidth=median_bandwidth(torch.cat([x, y])))
        assert per_label[label].item() == pytest.approx(ref.item(), rel=1e-4)
    assert per_label[0].item() > 2 * pooled[0].item()
    h_a.requires_grad_(True)
    la_mmd(h_a, y_a, h_b, y_b, 2, bandwidth="per_label")[0].backward()
    assert torch.isfinite(h_a.grad).all() and h_a.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="per_label"):
        la_mmd(h_a, y_a, h_b, y_b, 2, bandwidth="median")


def test_la_mmd_ignores_minus_one_tokens():
    h_a, y_a, h_b, y_b = _two_domains()
    y_a = torch.cat([y_a, torch.full((7,), -1)])
    y_b = torch.cat([y_b, torch.full((9,), -1)])
    h_a = torch.cat([h_a, _randn(7, 6, seed=7)])
    h_b = torch.cat([h_b, _randn(9, 6, seed=8)])
    base, base_pl = la_mmd(h_a, y_a, h_b, y_b, 3, generator=_gen())
    h_b2 = h_b.clone()
    h_b2[y_b == -1] += 10.0
    moved, moved_pl = la_mmd(h_a, y_a, h_b2, y_b, 3, generator=_gen())
    assert moved.item() == pytest.approx(base.item(), abs=1e-6)
    assert torch.allclose(moved_pl, base_pl, atol=1e-6)
    # labels outside [0, n_labels) are ignored as well
    h_b3 = h_b.clone()
    y_b3 = y_b.clone()
    y_b3[y_b == -1] = 5
    h_b3[y_b == -1] += 10.0
    other, _ = la_mmd(h_a, y_a, h_b3, y_b3, 3, generator=_gen())
    assert other.item() == pytest.approx(base.item(), abs=1e-6)


def test_la_mmd_skips_sparse_labels_and_stays_finite():
    d = 4
    h_a = _randn(6, d, seed=9)
    h_b = _randn(6, d, seed=10) + 2
    # label 0: 3 vs 3 tokens (used); label 1: 1 token on side a (skipped);
    # label 2: 0 tokens on side b (skipped)
    y_a = torch.tensor([0, 0, 0, 1, 2, 2])
    y_b = torch.tensor([0, 0, 0, 1, 1, -1])
    total, per_label = la_mmd(h_a, y_a, h_b, y_b, 3)
    assert torch.isfinite(total) and torch.isfinite(per_label).all()
    assert per_label[0].item() > 0
    assert per_label[1].item() == 0.0 and per_label[2].item() == 0.0


@pytest.mark.parametrize(
    "na,nb,ya_fill,yb_fill",
    [(0, 5, 0, 0), (5, 0, 0, 0), (0, 0, 0, 0), (5, 5, -1, -1), (1, 1, 0, 0)],
)
def test_la_mmd_empty_cases(na, nb, ya_fill, yb_fill):
    h_a = _randn(na, 3, seed=11).requires_grad_()
    h_b = _randn(nb, 3, seed=12).requires_grad_()
    y_a = torch.full((na,), ya_fill, dtype=torch.long)
    y_b = torch.full((nb,), yb_fill, dtype=torch.long)
    total, per_label = la_mmd(h_a, y_a, h_b, y_b, 4)
    assert torch.isfinite(total) and total.item() == 0.0
    assert per_label.shape == (4,) and torch.all(per_label == 0)
    total.backward()
    for h in (h_a, h_b):
        assert h.grad is None or torch.isfinite(h.grad).all()


def test_la_mmd_identical_points_finite():
    h = torch.ones(8, 3, requires_grad=True)
    y = torch.zeros(8, dtype=torch.long)
    total, per_label = la_mmd(h[:4], y[:4], h[4:], y[4:], 1)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(h.grad).all()
    assert abs(total.item()) < 1e-6


def test_la_mmd_cap_bounds_cost():
    n = 10_000
    h_a = _randn(n, 16, seed=13)
    h_b = _randn(n, 16, seed=14) + 1
    y = torch.zeros(n, dtype=torch.long)
    start = time.perf_counter()
    total, _ = la_mmd(h_a, y, h_b, y, 2, max_tokens_per_label=64, generator=_gen())
    assert time.perf_counter() - start < 1.0
    assert torch.isfinite(total) and total.item() > 0


def test_la_mmd_cap_uses_exactly_capped_subset():
    """With the cap, the result equals mmd2 on the same seeded random subset."""
    n, cap = 50, 4
    h_a = _randn(n, 5, seed=15)
    h_b = _randn(n, 5, seed=16) + 0.5
    y = torch.zeros(n, dtype=torch.long)
    total, _ = la_mmd(h_a, y, h_b, y, 1, max_tokens_per_label=cap, generator=_gen(42))
    # replay the sampling: one randperm per side, stable sort by label keeps order
    g = _gen(42)
    ia = torch.randperm(n, generator=g)[:cap]
    ib = torch.randperm(n, generator=g)[:cap]
    xa, xb = h_a[ia], h_b[ib]
    ref = mmd2(xa, xb, bandwidth=median_bandwidth(torch.cat([xa, xb])))
    assert total.item() == pytest.approx(ref.item(), rel=1e-4)
    full, _ = la_mmd(h_a, y, h_b, y, 1, max_tokens_per_label=n)
    assert full.item() != pytest.approx(total.item(), rel=1e-3)


def test_la_mmd_gradient_flows():
    h_a0, y_a, h_b0, y_b = _two_domains()
    y_a = torch.cat([y_a, torch.full((5,), -1)])
    h_a = torch.cat([h_a0, _randn(5, 6, seed=17)]).requires_grad_()
    h_b0 = h_b0.clone()
    h_b0[y_b == 1] += 2.0
    h_b = h_b0.requires_grad_()
    total, _ = la_mmd(h_a, y_a, h_b, y_b, 3, generator=_gen())
    total.backward()
    assert torch.isfinite(h_a.grad).all() and torch.isfinite(h_b.grad).all()
    assert h_a.grad[y_a == 1].abs().sum().item() > 0
    assert h_b.grad[y_b == 1].abs().sum().item() > 0
    assert torch.all(h_a.grad[y_a == -1] == 0)


def test_la_mmd_float64():
    h_a, y_a, h_b, y_b = _two_domains()
    total, per_label = la_mmd(h_a.double(), y_a, h_b.double() + 1, y_b, 3)
    assert total.dtype == torch.float64 and per_label.dtype == torch.float64
    assert total.item() > 0


# ---------------------------------------------------------------- marginal


def test_marginal_mmd():
    x = _randn(40, 5, seed=18)
    assert abs(marginal_mmd(x, x.clone(), generator=_gen()).item()) < 1e-6
    assert marginal_mmd(x, x + 3, generator=_gen()).item() > 0.1
    big = _randn(5000, 5, seed=19)
    out = marginal_mmd(big, big + 1, max_tokens=32, generator=_gen())
    assert torch.isfinite(out) and out.item() > 0


# ---------------------------------------------------------------- crf_l2


class _CRF(nn.Module):
    def __init__(self, k: int, seed: int):
        super().__init__()
        g = _gen(seed)
        self.transitions = nn.Parameter(torch.randn(k, k, generator=g))
        self.start_transitions = nn.Parameter(torch.randn(k, generator=g))
        self.end_transitions = nn.Parameter(torch.randn(k, generator=g))


class _Head(nn.Module):
    def __init__(self, k: int, n_in: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.emission = nn.Linear(n_in, k)
        self.crf = _CRF(k, seed + 100)


def test_crf_l2_value_and_gradient():
    head_a, head_b = _Head(3, 4, seed=1), _Head(2, 4, seed=2)
    pairs = torch.tensor([[0, 0], [2, 1]])
    out = crf_l2(head_a, head_b, pairs)

    ea, eb = head_a.emission, head_b.emission
    ca, cb = head_a.crf, head_b.crf
    expected = 0.0
    for i, j in [(0, 0), (2, 1)]:
        expected += ((ea.weight[i] - eb.weight[j]) ** 2).sum().item()
        expected += ((ea.bias[i] - eb.bias[j]) ** 2).item()
        expected += ((ca.start_transitions[i] - cb.start_transitions[j]) ** 2).item()
        expected += ((ca.end_transitions[i] - cb.end_transitions[j]) ** 2).item()
        for i2, j2 in [(0, 0), (2, 1)]:
            expected += ((ca.transitions[i, i2] - cb.transitions[j, j2]) ** 2).item()
    assert out.item() == pytest.approx(expected, rel=1e-5)

    out.backward()
    assert torch.all(ea.weight.grad[1] == 0) and ea.bias.grad[1] == 0
    assert ea.weight.grad[0].abs().sum() > 0 and ea.weight.grad[2].abs().sum() > 0
    assert ca.start_transitions.grad[1] == 0 and ca.end_transitions.grad[1] == 0
    assert ca.start_transitions.grad[0] != 0 and ca.end_transitions.grad[2] != 0
    tg = ca.transitions.grad
    assert torch.all(tg[1, :] == 0) and torch.all(tg[:, 1] == 0)
    for i in (0, 2):
        for j in (0, 2):
            assert tg[i, j] != 0
    assert eb.weight.grad.abs().sum(1).gt(0).all()


def test_crf_l2_identical_heads_zero_and_empty_pairs():
    head_a = _Head(3, 4, seed=5)
    head_b = _Head(3, 4, seed=5)
    assert crf_l2(head_a, head_b, torch.tensor([[0, 0], [1, 1], [2, 2]])).item() == 0.0
    other = _Head(3, 4, seed=6)
    assert crf_l2(head_a, other, torch.tensor([[0, 0]])).item() > 0
    empty = crf_l2(head_a, other, torch.zeros(0, 2, dtype=torch.long))
    assert empty.item() == 0.0
