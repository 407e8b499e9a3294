"""Turn the benchmark's result JSONs into a Markdown table (pairs x methods) and an F1-vs-rate plot.

Usage (from project/):
    python scripts/benchmark_compare.py [--results benchmarks/results] [--plan benchmark.yml]
        [--output benchmarks/RESULTS.md] [--plot benchmarks/sampling_curve.png | none]
        [--extra-results benchmarks/results-5seeds ...] [--pairs P,..]

Cells are target **test** entity F1, mean ± std over the seeds found (n in
brackets when other than the plan's number of seeds); the best mean of each row is bold,
leaving out the plan's ``optional`` methods (another encoder: the transformer).
Checkpoints were chosen on target dev by the runs themselves. The plot needs
matplotlib (``pip install -e .[bench]``); without it only the table is written.

``--extra-results`` adds the runs of side folders (e.g. more seeds of a few
methods) to those of ``--results``; the dev search is still read from
``--results`` only. A run found in two folders is an error. Write such a table
elsewhere (``--output``, ``--plot none``) so that RESULTS.md stays the plan's.
"""
import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Tuple

import srsly

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "scripts"))
import bench_tuning  # noqa: E402
Key = Tuple[str, float]


def load_results(*folders: Path) -> Dict[Key, Dict[str, List[Dict[str, Any]]]]:
    """{(pair, rate): {method: [run records]}} of every folder; one run in two folders is an error."""
    table: Dict[Key, Dict[str, List[Dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    seen: Dict[Tuple[str, str, float, int], Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*/*/*.json")):
            record = srsly.read_json(path)
            run = (record["pair"], record["method"], float(record["rate"]), record["seed"])
            if run in seen:
                raise SystemExit(f"✘ {path}: the same run ({', '.join(map(str, run))}) is also in {seen[run]}; "
                                 f"move one of them out of the folders compared")
            seen[run] = path
            table[(record["pair"], float(record["rate"]))][record["method"]].append(record)
    return table


def mean_std(values: List[float]) -> Tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def cell(runs: List[Dict[str, Any]], n_seeds: int, best: bool, split: str = "test") -> str:
    mean, std = mean_std([100 * r[split]["ents_f"] for r in runs])
    text = f"{mean:.2f} ± {std:.2f}" if len(runs) > 1 else f"{mean:.2f}"
    if best:
        text = f"**{text}**"
    return text + (f" (n={len(runs)})" if len(runs) != n_seeds else "")


def mean_f1(runs: List[Dict[str, Any]], split: str = "test") -> float:
    """Mean entity F1 (in points) of ``runs`` on ``split``."""
    return mean_std([100 * r[split]["ents_f"] for r in runs])[0]


def seed_differences(ours: List[Dict[str, Any]], theirs: List[Dict[str, Any]], split: str = "test") -> List[float]:
    """Per-seed F1 differences (in points), ``ours`` minus ``theirs``, on the seeds both ran."""
    mine = {r["seed"]: 100 * r[split]["ents_f"] for r in ours}
    other = {r["seed"]: 100 * r[split]["ents_f"] for r in theirs}
    return [mine[seed] - other[seed] for seed in sorted(set(mine) & set(other))]


def in_plan_order(table, plan: Dict[str, Any]) -> List[Key]:
    """The table's (pair, rate) keys, pairs in the plan's order (others last), then by rate."""
    pairs = list(plan["pairs"])
    return sorted(table, key=lambda k: (pairs.index(k[0]) if k[0] in pairs else len(pairs), k[1]))


def with_most_seeds(row: Dict[str, List[Dict[str, Any]]], methods: List[str]) -> List[str]:
    """Those of ``methods`` run with the most seeds among them in ``row`` (the only ones ranked)."""
    most = max((len(row[m]) for m in methods), default=0)
    return [m for m in methods if len(row[m]) == most]


def markdown_table(table, plan: Dict[str, Any], split: str = "test") -> str:
    methods = [m for m in plan["methods"] if any(m in row for row in table.values())]
    n_seeds = len(plan["seeds"])
    lines = ["| pair | target rate | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for (pair, rate) in in_plan_order(table, plan):
        row = table[(pair, rate)]
        # ranked: the methods with the row's most seeds; optional ones (another encoder,
        # e.g. the transformer) and methods with fewer seeds are shown but not ranked
        ranked = [m for m in methods if row.get(m) and not plan["methods"].get(m, {}).get("optional")]
        means = {m: mean_f1(row[m], split) for m in with_most_seeds(row, ranked)}
        best = max(means.values()) if means else None
        cells = [cell(row[m], n_seeds, best is not None and means.get(m) == best, split) if row.get(m) else "–" for m in methods]
        lines.append(f"| {pair} | {rate:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_differences(table, plan: Dict[str, Any], split: str = "test") -> str:
    """``plan["paired"]`` (one entry or a list): ``method`` minus each of ``against``, seed by seed.

    A cell is the mean ± std of the per-seed F1 differences (on the seeds both
    ran) and how many seeds ``method`` won; the spread of a difference over seeds
    says whether a gap between two means is more than seed noise.
    """
    specs = plan.get("paired") or []
    return "".join(_paired_table(table, plan, spec, split) for spec in ([specs] if isinstance(specs, dict) else specs))


def _paired_table(table, plan: Dict[str, Any], spec: Dict[str, Any], split: str) -> str:
    """One paired table: ``spec["method"]`` minus each method of ``spec["against"]``."""
    method, against = spec["method"], [m for m in spec["against"] if any(m in row for row in table.values())]
    lines = [f"| pair | target rate | " + " | ".join(f"{method} − {m}" for m in against) + " |",
             "|---|---|" + "---|" * len(against)]
    for (pair, rate) in in_plan_order(table, plan):
        row = table[(pair, rate)]
        if not row.get(method):
            continue
        cells = []
        for other in against:
            diffs = seed_differences(row[method], row.get(other, []), split)
            if not diffs:
                cells.append("–")
                continue
            mean, std = mean_std(diffs)
            wins = sum(d > 0 for d in diffs)
            cells.append(f"{mean:+.2f} ± {std:.2f} ({wins}/{len(diffs)})" if len(diffs) > 1 else f"{mean:+.2f} (1 seed)")
        if any(c != "–" for c in cells):
            lines.append(f"| {pair} | {rate:.0%} | " + " | ".join(cells) + " |")
    if len(lines) == 2:
        return ""
    return (f"\n\nPaired {split} F1 differences, seed by seed (`{method}` minus each method, on the seeds both ran): "
            f"mean ± std over seeds, (seeds `{method}` won / seeds compared):\n\n" + "\n".join(lines))


def goal_check(table, plan: Dict[str, Any]) -> str:
    """``plan["goal"]``, row by row: is La-DTL ahead of every baseline, far enough ahead of spaCy's
    ``ner`` on target only, and at or above the published La-DTL number?

    The row's La-DTL is whichever of ``goal["ours"]`` has the best target **dev** mean (never
    test) among those run with the row's most seeds (a one-seed dev score is not a mean over
    seeds). Each gap is the mean test F1 difference over the seeds both ran (the difference of
    the means when the seeds are the same); one no larger than its std over seeds is within noise.
    """
    goal = plan.get("goal")
    if not goal:
        return ""
    margin = float(goal.get("margin", 5.0))
    references = {(ref["pair"], float(ref["rate"])): ref["ladtl"] for ref in plan.get("references", []) if "ladtl" in ref}
    lines = ["| pair | target rate | La-DTL (chosen on dev) | test F1 | ahead of | level with or ahead of it: "
             f"test Δ ± std (seeds won) | vs spaCy `ner` on target only (≥ +{margin:g}) | vs published La-DTL | goal |",
             "|---|---|---|---|---|---|---|---|---|"]
    counts = defaultdict(lambda: [0, 0])  # criterion -> [rows met, rows checked]
    for (pair, rate) in in_plan_order(table, plan):
        row = table[(pair, rate)]
        ours = with_most_seeds(row, [m for m in goal["ours"] if row.get(m)])
        if not ours:
            continue
        chosen = max(ours, key=lambda m: mean_f1(row[m], "dev"))
        our_mean = mean_f1(row[chosen])
        checks: Dict[str, bool] = {}
        gaps = {m: _gap(row[chosen], row[m]) for m in goal["baselines"] if row.get(m)}
        behind = [f"{m} {text}" for m, (gap, text) in gaps.items() if gap <= 0]
        checks["ahead"] = not behind
        ahead_text = f"{len(gaps) - len(behind)} of {len(gaps)}"
        if gaps and not behind:
            closest = min(gaps, key=lambda m: gaps[m][0])
            ahead_text += f" (closest: {closest} {gaps[closest][1]})"
        spacy = [_gap(row[chosen], row[m])[0] for m in goal.get("spacy_target", []) if row.get(m)]
        spacy_text = "–"
        if spacy:
            checks["spacy"] = min(spacy) >= margin
            spacy_text = " / ".join(f"{g:+.2f}" for g in spacy) + (" ✔" if checks["spacy"] else " ✘")
        published, published_text = references.get((pair, rate)), "–"
        if published is not None:
            checks["published"] = our_mean >= published
            published_text = f"{our_mean - published:+.2f} ({published})" + (" ✔" if checks["published"] else " ✘")
        for name, met in checks.items():
            counts[name][0] += met
            counts[name][1] += 1
        lines.append(f"| {pair} | {rate:.0%} | {chosen} | {our_mean:.2f} | {ahead_text} | {'; '.join(behind) or 'none'} "
                     f"| {spacy_text} | {published_text} | {'met' if all(checks.values()) else 'not met'} |")
    if len(lines) == 2:
        return ""
    summary = (f"Ahead of every baseline on {counts['ahead'][0]} of {counts['ahead'][1]} rows; at least +{margin:g} over "
               f"spaCy's `ner` on target only ({', '.join(goal.get('spacy_target', []))}) on {counts['spacy'][0]} of "
               f"{counts['spacy'][1]} rows with those runs; at or above the published La-DTL number on "
               f"{counts['published'][0]} of {counts['published'][1]} rows with one.")
    return ("\n\nThe goal, row by row (target **test** F1; the row's La-DTL is the one of "
            f"{', '.join(goal['ours'])} with the best **dev** mean among those with the row's most seeds; "
            "a gap is the mean test difference over the seeds both ran, within noise when no larger than its std over those seeds):\n\n" + "\n".join(lines) + "\n\n" + summary)


def _gap(ours: List[Dict[str, Any]], theirs: List[Dict[str, Any]]) -> Tuple[float, str]:
    """Mean test F1 difference over the seeds both ran, and its text: "+0.14 ± 0.79 (2/3), within noise".

    With no seed in common, the difference of the two means (its noise unknown).
    """
    diffs = seed_differences(ours, theirs)
    if not diffs:
        gap = mean_f1(ours) - mean_f1(theirs)
        return gap, f"{gap:+.2f} (no seed in common)"
    if len(diffs) == 1:
        return diffs[0], f"{diffs[0]:+.2f} (1 seed)"
    mean, std = mean_std(diffs)
    return mean, (f"{mean:+.2f} ± {std:.2f} ({sum(d > 0 for d in diffs)}/{len(diffs)}), "
                  + ("within noise" if abs(mean) <= std else "beyond noise"))


def selection_text(runs: List[Dict[str, Any]]) -> str:
    """Where the checkpoints were chosen: target dev, unless a method's overrides set ``corpora.dev.paths``."""
    elsewhere: Dict[str, set] = defaultdict(set)
    for r in runs:
        paths = (r.get("overrides") or {}).get("corpora.dev.paths")
        if paths:
            elsewhere[", ".join(map(str, paths.values()))].add(r["method"])
    if not elsewhere:
        return "checkpoints chosen on target dev"
    parts = [f"on {where} for {', '.join(sorted(methods))}" for where, methods in sorted(elsewhere.items())]
    return f"checkpoints chosen {'; '.join(parts)} (a `corpora.dev.paths` override), on target dev for any other"


def notes(table, plan: Dict[str, Any], extra: List[str]) -> str:
    """The table's notes: protocol, machines, run notes, ``extra`` lines, published references.

    Only the runs of the plan's methods count (the ones the table shows): a folder compared may hold others.
    """
    lines = ["", "Notes:", ""]
    runs = [r for row in table.values() for method, method_runs in row.items() if method in plan["methods"] for r in method_runs]
    budgets = sorted({json.dumps(r["budget"], sort_keys=True) for r in runs})
    seeds = sorted({r["seed"] for r in runs})
    lines.append(
        f"- Target test entity F1 (%), mean ± std over the seeds run ({seeds}; the plan has {plan['seeds']}); "
        f"{selection_text(runs)}; training budget of the runs: {'; '.join(budgets)} "
        f"(the same for every method); target subsample seed {plan['budget']['subsample_seed']}. "
        f"Bold: the best mean among the methods of the row with its most seeds."
    )
    wall = sum(r["wall_seconds"] for r in runs)
    lines.append(f"- {len(runs)} run{'' if len(runs) == 1 else 's'}, {wall / 3600:.1f} h of training wall time in all.")
    lines += [f"- {pair}, trained on {machine}: {', '.join(sorted(methods))}." for (pair, machine), methods in machines(runs).items()]
    noted: Dict[Tuple[str, str, float, str], List[int]] = defaultdict(list)  # one line per note, its seeds listed
    for r in runs:
        if r.get("note"):
            noted[(r["pair"], r["method"], r["rate"], r["note"])].append(r["seed"])
    for (pair, method, rate, note), seeds_noted in noted.items():
        which = f"seed {seeds_noted[0]}" if len(seeds_noted) == 1 else f"seeds {', '.join(map(str, sorted(seeds_noted)))}"
        lines.append(f"- {pair} {method} rate {rate:g} {which}: {note}.")
    lines += extra
    for ref in plan.get("references", []):
        published = ", ".join(f"{k} {v}" for k, v in ref.items() if k not in ("pair", "rate", "source"))
        lines.append(f"- Published ({ref['pair']}, {ref['rate']:.0%} target): {published} — {ref['source']}.")
    missing = [p for p in plan["pairs"] if not any(k[0] == p for k in table)]
    if missing:
        lines.append(f"- Not run yet: {', '.join(missing)}.")
    return "\n".join(lines)


def drop_stale_tuned(table, plan: Dict[str, Any], results: Path) -> List[str]:
    """Leave out tuned runs whose point is not the dev search's current best
    (the grid grew, or the search is unfinished); return one note per (pair, rate, method)."""
    if "tuning" not in plan:
        return []
    lines = []
    for (pair, rate), row in table.items():
        for method in [m for m in row if plan["methods"].get(m, {}).get("tuned")]:
            best, base = bench_tuning.method_best(plan, method, results, pair, f"{rate:g}", PROJECT, bench_tuning.DEFAULT_CONFIG)
            stale = [r for r in row[method] if not bench_tuning.holds_point(r, best, base)]
            if stale:
                row[method] = [r for r in row[method] if r not in stale]
                why = "the dev search is unfinished" if best is None else "the dev search has moved on"
                lines.append(f"- {pair} {method} rate {rate:g}: {len(stale)} run(s) left out, trained for a point "
                             f"that is not the dev search's current best ({why}).")
            if not row[method]:
                del row[method]
    return lines


def tuning_notes(table, plan: Dict[str, Any], results: Path) -> str:
    """The dev-set searches of the tuned methods, one list per distinct search, one line per
    (pair, rate) that has one: dev F1 per value tried, the kept value bold."""
    if "tuning" not in plan:
        return ""
    searches = bench_tuning.tuned_searches(plan, list(plan["methods"]))
    return "".join(_search_notes(table, plan, tuning, methods, results) for tuning, methods in searches.values())


def _search_notes(table, plan: Dict[str, Any], tuning: Dict[str, Any], methods: List[str], results: Path) -> str:
    """The notes of one dev search (used by ``methods``)."""
    base = bench_tuning.plan_base(plan, PROJECT, bench_tuning.DEFAULT_CONFIG, tuning)
    seeds = bench_tuning.search_seeds(tuning)
    lines = []
    for pair, rate in sorted(table):
        if not any((results / pair / "tuning").glob(f"*/rate{rate:g}-seed*.json")):  # no search at this rate
            continue
        missing, best, trace = bench_tuning.search(results, pair, f"{rate:g}", tuning, base)
        if len(seeds) > 1 and not trace and not any(table[(pair, rate)].get(m) for m in methods):
            continue  # a several-seed search not started on this row
        steps = []
        for key in tuning["grid"]:
            tried = [f"**{bench_tuning.value_text(t['value'])}: {100 * t['dev_f']:.2f}**" if t["chosen"]
                     else f"{bench_tuning.value_text(t['value'])}: {100 * t['dev_f']:.2f}"
                     for t in trace if t["key"] == key]
            if tried:
                steps.append(f"{key.rsplit('.', 1)[-1]} " + ", ".join(tried))
        state = f"kept {bench_tuning.point_name(best)}" if best else f"unfinished ({len(missing)} run(s) to do next)"
        machines_used = defaultdict(list)
        for t in trace:
            if t["point"] not in machines_used[where_trained(t["machine"])]:
                machines_used[where_trained(t["machine"])].append(t["point"])
        where = (f" (trained on {next(iter(machines_used))})" if len(machines_used) == 1
                 else " (" + "; ".join(f"{', '.join(points)} trained on {m}" for m, points in machines_used.items()) + ")")
        lines.append(f"- {pair}, {rate:.0%} target: " + "; ".join(steps) + f" → {state}" + (where if trace else "") + ".")
    if not lines:
        return ""
    scored = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean over seeds {', '.join(map(str, seeds))}"
    head = (f"\n\nDev tuning of `{tuning['method']}` for {', '.join(f'`{m}`' for m in methods)} (target **dev** F1, {scored}; "
            f"coordinate search from {bench_tuning.point_name(base)}, one key at a time):\n\n")
    return head + "\n".join(lines)


def where_trained(machine: Dict[str, Any]) -> str:
    """A run record's machine -> "<GPU name> (GPU)" | "CPU (n cores, t torch threads)"."""
    if machine.get("gpu"):
        return f"{machine['gpu']} (GPU)"
    threads = machine.get("torch_threads", "?")
    return f"CPU ({machine.get('cpus', '?')} cores, {threads} torch thread{'' if threads == 1 else 's'})"


def machines(runs: List[Dict[str, Any]]) -> Dict[Tuple[str, str], set]:
    """{(pair, where_trained): {method, ...}}: where the runs trained."""
    found: Dict[Tuple[str, str], set] = defaultdict(set)
    for r in sorted(runs, key=lambda r: r["pair"]):
        found[(r["pair"], where_trained(r["machine"]))].add(r["method"])
    return found


def plot_curve(table, plan: Dict[str, Any], path: Path) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    curve = plan["curve"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method in curve["methods"]:
        points = sorted(
            (rate, mean_std([100 * r["test"]["ents_f"] for r in row[method]]))
            for (pair, rate), row in table.items()
            if pair == curve["pair"] and row.get(method)
        )
        if points:
            rates = [100 * p[0] for p in points]
            ax.errorbar(rates, [p[1][0] for p in points], yerr=[p[1][1] for p in points], marker="o", capsize=3, label=method)
    ax.set_xlim(0, 105)
    ax.set_xlabel("target training data used (%)")
    ax.set_ylabel("target test F1 (%)")
    ax.set_title(f"{curve['pair']}: F1 vs sampling rate")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return True


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or None (with a message) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install -e .[bench]): no plot written")
        return None
    return plt


def load_folders(*folders: Path) -> Dict[Key, Dict[str, List[Dict[str, Any]]]]:
    """``load_results`` of folders that must exist (the message names a missing one)."""
    for folder in folders:
        if not folder.is_dir():
            raise SystemExit(f"✘ no results folder {folder}")
    return load_results(*folders)


def save_markdown(text: str, output: Path) -> None:
    """Write the report (making its folder) and print it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(text)
    print(f"✔ Saved {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=PROJECT / "benchmarks" / "results")
    parser.add_argument("--plan", type=Path, default=PROJECT / "benchmark.yml")
    parser.add_argument("--output", type=Path, default=PROJECT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--plot", type=str, default=str(PROJECT / "benchmarks" / "sampling_curve.png"),
                        help='"none": no plot')
    parser.add_argument("--extra-results", type=Path, action="append", default=[],
                        help="a side folder whose runs join the table (repeatable)")
    parser.add_argument("--pairs", type=str, default="", help="only these pairs (comma-separated)")
    args = parser.parse_args()
    plan = srsly.read_yaml(args.plan)
    table = load_folders(args.results, *args.extra_results)
    if args.pairs:
        wanted = set(args.pairs.split(","))
        unknown = wanted - {pair for pair, _ in table}
        if unknown:
            raise SystemExit(f"✘ --pairs: no runs of {', '.join(sorted(unknown))} in the folders compared")
        table = {key: row for key, row in table.items() if key[0] in wanted}
        plan["pairs"] = {pair: spec for pair, spec in plan["pairs"].items() if pair in wanted}
    if not table:
        raise SystemExit(f"✘ no result JSONs under {args.results}: run scripts/benchmark_run.py first")
    stale = drop_stale_tuned(table, plan, args.results)
    text = ("# Accuracy benchmark\n\nTarget **test** entity F1:\n\n" + markdown_table(table, plan) + "\n"
            + notes(table, plan, stale) + goal_check(table, plan) + paired_differences(table, plan) + tuning_notes(table, plan, args.results)
            + "\n\nTarget **dev** entity F1 of the same checkpoints (what selected them):\n\n"
            + markdown_table(table, plan, split="dev") + "\n")
    plot = None if args.plot.lower() == "none" else Path(args.plot)
    if plot is not None and plot_curve(table, plan, plot):
        text += f"\n![F1 vs sampling rate]({plot.name})\n"
    save_markdown(text, args.output)


if __name__ == "__main__":
    main()
