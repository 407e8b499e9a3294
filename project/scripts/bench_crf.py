"""The CRF alone: spacy_ladtl.crf.CRF vs pytorch-crf (NLL forward+backward, Viterbi).

    python scripts/bench_crf.py [--quick]

Both CRFs get the same emissions; ours runs with ``scheme="none"`` (no
constraint penalties) so the two compute the same model. pytorch-crf is a
benchmark-only dependency (``pip install pytorch-crf==0.7.2``); without it only
our numbers are reported.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import environment, format_table, time_call  # noqa: E402

from spacy_ladtl.crf import CRF, log_partition_reference, viterbi_reference  # noqa: E402

SHAPES: List[Tuple[int, int, int]] = [(32, 40, 20), (64, 100, 40)]


def _inputs(batch: int, length: int, k: int, lengths: str, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    emissions = torch.randn(batch, length, k, generator=gen)
    if lengths == "full":
        lens = torch.full((batch,), length)
    else:
        lens = torch.randint(1, length + 1, (batch,), generator=gen)
        lens[0] = length  # the padded length is the longest sentence
    mask = torch.arange(length)[None, :] < lens[:, None]
    tags = torch.randint(0, k, (batch, length), generator=gen).masked_fill(~mask, 0)
    return emissions, mask, tags


def _torchcrf() -> Optional[Any]:
    try:
        import torchcrf  # type: ignore[import-not-found]
    except ImportError:
        return None
    return torchcrf


def bench_shape(batch: int, length: int, k: int, lengths: str, repeats: int, with_reference: bool) -> Dict[str, Any]:
    emissions, mask, tags = _inputs(batch, length, k, lengths)
    ours = CRF([f"T{i}" for i in range(k)], scheme="none")
    res: Dict[str, Any] = {"shape": [batch, length, k], "lengths": lengths, "tokens": int(mask.sum())}
    em = emissions.clone().requires_grad_(True)

    def ours_nll() -> None:
        em.grad = None
        ours.zero_grad(set_to_none=True)
        ours.nll(em, tags, mask).sum().backward()

    def ours_decode() -> None:
        ours.decode(emissions, mask)

    res["ours_nll_s"] = time_call(ours_nll, repeats=repeats)["median_s"]
    res["ours_viterbi_s"] = time_call(ours_decode, repeats=repeats)["median_s"]
    if with_reference:  # the step-by-step versions this package shipped before the fast paths

        def ref_nll() -> None:
            em.grad = None
            ours.zero_grad(set_to_none=True)
            trans, start, end = ours.constrained()
            (log_partition_reference(em, mask, trans, start, end) - ours.gold_score(em, tags, mask)).sum().backward()

        def ref_decode() -> None:
            with torch.no_grad():
                viterbi_reference(emissions, mask, *ours.constrained())

        res["reference_nll_s"] = time_call(ref_nll, repeats=repeats)["median_s"]
        res["reference_viterbi_s"] = time_call(ref_decode, repeats=repeats)["median_s"]
    torchcrf = _torchcrf()
    if torchcrf is not None:
        theirs = torchcrf.CRF(k, batch_first=True)
        with torch.no_grad():  # same parameters as ours
            theirs.transitions.copy_(ours.transitions)
            theirs.start_transitions.copy_(ours.start_transitions)
            theirs.end_transitions.copy_(ours.end_transitions)
        em2 = emissions.clone().requires_grad_(True)

        def theirs_nll() -> None:
            em2.grad = None
            theirs.zero_grad(set_to_none=True)
            (-theirs(em2, tags, mask, reduction="sum")).backward()

        def theirs_decode() -> None:
            with torch.no_grad():
                theirs.decode(emissions, mask)

        res["pytorch_crf_nll_s"] = time_call(theirs_nll, repeats=repeats)["median_s"]
        res["pytorch_crf_viterbi_s"] = time_call(theirs_decode, repeats=repeats)["median_s"]
        res["speedup_nll"] = res["pytorch_crf_nll_s"] / res["ours_nll_s"]
        res["speedup_viterbi"] = res["pytorch_crf_viterbi_s"] / res["ours_viterbi_s"]
        # same model, same numbers (sanity check, not timed)
        with torch.no_grad():
            nll_ours = ours.nll(emissions, tags, mask).sum()
            nll_theirs = -theirs(emissions, tags, mask, reduction="sum")
        res["max_abs_nll_diff"] = float((nll_ours - nll_theirs).abs())
        paths, _ = ours.decode(emissions, mask)
        best = theirs.decode(emissions, mask)
        res["same_paths"] = all(paths[b, : len(p)].tolist() == p for b, p in enumerate(best))
    return res


def run(quick: bool = False, with_reference: bool = True) -> Dict[str, Any]:
    repeats = 5 if quick else 30
    results = []
    for batch, length, k in SHAPES:
        for lengths in ("full", "random"):
            results.append(bench_shape(batch, length, k, lengths, repeats, with_reference))
    return {"repeats": repeats, "results": results, "pytorch_crf": _torchcrf() is not None}


def table(section: Dict[str, Any]) -> str:
    rows = []
    for r in section["results"]:
        shape = "x".join(str(x) for x in r["shape"])
        rows.append(
            [
                f"{shape} {r['lengths']}",
                r["ours_nll_s"] * 1e3,
                r.get("pytorch_crf_nll_s", float("nan")) * 1e3,
                f"{r['speedup_nll']:.2f}x" if "speedup_nll" in r else "",
                r.get("reference_nll_s", float("nan")) * 1e3,
                r["ours_viterbi_s"] * 1e3,
                r.get("pytorch_crf_viterbi_s", float("nan")) * 1e3,
                f"{r['speedup_viterbi']:.2f}x" if "speedup_viterbi" in r else "",
                r.get("reference_viterbi_s", float("nan")) * 1e3,
            ]
        )
    header = ["BxTxK lengths", "nll ms", "torchcrf", "speedup", "old", "viterbi ms", "torchcrf", "speedup", "old"]
    return format_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    section = run(args.quick)
    print(table(section))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"environment": environment(), "crf": section}, indent=2))


if __name__ == "__main__":
    main()
