"""Shared helpers of the speed benchmark scripts (timing, environment, tables)."""
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence


def time_call(fn: Callable[[], Any], *, repeats: int = 20, warmup: int = 3, min_time: float = 0.0) -> Dict[str, float]:
    """Median / min / max seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls.

    With ``min_time`` > 0, keeps repeating until at least that many seconds were timed.
    """
    for _ in range(warmup):
        fn()
    times: List[float] = []
    total = 0.0
    while len(times) < repeats or total < min_time:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        total += elapsed
        if len(times) >= 50 * max(repeats, 1):
            break
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "repeats": len(times),
    }


def load_average() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def environment() -> Dict[str, Any]:
    """Machine, thread and library facts recorded with every benchmark run."""
    import numpy
    import spacy
    import thinc
    import torch

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "spacy": spacy.__version__,
        "thinc": thinc.__version__,
        "numpy": numpy.__version__,
    }
    try:
        from importlib.metadata import version

        versions["spacy-ladtl"] = version("spacy-ladtl")
    except Exception:  # pragma: no cover - not installed as a distribution
        versions["spacy-ladtl"] = None
    try:
        from importlib.metadata import version

        versions["pytorch-crf"] = version("pytorch-crf")
    except Exception:
        versions["pytorch-crf"] = None
    return {
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "versions": versions,
        "load_average_start": load_average(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain monospace table (right-aligned numbers)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(c.rjust(w) if _is_num(c) else c.ljust(w) for c, w in zip(row, widths)))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def _is_num(text: str) -> bool:
    return bool(text) and text.replace(",", "").replace(".", "").replace("-", "").replace("x", "").replace("%", "").isdigit()
