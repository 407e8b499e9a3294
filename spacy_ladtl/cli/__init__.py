"""Command-line interface: ``python -m spacy_ladtl COMMAND``."""
import typer

app = typer.Typer(
    name="spacy-ladtl",
    no_args_is_help=True,
    add_completion=False,
    help="La-DTL cross-domain NER for spaCy: data conversion and utilities.",
)


@app.callback()
def main() -> None:
    """La-DTL cross-domain NER for spaCy (shared encoder, one CRF per domain)."""


# Command modules register themselves on ``app`` when imported.
from . import convert  # noqa: E402,F401
from . import evaluate  # noqa: E402,F401
from . import subsample  # noqa: E402,F401
