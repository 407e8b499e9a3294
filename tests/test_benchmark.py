"""The accuracy benchmark harness: one JSON per run, resumable, compare -> Markdown table."""
import subprocess
import sys
from pathlib import Path

import pytest
import srsly

PROJECT = Path(__file__).resolve().parents[1] / "project"


def run_script(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=PROJECT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_benchmark_runs_resumes_and_compares(tmp_path):
    results, work = tmp_path / "results", tmp_path / "work"
    common = ["--data-dir", "sample", "--pairs", "bionlp13pc-bionlp13cg", "--seeds", "0", "--rates", "0.1",
              "--results", str(results), "--work", str(work)]
    methods = ["--methods", "non_transfer,retrain,ladtl,spacy_eff_concat"]
    first = run_script("scripts/benchmark_run.py", *common, *methods, "--max-steps", "10")
    assert "4 run(s) to do" in first.stdout
    for method in ("non_transfer", "retrain", "ladtl", "spacy_eff_concat"):
        record = srsly.read_json(results / "bionlp13pc-bionlp13cg" / method / "rate0.1-seed0.json")
        assert record["method"] == method and record["rate"] == 0.1 and record["seed"] == 0
        assert set(record["test"]) >= {"ents_p", "ents_r", "ents_f", "ents_per_type"} and "ents_f" in record["dev"]
        assert record["commands"] and len(record["config_sha256"]) == 64 and record["budget"]["max_steps"] == 10
    retrain = srsly.read_json(results / "bionlp13pc-bionlp13cg" / "retrain" / "rate0.1-seed0.json")
    assert len(retrain["commands"]) == 2 and "init_encoder_from" in retrain["commands"][1]
    assert not (work / "bionlp13pc-bionlp13cg" / "runs" / "ladtl-rate0.1-seed0").exists()  # models removed
    # resumable: finished runs are skipped
    second = run_script("scripts/benchmark_run.py", *common, *methods, "--max-steps", "10")
    assert "0 run(s) to do" in second.stdout
    table = tmp_path / "RESULTS.md"
    run_script("scripts/benchmark_compare.py", "--results", str(results), "--output", str(table), "--plot", str(tmp_path / "c.png"))
    text = table.read_text(encoding="utf-8")
    assert "| bionlp13pc-bionlp13cg | 10% |" in text and "**" in text and "Jia & Zhang 2020" in text
