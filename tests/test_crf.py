import itertools
from typing import List, Sequence

import pytest
import torch

from spacy_ladtl.crf import CONSTRAINT_PENALTY, CRF, tag_constraints

BILUO_1 = ["O", "B-X", "I-X", "L-X", "U-X"]
BILUO_2 = ["O", "B-PER", "I-PER", "L-PER", "U-PER", "B-LOC", "I-LOC", "L-LOC", "U-LOC"]
BIO_2 = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _randomise(crf: CRF, seed: int = 0) -> CRF:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return crf


def _lengths_to_mask(lengths: Sequence[int], length: int) -> torch.Tensor:
    return torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]


# --- tag_constraints -------------------------------------------------------


def test_constraints_biluo() -> None:
    tags = BILUO_2
    allowed, start, end = tag_constraints(tags, "BILUO")
    idx = {t: i for i, t in enumerate(tags)}

    def ok(a: str, b: str) -> bool:
        return bool(allowed[idx[a], idx[b]])

    assert allowed.shape == (9, 9) and allowed.dtype == torch.bool
    assert ok("O", "O") and ok("O", "B-PER") and ok("O", "U-LOC")
    assert not ok("O", "I-PER") and not ok("O", "L-PER")
    assert ok("B-PER", "I-PER") and ok("B-PER", "L-PER") and ok("I-PER", "L-PER")
    assert not ok("B-PER", "O") and not ok("B-PER", "I-LOC") and not ok("I-PER", "L-LOC")
    assert not ok("B-PER", "B-PER") and not ok("I-PER", "U-PER")
    assert ok("L-PER", "B-LOC") and ok("U-PER", "O") and ok("U-LOC", "U-PER")
    assert not ok("L-PER", "I-PER") and not ok("U-PER", "L-PER")
    assert start.tolist() == [t[0] in "OBU" for t in tags]
    assert end.tolist() == [t[0] in "OLU" for t in tags]


def test_constraints_bioes_matches_biluo() -> None:
    bioes = [t.replace("L-", "E-").replace("U-", "S-") for t in BILUO_2]
    for a, b in zip(tag_constraints(bioes, "BIOES"), tag_constraints(BILUO_2, "BILUO")):
        assert torch.equal(a, b)


def test_constraints_bio() -> None:
    tags = BIO_2
    allowed, start, end = tag_constraints(tags, "BIO")
    idx = {t: i for i, t in enumerate(tags)}
    assert allowed[idx["O"], idx["B-PER"]] and allowed[idx["I-LOC"], idx["O"]]
    assert allowed[idx["B-PER"], idx["I-PER"]] and allowed[idx["I-PER"], idx["I-PER"]]
    assert allowed[idx["B-PER"], idx["B-PER"]]
    assert not allowed[idx["O"], idx["I-PER"]]
    assert not allowed[idx["B-PER"], idx["I-LOC"]] and not allowed[idx["I-LOC"], idx["I-PER"]]
    assert start.tolist() == [True, True, False, True, False]
    assert end.all()


def test_constraints_none() -> None:
    allowed, start, end = tag_constraints(BILUO_1, "none")
    assert allowed.all() and start.all() and end.all() and allowed.shape == (5, 5)


@pytest.mark.parametrize(
    "tags,scheme",
    [
        (["O", "L-PER"], "BIO"),
        (["O", "E-PER"], "BILUO"),
        (["O", "B-"], "BILUO"),
        (["O", "BPER"], "BILUO"),
        (["O", "B-PER"], "IOB2X"),
    ],
)
def test_constraints_errors(tags: List[str], scheme: str) -> None:
    with pytest.raises(ValueError, match=scheme):
        tag_constraints(tags, scheme)
    if scheme != "IOB2X":
        with pytest.raises(ValueError, match=tags[1]):
            CRF(tags, scheme)


