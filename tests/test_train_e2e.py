"""End-to-end: the project's demo workflow (convert -> spacy train -> evaluate) on the embedded sample."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import srsly

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_workflow_trains_and_beats_trivial(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(REPO / "project", project, ignore=shutil.ignore_patterns("corpus", "training", "metrics", "project.lock"))
    command = [
        sys.executable, "-m", "spacy", "project", "run", "demo", str(project),
        "--vars.config", str(REPO / "configs" / "ladtl_bilstm.cfg"),
        "--vars.baseline_config", str(REPO / "configs" / "spacy_ner_baseline.cfg"),
        "--vars.max_steps", "200", "--vars.eval_frequency", "100",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # the training log shows each loss term
    for column in ("LOSS CRF", "LOSS MMD", "LOSS CRF_L2", "ENTS_TARGET_F"):
        assert column in result.stdout
    assert "spacy_ner_target_only" in result.stdout  # the same-run baseline is printed
    metrics = srsly.read_json(project / "metrics" / "target_test.json")
    # an all-O tagger scores 0; 200 steps on the sample reach far more
    assert metrics["ents_f"] > 0.25, metrics
    assert metrics["domain"] == "target" and metrics["ents_per_type"]
    nlp = spacy.load(project / "training" / "model-best")
    doc = nlp("Expression of p53 protein was reduced in breast cancer cells .")
    assert nlp.get_pipe("ladtl_ner").label_data["target"]
    assert isinstance(doc.ents, tuple)
