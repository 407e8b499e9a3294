"""Dev curves of benchmark runs: target dev F1 at every evaluation, the step that was kept, and why training stopped.

Usage (from project/):
    python scripts/benchmark_curves.py [--results benchmarks/results] [--extra-results DIR ...]
        [--pairs P,..] [--methods M,..] [--output benchmarks/dev_curves.md]
        [--plot benchmarks/dev_curves.png | none]

Reads the ``dev_curve`` that ``benchmark_run.py`` stores in every run JSON (runs
older than that field are counted and skipped). For each (pair, rate) it writes a
table: one row per evaluation step, one column per run (method, seed), the kept
(dev-best) step in bold; then, per run, the kept step, the last step, whether the
step budget or patience ended it, and the test F1 of the kept checkpoint. A run
ended by the budget whose last evaluation beat every earlier one was still improving.
The plot (matplotlib, ``pip install -e .[bench]``) draws one panel per (pair, rate), one
colour per method in every panel, the kept step circled; step 0 (the untrained model) is left
out of it so that the plateau, where checkpoints are chosen, is readable.
"""
import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "scripts"))
from benchmark_compare import Key, load_folders, pyplot, save_markdown  # noqa: E402

Run = Dict[str, Any]


def curve_runs(table, pairs: Optional[List[str]], methods: Optional[List[str]]) -> Tuple[Dict[Key, List[Run]], int]:
    """{(pair, rate): runs with a dev curve, by method then seed} and how many runs had none."""
    kept: Dict[Key, List[Run]] = {}
    without = 0
    for key in sorted(table):
        if pairs and key[0] not in pairs:
            continue
        runs = [r for method, method_runs in table[key].items() if not methods or method in methods for r in method_runs]
        without += sum(1 for r in runs if not r.get("dev_curve"))
        runs = [r for r in runs if r.get("dev_curve")]
        if runs:
            order = methods or sorted({r["method"] for r in runs})
            kept[key] = sorted(runs, key=lambda r: (order.index(r["method"]), r["seed"]))
    return kept, without


def kept_step(run: Run) -> Dict[str, Any]:
    """The evaluation row spaCy saved as model-best: the best dev F1, the latest on a tie
    (spaCy saves whenever a score equals the best so far)."""
    rows = [row for row in run["dev_curve"] if row["dev_f"] is not None]
    return max(rows, key=lambda row: (row["dev_f"], row["step"]))


def how_it_ended(run: Run) -> str:
    """"budget" when no evaluation was left before max_steps, else "patience" (no dev gain for `patience` steps)."""
    budget = run["budget"]
    return "budget" if run["dev_curve"][-1]["step"] + budget["eval_frequency"] > budget["max_steps"] else "patience"


def label(run: Run) -> str:
    return f"{run['method']} s{run['seed']}"


def curve_table(runs: List[Run]) -> str:
    """Steps x runs, dev F1 (%), each run's kept step bold."""
    steps = sorted({row["step"] for run in runs for row in run["dev_curve"]})
    by_run = [{row["step"]: row["dev_f"] for row in run["dev_curve"]} for run in runs]
    kept = [kept_step(run)["step"] for run in runs]
    lines = ["| step | " + " | ".join(label(r) for r in runs) + " |", "|---|" + "---|" * len(runs)]
    for step in steps:
        cells = []
        for values, best in zip(by_run, kept):
            value = values.get(step)
            text = "" if value is None else f"{value:.2f}"
            cells.append(f"**{text}**" if step == best and text else text)
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_summaries(runs: List[Run]) -> str:
    lines = []
    for run in runs:
        best, last = kept_step(run), run["dev_curve"][-1]
        ended = how_it_ended(run)
        earlier = [row["dev_f"] for row in run["dev_curve"][:-1] if row["dev_f"] is not None]
        improving = ended == "budget" and last["dev_f"] is not None and all(last["dev_f"] > f for f in earlier)
        rising = " — still improving at the last evaluation" if improving else ""
        lines.append(f"- {label(run)}: kept step {best['step']} (dev {best['dev_f']:.2f}), last step {last['step']} "
                     f"(dev {last['dev_f']:.2f}), ended by the {ended}{rising}; test F1 of the kept checkpoint "
                     f"{100 * run['test']['ents_f']:.2f}.")
    return "\n".join(lines)


def markdown(curves: Dict[Key, List[Run]], without: int) -> str:
    parts = ["# Dev curves\n", "Target **dev** entity F1 (%) at each evaluation; bold: the step kept as model-best "
             "(test F1 is reported for that checkpoint only)."]
    for (pair, rate), runs in curves.items():
        budgets = sorted({f"max_steps {r['budget']['max_steps']}, patience {r['budget']['patience']}" for r in runs})
        parts.append(f"\n## {pair}, {rate:.0%} target ({'; '.join(budgets)})\n\n" + curve_table(runs) + "\n\n" + run_summaries(runs))
    if without:
        parts.append(f"\n{without} run(s) of the rows shown have no dev curve (trained before runs recorded one) and are left out.")
    return "\n".join(parts) + "\n"


def plot(curves: Dict[Key, List[Run]], path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    methods = list(dict.fromkeys(run["method"] for runs in curves.values() for run in runs))
    colours = {method: f"C{i % 10}" for i, method in enumerate(methods)}
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.8), squeeze=False)
    for ax, ((pair, rate), runs) in zip(axes[0], curves.items()):
        for run in runs:
            rows = [row for row in run["dev_curve"] if row["dev_f"] is not None and row["step"] > 0]
            colour, style = colours[run["method"]], styles[run["seed"] % len(styles)]
            ax.plot([r["step"] for r in rows], [r["dev_f"] for r in rows], style, marker=".", color=colour, label=label(run))
            best = kept_step(run)
            ax.plot([best["step"]], [best["dev_f"]], marker="o", markersize=8, fillstyle="none", color=colour)
        ax.set_title(f"{pair}, {rate:.0%}", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("target dev F1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=PROJECT / "benchmarks" / "results")
    parser.add_argument("--extra-results", type=Path, action="append", default=[], help="another results folder (repeatable)")
    parser.add_argument("--pairs", default="", help="only these pairs (comma-separated)")
    parser.add_argument("--methods", default="", help="only these methods, in this column order (comma-separated)")
    parser.add_argument("--output", type=Path, default=PROJECT / "benchmarks" / "dev_curves.md")
    parser.add_argument("--plot", default=str(PROJECT / "benchmarks" / "dev_curves.png"), help='"none": no plot')
    args = parser.parse_args()
    pairs = [p for p in args.pairs.split(",") if p] or None
    methods = [m for m in args.methods.split(",") if m] or None
    curves, without = curve_runs(load_folders(args.results, *args.extra_results), pairs, methods)
    if not curves:
        raise SystemExit(f"✘ no run with a dev curve in {', '.join(map(str, [args.results, *args.extra_results]))} "
                         f"(for these pairs / methods): runs record one since benchmark_run.py stores `dev_curve`")
    text = markdown(curves, without)
    image = None if args.plot.lower() == "none" else Path(args.plot)
    if image is not None and plot(curves, image):
        text += f"\n![dev F1 per step]({image.name})\n"
    save_markdown(text, args.output)


if __name__ == "__main__":
    main()