def test_penalty_buffers() -> None:
    crf = CRF(BILUO_1)
    assert "transition_penalty" not in crf.state_dict()
    allowed, start, _ = tag_constraints(BILUO_1, "BILUO")
    assert torch.equal(crf.transition_penalty == 0, allowed)
    assert torch.equal(crf.start_penalty == 0, start)
    assert (crf.transition_penalty[~allowed] == CONSTRAINT_PENALTY).all()
    crf = crf.double()
    assert crf.transition_penalty.dtype == torch.float64


# --- brute force -----------------------------------------------------------


def _path_score(crf: CRF, emissions: torch.Tensor, path: Sequence[int]) -> torch.Tensor:
    trans, start, end = crf.constrained()
    score = start[path[0]] + emissions[0, path[0]]
    for prev, cur, t in zip(path, path[1:], range(1, len(path))):
        score = score + trans[prev, cur] + emissions[t, cur]
    return score + end[path[-1]]


@pytest.mark.parametrize(
    "tags,scheme",
    [
        (["A", "B", "C"], "none"),
        (["O", "B-X", "I-X", "B-Y"], "BIO"),
        (BILUO_1, "BILUO"),
    ],
)
def test_brute_force(tags: List[str], scheme: str) -> None:
    torch.manual_seed(1)
    crf = _randomise(CRF(tags, scheme).double(), seed=2)
    lengths, length = [4, 1, 3], 4
    emissions = torch.randn(3, length, len(tags), dtype=torch.float64)
    mask = _lengths_to_mask(lengths, length)
    log_z = crf.log_partition(emissions, mask)
    paths, scores = crf.decode(emissions, mask)
    assert paths.shape == (3, length) and paths.dtype == torch.long
    with torch.no_grad():
        for b, n in enumerate(lengths):
            cands = list(itertools.product(range(len(tags)), repeat=n))
            all_scores = torch.stack([_path_score(crf, emissions[b], p) for p in cands])
            assert torch.allclose(log_z[b], torch.logsumexp(all_scores, 0), atol=1e-4)
            best = int(all_scores.argmax())
            assert paths[b, :n].tolist() == list(cands[best])
            assert (paths[b, n:] == 0).all()
            assert torch.allclose(scores[b], all_scores[best], atol=1e-4)
            gold = torch.tensor(cands[best] + (0,) * (length - n))
            gold_score = crf.gold_score(emissions[b : b + 1], gold[None], mask[b : b + 1])
            assert torch.allclose(gold_score[0], all_scores[best], atol=1e-4)


def test_nll_properties() -> None:
    torch.manual_seed(3)
    crf = _randomise(CRF(BILUO_1).double(), seed=4)
    emissions = torch.randn(3, 4, 5, dtype=torch.float64)
    mask = _lengths_to_mask([4, 2, 3], 4)
    best, _ = crf.decode(emissions, mask)
    other = torch.zeros_like(best)  # all "O": allowed but (almost surely) not best
    assert not torch.equal(best, other)
    nll_best = crf.nll(emissions, best, mask)
    nll_other = crf.nll(emissions, other, mask)
    assert (nll_best >= 0).all() and (nll_other >= 0).all()
    differs = (best != other).any(1)
    assert (nll_best[differs] < nll_other[differs]).all()
    # probabilities of the best paths are at most 1 and sum of exp(-nll) <= 1 per sentence
    assert (torch.exp(-nll_best) <= 1 + 1e-9).all()


def test_gradcheck() -> None:
    torch.manual_seed(5)
    crf = _randomise(CRF(["O", "B-X", "I-X", "L-X", "U-X"]).double(), seed=6)
    emissions = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    mask = _lengths_to_mask([3, 2], 3)
    tags = torch.tensor([[1, 3, 0], [4, 0, 0]])
    params = tuple(p.detach().clone().requires_grad_(True) for p in crf.parameters())
    names = [n for n, _ in crf.named_parameters()]

    def fn(e: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(crf, dict(zip(names, ps)), (e, tags, mask))

    assert torch.autograd.gradcheck(fn, (emissions, *params))
    # gradients actually reach every parameter
    crf.nll(emissions, tags, mask).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in crf.parameters())


