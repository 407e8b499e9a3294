"""The speed benchmark runs end to end in its --quick mode (no timing is asserted)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "conll2003" / "train.txt").exists(), reason="needs ../shared/data (CoNLL-2003, WNUT-17)")
def test_bench_speed_quick(tmp_path):
    out = tmp_path / "speed.json"
    cmd = [
        sys.executable, "scripts/bench_speed.py", "--quick", "--data-dir", str(DATA),
        "--output", str(out), "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT / "project", check=True, timeout=1200)
    res = json.loads(out.read_text())
    env = res["environment"]
    assert env["torch_num_threads"] >= 1 and "bench_speed.py" in env["command"] and env["versions"]["torch"]
    systems = {p["system"] for p in res["pipeline"]}
    assert {"ladtl", "ladtl_no_transfer", "spacy_eff", "spacy_acc"} <= systems
    for p in res["pipeline"]:
        assert p["train"]["words"] > 0 and p["train"]["words_per_s"] > 0
        assert all(i["words_per_s"] > 0 for i in p["inference"])
    assert res["crf"]["results"] and all(r["ours_nll_s"] > 0 for r in res["crf"]["results"])
    if res["crf"]["pytorch_crf"]:  # same model, same numbers
        assert all(r["same_paths"] and r["max_abs_nll_diff"] < 1e-2 for r in res["crf"]["results"])
    assert [r["batch_sentences"] for r in res["mmd"]["rows"]] == [16, 32]
    kinds = {(r["kind"], r["system"]) for r in res["memory"]["rows"]}
    assert {("train", "ladtl"), ("annotate", "ladtl")} <= kinds
    assert all(r["peak_rss_bytes"] > 50 * 2**20 for r in res["memory"]["rows"])
    assert res["summary"]["targets"]
    assert out.with_suffix(".txt").read_text().startswith("command:")
