"""``python -m spacy_ladtl evaluate``: score a pipeline on one domain's test set.

Unlike ``spacy evaluate``, the docs to annotate carry the domain marker, so each
sentence is decoded by its own domain's CRF head (source test sets included).
"""
from pathlib import Path
from typing import Any, Dict, Optional

import spacy
import srsly
import typer
from wasabi import msg

from ..readers import MultiDomainCorpus
from . import app


def evaluate_domain(model: str, data_path: Path, domain: str, gpu_id: int = -1) -> Dict[str, Any]:
    """Entity P/R/F (overall and per type) of ``model`` on ``data_path`` read as ``domain``."""
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = spacy.load(model)
    examples = list(MultiDomainCorpus({domain: data_path})(nlp))
    scores = nlp.evaluate(examples)
    return {
        "model": str(model),
        "data": str(data_path),
        "domain": domain,
        "n_docs": len(examples),
        "ents_p": scores["ents_p"],
        "ents_r": scores["ents_r"],
        "ents_f": scores["ents_f"],
        "ents_per_type": scores["ents_per_type"],
        "speed_words_per_second": scores.get("speed"),
    }


@app.command("evaluate")
def evaluate_command(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    data_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="A .spacy file of one domain"),
    domain: str = typer.Option("target", "--domain", "-d", help="Domain of the docs (selects the CRF head)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the scores to this JSON file"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, or -1 for CPU"),
) -> None:
    """Score MODEL on DATA_PATH as DOMAIN and print P/R/F overall and per type."""
    scores = evaluate_domain(model, data_path, domain, gpu_id)
    msg.divider(f"{domain}: {data_path}")
    msg.table(
        [("P", f"{100 * scores['ents_p']:.2f}"), ("R", f"{100 * scores['ents_r']:.2f}"), ("F", f"{100 * scores['ents_f']:.2f}")],
        header=("overall", ""),
    )
    per_type = [
        (label, f"{100 * s['p']:.2f}", f"{100 * s['r']:.2f}", f"{100 * s['f']:.2f}")
        for label, s in sorted(scores["ents_per_type"].items())
    ]
    if per_type:
        msg.table(per_type, header=("type", "P", "R", "F"))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(output, scores)
        msg.good(f"Saved scores to {output}")
