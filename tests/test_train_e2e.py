"""End-to-end: the project's `all` workflow on the embedded sample, with short settings.

prepare -> subsample -> spacy train -> evaluate -> spaCy ner baseline -> spacy
package (one pipeline per specialty) -> smoke (pip install into a throw-away venv,
spacy.load by name, tag) -> install -> show. CI runs this once (it is `slow`).
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import srsly

from spacy_ladtl.sampling import read_docs, replay

REPO = Path(__file__).resolve().parents[1]
RUN = "bionlp13pc-bionlp13cg"


@pytest.mark.slow
def test_all_workflow_trains_packages_and_smoke_tests(tmp_path):
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("corpus", "training", "metrics", "packages", "project.lock")
    shutil.copytree(REPO / "project", project, ignore=ignore)
    command = [
        sys.executable, "-m", "spacy", "project", "run", "all", str(project),
        "--vars.config", str(REPO / "configs" / "ladtl_bilstm.cfg"),
        "--vars.baseline_config", str(REPO / "configs" / "spacy_ner_baseline.cfg"),
        "--vars.max_steps", "200", "--vars.eval_frequency", "100",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=project)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    # the training log shows each loss term, and the same-run baseline is printed
    for column in ("LOSS CRF", "LOSS MMD", "LOSS CRF_L2", "ENTS_TARGET_F", "spacy_ner_target_only"):
        assert column in result.stdout

    corpus, metrics = project / "corpus" / RUN, project / "metrics" / RUN
    # subsample: 25% of the 600 target sentences, replayable from the manifest
    manifest = srsly.read_json(corpus / "target_train.manifest.json")
    assert manifest["n_kept"] == 150
    replayed = replay(manifest, corpus / "target_train_full.spacy")
    assert [d.text for d in replayed] == [d.text for d in read_docs(corpus / "target_train.spacy")]

    # evaluate: each domain with its own head; an all-O tagger scores 0, 200 steps reach far more
    target = srsly.read_json(metrics / "target_test.json")
    assert target["ents_f"] > 0.25 and target["domain"] == "bionlp13cg" and target["ents_per_type"]
    assert srsly.read_json(metrics / "source_test.json")["domain"] == "bionlp13pc"

    # package: one installable pipeline per specialty, defaulting to its own head
    for domain in ("bionlp13cg", "bionlp13pc"):
        dist = project / "packages" / f"en_ladtl_{domain}-0.1.0" / "dist"
        assert (dist / f"en_ladtl_{domain}-0.1.0-py3-none-any.whl").exists()
        assert (dist / f"en_ladtl_{domain}-0.1.0.tar.gz").exists()
        pipeline_dir = project / "training" / RUN / "pipelines" / domain
        meta = srsly.read_json(pipeline_dir / "meta.json")
        assert meta["name"] == f"ladtl_{domain}" and any(r.startswith("spacy-ladtl") for r in meta["requirements"])
        assert {s["name"] for s in meta["sources"]} == {"bionlp13pc", "bionlp13cg"}
        nlp = spacy.load(pipeline_dir)
        assert nlp.get_pipe("ladtl_ner").default_domain == domain
    target_meta = srsly.read_json(project / "training" / RUN / "pipelines" / "bionlp13cg" / "meta.json")
    assert target_meta["performance"]["ents_f"] == target["ents_f"]

    # smoke: installed into a throw-away venv, loaded by name, entities came out
    smoke = srsly.read_json(metrics / "smoke.json")
    assert smoke["package"] == "en_ladtl_bionlp13cg" and "entities" in smoke["output"][-1]
    assert "en_ladtl_bionlp13cg 0.1.0" in result.stdout  # the install step tagged by name too
