"""The fast paths give the same results as the reference computations.

* CRF: scaled forward algorithm + forward-backward gradient vs the log-space
  recursion (and brute-force enumeration); Viterbi vs the step-by-step version.
* La-MMD: one matmul distance matrix + power-chain kernel + median from it vs
  exact ``cdist`` bandwidth and one exp per kernel.
* Gold tag ids: one slice per entity vs ``Example.get_aligned_ner`` per token.

No timings are asserted here; see project/scripts/bench_speed.py.
"""
import itertools
from typing import List, Optional, Sequence, Tuple

import pytest
import torch
from spacy.tokens import Doc
from spacy.training import Example
from spacy.vocab import Vocab

from spacy_ladtl.crf import (
    CONSTRAINT_PENALTY,
    CRF,
    fast_log_partition,
    fast_path_is_exact,
    log_partition,
    log_partition_reference,
    scheme_diameter,
    tag_constraints,
    viterbi,
    viterbi_reference,
)
from spacy_ladtl.losses import (
    _capped_label_indices,
    _kernel_from_sq_dists,
    _median_from_sq_dists,
    _self_sq_dists,
    _sq_dists,
    gaussian_kernel_sum,
    la_mmd,
    marginal_mmd,
    median_bandwidth,
    mmd2,
)
from spacy_ladtl.objective import OUTSIDE, gold_tag_ids
from spacy_ladtl.tags import biluo_to_scheme, make_tags

BILUO_2 = make_tags(["PER", "LOC"], "BILUO")
BIO_2 = make_tags(["PER", "LOC"], "BIO")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_crf(tags: Sequence[str], scheme: str, seed: int, dtype: torch.dtype, scale: float = 1.0) -> CRF:
    crf = CRF(tags, scheme).to(dtype)
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=_gen(seed), dtype=dtype))
            seed += 1
    return crf


def _mask(lengths: Sequence[int], length: int) -> torch.Tensor:
    return torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]


def _grads(fn, emissions: torch.Tensor, crf: CRF, weights: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    em = emissions.detach().clone().requires_grad_(True)
    crf.zero_grad(set_to_none=True)
    trans, start, end = crf.constrained()
    z = fn(em, trans, start, end)
    (z * weights).sum().backward()
    return z.detach(), [em.grad] + [p.grad.clone() for p in crf.parameters()]


# --------------------------------------------------------------------------- CRF


@pytest.mark.parametrize("tags,scheme,expected", [(BILUO_2, "BILUO", 3), (BIO_2, "BIO", 2), (["A", "B", "C"], "none", 1)])
def test_scheme_diameter(tags, scheme, expected):
    allowed, _, _ = tag_constraints(tags, scheme)
    assert scheme_diameter(allowed) == expected
    assert CRF(tags, scheme).diameter == expected


def test_scheme_diameter_unreachable_tag_disables_fast_path():
    allowed, _, _ = tag_constraints(["O", "I-X"], "BIO")  # I-X can only follow itself
    assert scheme_diameter(allowed) is None
    crf = CRF(["O", "I-X"], "BIO")
    emissions = torch.randn(2, 4, 2)
    mask = _mask([4, 2], 4)
    assert not fast_path_is_exact(emissions, mask, *crf.constrained(), crf.diameter)
    ref = log_partition_reference(emissions, mask, *crf.constrained())
    assert torch.equal(crf.log_partition(emissions, mask), ref)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 2e-4)])