# --- decoding constraints / masking ----------------------------------------


def test_decode_obeys_constraints() -> None:
    torch.manual_seed(7)
    crf = _randomise(CRF(BILUO_2), seed=8)
    allowed, start, end = tag_constraints(BILUO_2, "BILUO")
    lengths = [1, 2, 5, 8, 8, 3] * 5
    emissions = 5 * torch.randn(len(lengths), 8, len(BILUO_2))
    mask = _lengths_to_mask(lengths, 8)
    paths, _ = crf.decode(emissions, mask)
    for b, n in enumerate(lengths):
        path = paths[b, :n].tolist()
        assert start[path[0]] and end[path[-1]]
        assert all(allowed[i, j] for i, j in zip(path, path[1:]))
    # the unconstrained argmax would violate constraints, so the test is meaningful
    assert not all(start[emissions[:, 0].argmax(-1)])


def test_masking_ignores_padding() -> None:
    torch.manual_seed(9)
    crf = _randomise(CRF(BILUO_2), seed=10)
    short = torch.randn(1, 3, len(BILUO_2))
    padded = torch.cat([short, 100 * torch.randn(1, 4, len(BILUO_2))], dim=1)
    other = torch.randn(1, 7, len(BILUO_2))
    batch = torch.cat([padded, other])
    mask = _lengths_to_mask([3, 7], 7)
    alone_z = crf.log_partition(short, torch.ones(1, 3, dtype=torch.bool))
    alone_path, alone_score = crf.decode(short, torch.ones(1, 3, dtype=torch.bool))
    z = crf.log_partition(batch, mask)
    paths, scores = crf.decode(batch, mask)
    assert torch.allclose(z[0], alone_z[0], atol=1e-4)
    assert paths[0, :3].tolist() == alone_path[0].tolist()
    assert (paths[0, 3:] == 0).all()
    assert torch.allclose(scores[0], alone_score[0], atol=1e-4)
    gold = torch.tensor([[1, 3, 0, 5, 5, 5, 5]])
    assert torch.allclose(
        crf.gold_score(batch[:1], gold, mask[:1]), crf.gold_score(short, gold[:, :3], mask[:1, :3])
    )


def test_empty_batch() -> None:
    crf = CRF(BILUO_1)
    emissions = torch.zeros(0, 6, 5)
    mask = torch.zeros(0, 6, dtype=torch.bool)
    tags = torch.zeros(0, 6, dtype=torch.long)
    assert crf.log_partition(emissions, mask).shape == (0,)
    assert crf.nll(emissions, tags, mask).shape == (0,)
    paths, scores = crf.decode(emissions, mask)
    assert paths.shape == (0, 6) and paths.dtype == torch.long
    assert scores.shape == (0,)


# --- training --------------------------------------------------------------


def test_learns_pattern() -> None:
    torch.manual_seed(11)
    tags = BILUO_2
    crf = CRF(tags)
    # emissions carry word identity only weakly; the CRF must learn via transitions
    # and per-word emission weights
    vocab, dim = 6, len(tags)
    emb = torch.nn.Embedding(vocab, dim)
    words = torch.tensor([[0, 1, 2, 3, 0], [4, 0, 1, 3, 5], [4, 5, 0, 0, 0]])
    gold = torch.tensor([[0, 1, 2, 3, 0], [8, 0, 5, 7, 4], [8, 4, 0, 0, 0]])
    mask = _lengths_to_mask([5, 5, 2], 5)
    gold = gold.masked_fill(~mask, 0)
    opt = torch.optim.Adam(list(crf.parameters()) + list(emb.parameters()), lr=0.1)
    first = None
    for _ in range(100):
        opt.zero_grad()
        loss = crf.nll(emb(words), gold, mask).mean()
        first = float(loss.detach()) if first is None else first
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first / 10
    paths, _ = crf.decode(emb(words), mask)
    assert torch.equal(paths, gold)
