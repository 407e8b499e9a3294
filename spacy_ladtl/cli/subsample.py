"""``subsample``: keep a seeded fraction of a .spacy file (the paper's 10/25/50/100%), with a manifest."""
from pathlib import Path
from typing import Optional

import srsly
import typer
from wasabi import msg

from ..sampling import file_sha256, read_manifest, replay, subsample, write_docs
from . import app


@app.command("subsample")
def subsample_command(
    input_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="A .spacy file (e.g. the target train split)"),
    output_path: Path = typer.Argument(..., dir_okay=False, help="Where the kept docs go (.spacy)"),
    rate: float = typer.Option(1.0, "--rate", "-r", help="Fraction to keep, e.g. 0.1 for 10%"),
    seed: int = typer.Option(0, "--seed", "-s", help="Random seed of the selection"),
    manifest_path: Optional[Path] = typer.Option(
        None, "--manifest", "-m", help="Write the manifest (kept doc indices + checksums) here"
    ),
    from_manifest: Optional[Path] = typer.Option(
        None, "--from-manifest", exists=True, dir_okay=False, help="Replay this manifest instead of drawing anew"
    ),
) -> None:
    """Keep RATE of INPUT_PATH's docs (seeded) in OUTPUT_PATH; or replay a manifest exactly."""
    try:
        if from_manifest is not None:
            manifest = read_manifest(from_manifest)
            docs = replay(manifest, input_path)
            if file_sha256(input_path) != manifest["input_sha256"]:
                msg.warn(f"{input_path} differs byte-wise from the manifest's input, but every kept doc matches.")
            msg.good(f"Replayed {from_manifest}: {len(docs)} of {manifest['n_input']} docs")
        else:
            docs, manifest = subsample(input_path, rate, seed)
            msg.good(f"Kept {manifest['n_kept']} of {manifest['n_input']} docs ({rate:.0%}, seed {seed})")
    except ValueError as err:
        msg.fail(str(err), exits=1)
    write_docs(output_path, docs)
    msg.info(f"{manifest['n_tokens_kept']} tokens; entities: {manifest['entities_kept']}")
    msg.good(f"Saved {output_path}")
    if manifest_path is not None and from_manifest is None:
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(manifest_path, manifest)
        msg.good(f"Saved manifest {manifest_path}")