@pytest.mark.parametrize("tags,scheme", [(BILUO_2, "BILUO"), (BIO_2, "BIO"), ([f"T{i}" for i in range(6)], "none")])
def test_fast_log_partition_matches_reference(tags, scheme, dtype, tol):
    crf = _random_crf(tags, scheme, seed=1, dtype=dtype)
    lengths = [7, 1, 3, 7, 5, 2]
    emissions = 3 * torch.randn(len(lengths), 7, len(tags), generator=_gen(2), dtype=dtype)
    mask = _mask(lengths, 7)
    emissions[~mask] = 1e3 * torch.randn(int((~mask).sum()), len(tags), generator=_gen(3), dtype=dtype)  # padding garbage
    assert fast_path_is_exact(emissions, mask, *crf.constrained(), crf.diameter)
    weights = torch.linspace(0.5, 2.0, len(lengths), dtype=dtype)
    z_ref, g_ref = _grads(lambda e, t, s, n: log_partition_reference(e, mask, t, s, n), emissions, crf, weights)
    z_fast, g_fast = _grads(lambda e, t, s, n: fast_log_partition(e, mask, t, s, n), emissions, crf, weights)
    assert z_fast.dtype == dtype
    assert torch.allclose(z_fast, z_ref, rtol=tol, atol=tol)
    for a, b in zip(g_fast, g_ref):
        assert a.dtype == dtype
        assert torch.allclose(a, b, rtol=tol, atol=tol)
    assert (g_fast[0][~mask] == 0).all()  # nothing flows into padding
    # the method dispatches to the fast path and agrees too
    assert torch.allclose(crf.log_partition(emissions, mask), z_ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("tags,scheme", [(["O", "B-X", "I-X", "L-X", "U-X"], "BILUO"), (["A", "B", "C"], "none")])
def test_fast_log_partition_brute_force(tags, scheme):
    crf = _random_crf(tags, scheme, seed=4, dtype=torch.float64)
    lengths, length = [4, 1, 3], 4
    emissions = torch.randn(3, length, len(tags), generator=_gen(5), dtype=torch.float64)
    mask = _mask(lengths, length)
    trans, start, end = crf.constrained()
    z = fast_log_partition(emissions, mask, trans, start, end)
    for b, n in enumerate(lengths):
        scores = []
        for path in itertools.product(range(len(tags)), repeat=n):
            s = start[path[0]] + emissions[b, 0, path[0]] + end[path[-1]]
            for t in range(1, n):
                s = s + trans[path[t - 1], path[t]] + emissions[b, t, path[t]]
            scores.append(s)
        assert torch.allclose(z[b], torch.logsumexp(torch.stack(scores), 0), atol=1e-9)


def test_fast_log_partition_gradcheck():
    crf = _random_crf(BILUO_2, "BILUO", seed=6, dtype=torch.float64)
    mask = _mask([3, 1, 2], 3)
    emissions = torch.randn(3, 3, len(BILUO_2), generator=_gen(7), dtype=torch.float64, requires_grad=True)
    params = tuple(p.detach().clone().requires_grad_(True) for p in crf.parameters())

    def fn(e, trans, start, end):
        return fast_log_partition(e, mask, trans + crf.transition_penalty, start + crf.start_penalty, end + crf.end_penalty)

    assert torch.autograd.gradcheck(fn, (emissions, *params))


def test_huge_emissions_fall_back_to_log_space():
    crf = _random_crf(BILUO_2, "BILUO", seed=8, dtype=torch.float32)
    emissions = 400 * torch.randn(4, 6, len(BILUO_2), generator=_gen(9))
    mask = _mask([6, 2, 5, 1], 6)
    assert not fast_path_is_exact(emissions, mask, *crf.constrained(), crf.diameter)
    ref = log_partition_reference(emissions, mask, *crf.constrained())
    assert torch.equal(crf.log_partition(emissions, mask), ref)
    assert torch.isfinite(ref).all()


def test_log_partition_function_computes_diameter():
    crf = _random_crf(BILUO_2, "BILUO", seed=10, dtype=torch.float64)
    emissions = torch.randn(2, 5, len(BILUO_2), generator=_gen(11), dtype=torch.float64)
    mask = _mask([5, 3], 5)
    args = (emissions, mask, *crf.constrained())
    assert torch.allclose(log_partition(*args), log_partition_reference(*args), atol=1e-9)
    assert torch.equal(log_partition(*args, diameter=None), log_partition_reference(*args))


def test_nll_training_step_matches_reference():
    torch.manual_seed(12)
    crf = _random_crf(BILUO_2, "BILUO", seed=12, dtype=torch.float32)
    emissions = torch.randn(5, 9, len(BILUO_2), requires_grad=True)
    mask = _mask([9, 4, 1, 7, 9], 9)
    tags = torch.randint(0, len(BILUO_2), (5, 9)).masked_fill(~mask, 0)
    loss = crf.nll(emissions, tags, mask).mean()
    loss.backward()
    fast = [emissions.grad.clone()] + [p.grad.clone() for p in crf.parameters()]
    emissions.grad = None
    crf.zero_grad()
    trans, start, end = crf.constrained()
    ref_loss = (log_partition_reference(emissions, mask, trans, start, end) - crf.gold_score(emissions, tags, mask)).mean()
    ref_loss.backward()
    ref = [emissions.grad] + [p.grad for p in crf.parameters()]
    assert torch.allclose(loss, ref_loss, atol=1e-4)
    for a, b in zip(fast, ref):
        assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("tags,scheme", [(BILUO_2, "BILUO"), (BIO_2, "BIO"), ([f"T{i}" for i in range(5)], "none")])
def test_viterbi_matches_reference(tags, scheme, integer):
    crf = _random_crf(tags, scheme, seed=13, dtype=torch.float32)
    lengths = [1, 2, 5, 8, 8, 3, 6]
    emissions = 4 * torch.randn(len(lengths), 8, len(tags), generator=_gen(14))
    if integer:  # many ties: same first-index tie-breaking as the reference
        emissions = emissions.round().clamp(-1, 1)
        with torch.no_grad():
            for p in crf.parameters():
                p.zero_()
    mask = _mask(lengths, 8)
    emissions[~mask] = 1e4  # padding garbage must not matter
    args = (emissions, mask, *crf.constrained())
    with torch.no_grad():
        paths_ref, scores_ref = viterbi_reference(*args)
        paths, scores = viterbi(*args)
    assert torch.equal(paths, paths_ref)
    assert torch.equal(scores, scores_ref)
    dec_paths, dec_scores = crf.decode(emissions, mask)
    assert torch.equal(dec_paths, paths_ref) and torch.equal(dec_scores, scores_ref)


def test_decode_returns_ordinary_tensors():
    crf = CRF(BILUO_2)
    paths, scores = crf.decode(torch.randn(2, 3, len(BILUO_2)), _mask([3, 2], 3))
    assert not paths.is_inference() and not scores.is_inference()
    paths[0, 0] = 0  # in-place use outside inference mode is allowed
    scores.add_(1.0)
    assert paths.dtype == torch.long


def test_viterbi_single_position():
    crf = _random_crf(BILUO_2, "BILUO", seed=15, dtype=torch.float32)
    emissions = torch.randn(3, 1, len(BILUO_2), generator=_gen(16))
    mask = torch.ones(3, 1, dtype=torch.bool)
    args = (emissions, mask, *crf.constrained())
    assert all(torch.equal(a, b) for a, b in zip(viterbi(*args), viterbi_reference(*args)))


# --------------------------------------------------------------------------- MMD


def _kernel_reference(d2: torch.Tensor, bandwidth: torch.Tensor, n_kernels: int, kernel_mul: float) -> torch.Tensor:
    exps = torch.arange(n_kernels, dtype=d2.dtype) - (n_kernels // 2)
    bws = torch.as_tensor(bandwidth, dtype=d2.dtype) * (float(kernel_mul) ** exps)
    return torch.exp(-d2.unsqueeze(0) / bws.view(-1, 1, 1)).sum(0)


@pytest.mark.parametrize("n_kernels,kernel_mul", [(5, 2.0), (1, 2.0), (4, 2.0), (3, 3.0), (5, 1.5), (2, 1.0)])
def test_kernel_power_chain_matches_exp_stack(n_kernels, kernel_mul):
    x = torch.randn(9, 4, generator=_gen(17), dtype=torch.float64, requires_grad=True)
    d2 = _sq_dists(x, x.detach() + 0.3)
    bw = torch.tensor(2.3, dtype=torch.float64)
    fast = _kernel_from_sq_dists(d2, bw, n_kernels, kernel_mul)
    ref = _kernel_reference(d2, bw, n_kernels, kernel_mul)
    assert torch.allclose(fast, ref, rtol=1e-12, atol=1e-12)
    g_fast = torch.autograd.grad(fast.sum(), x, retain_graph=True)[0]
    g_ref = torch.autograd.grad(ref.sum(), x)[0]
    assert torch.allclose(g_fast, g_ref, rtol=1e-10, atol=1e-12)
    assert torch.allclose(gaussian_kernel_sum(x, x, bw, n_kernels, kernel_mul), _kernel_reference(_sq_dists(x, x), bw, n_kernels, kernel_mul), rtol=1e-12)


def test_self_sq_dists_matches_sq_dists_and_gradcheck():
    z = torch.randn(8, 5, generator=_gen(18), dtype=torch.float64, requires_grad=True)
    assert torch.allclose(_self_sq_dists(z), _sq_dists(z, z), atol=1e-12)
    weights = torch.randn(8, 8, generator=_gen(19), dtype=torch.float64)
    g1 = torch.autograd.grad((_self_sq_dists(z) * weights).sum(), z)[0]
    g2 = torch.autograd.grad((_sq_dists(z, z) * weights).sum(), z)[0]
    assert torch.allclose(g1, g2, atol=1e-10)
    assert torch.autograd.gradcheck(_self_sq_dists, (z,))
    assert _self_sq_dists(torch.zeros(0, 3)).shape == (0, 0)


@pytest.mark.parametrize("case", ["random", "duplicates", "identical", "single", "near"])
def test_median_from_sq_dists_matches_median_bandwidth(case):
    z = torch.randn(40, 16, generator=_gen(20))
    if case == "duplicates":  # exact copies count as distance 0 and are left out
        z = torch.cat([z, z[:25], z[:5]])
    elif case == "identical":
        z = torch.ones(6, 16)
    elif case == "single":
        z = z[:1]
    elif case == "near":
        z = torch.cat([z, z[:10] + 1e-4])
    fast = _median_from_sq_dists(_self_sq_dists(z), z)
    assert torch.allclose(fast, median_bandwidth(z), rtol=1e-4)


def _la_mmd_reference(h_a, y_a, h_b, y_b, n_labels, cap, min_tokens, generator):
    """The La-MMD algorithm as first written: exact cdist bandwidth, one exp per kernel."""
    idx_a, lab_a, n_a = _capped_label_indices(y_a, n_labels, cap, generator)
    idx_b, lab_b, n_b = _capped_label_indices(y_b, n_labels, cap, generator)
    active = (n_a >= min_tokens) & (n_b >= min_tokens)
    keep_a, keep_b = active[lab_a], active[lab_b]
    idx_a, lab_a, idx_b, lab_b = idx_a[keep_a], lab_a[keep_a], idx_b[keep_b], lab_b[keep_b]
    z = torch.cat([h_a[idx_a], h_b[idx_b]], 0)
    k = _kernel_reference(_sq_dists(z, z), median_bandwidth(z), 5, 2.0)
    w = torch.zeros(z.shape[0], n_labels, dtype=z.dtype)
    rows = torch.arange(z.shape[0])
    na = idx_a.shape[0]
    w[rows[:na], lab_a] = 1.0 / n_a.clamp_min(1).to(z.dtype)[lab_a]
    w[rows[na:], lab_b] = -1.0 / n_b.clamp_min(1).to(z.dtype)[lab_b]
    per_label = ((k @ w) * w).sum(0).clamp_min(0.0)
    per_label = torch.where(active, per_label, torch.zeros_like(per_label))
    return per_label.sum(), per_label


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-8), (torch.float32, 1e-4)])
def test_la_mmd_matches_reference(dtype, tol):
    n_a, n_b, d, n_labels, cap = 120, 90, 24, 4, 16
    h_a = torch.randn(n_a, d, generator=_gen(21), dtype=dtype)
    h_b = torch.randn(n_b, d, generator=_gen(22), dtype=dtype) + 0.5
    h_b[:7] = h_a[:7]  # some coincident points across domains
    y_a = torch.randint(-1, n_labels, (n_a,), generator=_gen(23))
    y_b = torch.randint(-1, n_labels, (n_b,), generator=_gen(24))
    y_b[y_b == 3] = -1  # a label with no tokens on one side
    results = []
    for fn in (
        lambda *a: la_mmd(*a, n_labels, max_tokens_per_label=cap, generator=_gen(25)),
        lambda *a: _la_mmd_reference(*a, n_labels, cap, 2, _gen(25)),
    ):
        xa, xb = h_a.clone().requires_grad_(True), h_b.clone().requires_grad_(True)
        total, per_label = fn(xa, y_a, xb, y_b)
        total.backward()
        results.append((total.detach(), per_label.detach(), xa.grad, xb.grad))
    (t1, p1, ga1, gb1), (t2, p2, ga2, gb2) = results
    assert p1[3] == 0 and (p1[:3] > 0).all()
    assert torch.allclose(t1, t2, rtol=tol, atol=tol)
    assert torch.allclose(p1, p2, rtol=tol, atol=tol)
    assert torch.allclose(ga1, ga2, rtol=tol, atol=tol) and torch.allclose(gb1, gb2, rtol=tol, atol=tol)


