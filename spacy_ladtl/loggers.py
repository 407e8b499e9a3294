"""``spacy-ladtl.ConsoleLogger.v1``: spaCy's console table with one column per La-DTL loss term.

spaCy's own console logger shows one loss per component; La-DTL's component
also reports ``<name>_crf``, ``<name>_mmd`` and ``<name>_crf_l2``. This logger
shows every loss key of every trainable component, so the training log tells
how much each term contributes.
"""
import sys
from typing import IO, Any, Callable, Dict, List, Optional, Tuple

from spacy.language import Language
from spacy.util import registry
from wasabi import Printer

LOSS_WIDTH = 9
SCORE_WIDTH = 6


@registry.loggers("spacy-ladtl.ConsoleLogger.v1")
def make_console_logger() -> Callable[[Language, IO, IO], Tuple[Callable[[Optional[Dict[str, Any]]], None], Callable[[], None]]]:
    """A console logger printing every loss term and the weighted scores."""

    def setup(nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr):
        printer = Printer(no_print=True)
        trainable = [name for name, pipe in nlp.pipeline if getattr(pipe, "is_trainable", False)]
        weights = nlp.config["training"]["score_weights"]
        score_cols = [col for col, weight in weights.items() if weight is not None]
        loss_cols: List[str] = []
        widths: List[int] = []

        def write_row(cells: List[Any]) -> None:
            stdout.write(printer.row(cells, widths=widths, spacing=2) + "\n")
            stdout.flush()

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            if info is None:
                return
            if not loss_cols:
                loss_cols.extend(key for key in info["losses"] if any(key.startswith(name) for name in trainable))
                header = ["E", "#"] + [_loss_label(col, trainable) for col in loss_cols] + [c.upper() for c in score_cols] + ["SCORE"]
                minimum = [3, 6] + [LOSS_WIDTH] * len(loss_cols) + [SCORE_WIDTH] * (len(score_cols) + 1)
                widths.extend(max(len(h), w) for h, w in zip(header, minimum))
                write_row(header)
                write_row(["-" * w for w in widths])
            losses = [f"{float(info['losses'].get(col, 0.0)):.2f}" for col in loss_cols]
            scores = []
            for col in score_cols:
                value = info["other_scores"].get(col)
                scores.append("-" if value is None else f"{float(value) * (1 if col == 'speed' else 100):.2f}")
            write_row([info["epoch"], info["step"]] + losses + scores + [f"{float(info['score']):.2f}"])

        def finalize() -> None:
            pass

        return log_step, finalize

    return setup


def _loss_label(col: str, components: List[str]) -> str:
    """'ladtl_ner_crf_l2' -> 'LOSS CRF_L2'; a component's own key -> 'LOSS <NAME>'."""
    for name in components:
        if col.startswith(name + "_"):
            return f"LOSS {col[len(name) + 1:].upper()}"
    return f"LOSS {col.upper()}"