def test_mmd2_and_marginal_match_reference():
    x = torch.randn(30, 6, generator=_gen(26), dtype=torch.float64)
    y = torch.randn(25, 6, generator=_gen(27), dtype=torch.float64) + 0.7
    z = torch.cat([x, y])
    k = _kernel_reference(_sq_dists(z, z), median_bandwidth(z), 5, 2.0)
    w = torch.cat([torch.full((30,), 1 / 30, dtype=torch.float64), torch.full((25,), -1 / 25, dtype=torch.float64)])
    assert torch.allclose(mmd2(x, y), (w @ k @ w).clamp_min(0.0), rtol=1e-9)
    assert torch.allclose(marginal_mmd(x, y, max_tokens=100), mmd2(x, y), rtol=1e-12)


# --------------------------------------------------------------------------- gold ids


def _reference_gold(examples, domain_ids, tag_sets, scheme, shape) -> torch.Tensor:
    """The per-token loop of LaDTLEntityRecognizer._gold_tag_ids."""
    gold = torch.zeros(shape, dtype=torch.long)
    for row, (eg, d) in enumerate(zip(examples, domain_ids)):
        index = {tag: i for i, tag in enumerate(tag_sets[d])}
        ids = []
        for tag in eg.get_aligned_ner():
            tag = OUTSIDE if tag in (None, "-", "") else biluo_to_scheme(tag, scheme)
            ids.append(index[tag])
        gold[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return gold


def _examples(vocab: Vocab) -> List[Example]:
    words = "John Smith lives in New York City with Anna today".split()
    ents = ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O", "B-PER", "O"]
    egs = [Example(Doc(vocab, words=words), Doc(vocab, words=words, ents=ents))]
    # missing annotation on some tokens
    egs.append(Example(Doc(vocab, words=words[:5]), Doc(vocab, words=words[:5], ents=["B-LOC", None, "O", None, "B-PER"])))
    # different tokenization: predicted splits "New York" differently
    pred = Doc(vocab, words=["John", "Smith", "lives", "in", "NewYork", "City"], spaces=[True, True, True, True, True, False])
    ref = Doc(vocab, words=["John", "Smith", "lives", "in", "New", "York", "City"], spaces=[True, True, True, True, False, True, False],
              ents=["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC"])  # fmt: skip
    egs.append(Example(pred, ref))
    # no NER annotation at all
    egs.append(Example(Doc(vocab, words=words[:3]), Doc(vocab, words=words[:3])))
    return egs


@pytest.mark.parametrize("scheme", ["BILUO", "BIO"])
def test_gold_tag_ids_match_per_token_reference(scheme):
    vocab = Vocab()
    egs = _examples(vocab)
    tag_sets = [make_tags(["LOC", "PER"], scheme), make_tags(["LOC", "ORG", "PER"], scheme)]
    domain_ids = [0, 1, 0, 1]
    shape = (4, 12)
    fast = gold_tag_ids(egs, domain_ids, tag_sets, scheme, shape, domains=["a", "b"])
    ref = _reference_gold(egs, domain_ids, tag_sets, scheme, shape)
    assert torch.equal(fast, ref)
    assert fast.dtype == torch.long and fast.shape == shape


def test_gold_tag_ids_unknown_label_is_an_error():
    vocab = Vocab()
    egs = _examples(vocab)[:1]
    with pytest.raises(ValueError, match="was not seen at initialize"):
        gold_tag_ids(egs, [0], [make_tags(["LOC"], "BILUO")], "BILUO", (1, 10), domains=["a"], name="ner_x")
