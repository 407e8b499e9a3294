"""Dev-set tuning of La-DTL's loss weights for the benchmark: a resumable coordinate search.

The plan's ``tuning`` section names a base method, a seed and, per config key, the
values to try. Starting from the base config's own values, one key at a time (in the
plan's order) every value is tried with the others held at their current best, and
the value with the best **target dev** F1 is kept (ties keep the earlier value).
A tuned method may replace keys of that section with its own ``tuning`` entry, e.g.
``seeds: [0, 1, 2]``: a point is then scored by its mean dev F1 over those seeds.
Each point is one benchmark run per seed, stored under
``<results>/<pair>/tuning/<point>/rate<r>-seed<s>.json``; the point with the base's
own values is the base method's ordinary run, ``<results>/<pair>/<method>/...``.
"""
import json
import math
import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import srsly
from spacy.util import load_config

Point = Dict[str, Any]  # config key -> float, or bool for switches such as mmd_include_o
#: The config of plan methods that name none (benchmark_run.py's LADTL_CONFIG).
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "ladtl_bilstm.cfg"


def grid_value(value: Any) -> Any:
    """A grid or config value as a point holds it: bools and ints stay as they are (an int
    setting such as ``mmd_memory`` rejects a float), other numbers become floats."""
    return value if isinstance(value, (bool, int)) else float(value)


def value_text(value: Any) -> str:
    """0.04 -> "0.04", True -> "true"."""
    return str(value).lower() if isinstance(value, bool) else f"{value:g}"


def same_point(a: Optional[Point], b: Optional[Point]) -> bool:
    """Whether two points hold the same values (floats read back from JSON may differ in the last bit)."""
    if not a or not b or set(a) != set(b):
        return False
    return all(a[k] is b[k] if isinstance(a[k], bool) or isinstance(b[k], bool) else math.isclose(a[k], b[k], rel_tol=1e-9)
               for k in a)


def holds_point(record: Dict[str, Any], best: Optional[Point], base: Point) -> bool:
    """Whether a tuned method's run record was trained for ``best``, the search's current
    point (None while the search is unfinished).

    A key missing from the record's point joined the grid after the run: the run had
    the base value of that key.
    """
    point = record.get("tuned", {}).get("point")
    if point is None:
        return False
    return same_point({**{k: v for k, v in base.items() if k not in point}, **point}, best)


def point_name(point: Point) -> str:
    """{"components.ladtl_ner.mmd_include_o": False, "components.ladtl_ner.alpha": 0.01, ...}
    -> "mmd_include_ofalse-alpha0.01-..."."""
    return "-".join(f"{key.rsplit('.', 1)[-1]}{value_text(value)}" for key, value in point.items())


def base_point(tuning: Dict[str, Any], config_path: Path) -> Point:
    """The base config's values of the tuned keys (e.g. the paper's α .02, β .03, ε .3)."""
    config = load_config(config_path)
    point = {}
    for key in tuning["grid"]:
        section = config
        for part in key.split("."):
            if part not in section:
                raise KeyError(f"benchmark.yml tuning.grid: {key!r} is not a setting of {config_path}")
            section = section[part]
        point[key] = grid_value(section)
    return point


def method_tuning(plan: Dict[str, Any], method: str) -> Dict[str, Any]:
    """The dev search of tuned ``method``: the plan's ``tuning`` with the method's own ``tuning`` keys on top."""
    return {**plan["tuning"], **(plan["methods"][method].get("tuning") or {})}


def tuned_searches(plan: Dict[str, Any], methods: List[str]) -> Dict[str, Tuple[Dict[str, Any], List[str]]]:
    """The distinct dev searches of the tuned ``methods``: search key -> (its tuning, the methods sharing it)."""
    searches: Dict[str, Tuple[Dict[str, Any], List[str]]] = {}
    for method in methods:
        if plan["methods"][method].get("tuned"):
            tuning = method_tuning(plan, method)
            searches.setdefault(json.dumps(tuning), (tuning, []))[1].append(method)
    return searches


def search_seeds(tuning: Dict[str, Any]) -> List[int]:
    """The seeds whose mean dev F1 scores a point: ``seeds``, else the single ``seed``."""
    return [int(seed) for seed in tuning.get("seeds", [tuning["seed"]])]


def plan_base(plan: Dict[str, Any], project: Path, default_config: Path, tuning: Optional[Dict[str, Any]] = None) -> Point:
    """Values of the tuned keys in the tuning's base method (``tuning``: the plan's by default):
    its config's, then its overrides."""
    tuning = tuning or plan["tuning"]
    if tuning.get("method") not in plan["methods"]:
        raise SystemExit(f"✘ benchmark plan: tuning.method {tuning.get('method')!r} is not one of its methods "
                         f"({', '.join(plan['methods'])}); add it to `methods` or remove the `tuning` section")
    spec = plan["methods"][tuning["method"]]
    config = project / spec["config"] if "config" in spec else default_config
    point = base_point(tuning, config)
    point.update({key: grid_value(value) for key, value in spec.get("overrides", {}).items() if key in point})
    return point


def point_path(results: Path, pair: str, method: str, rate_name: str, seed: int, point: Point, base: Point) -> Path:
    """Where the run of ``point`` lives: the base method's own run for the base point.

    Keys appended to the grid later are left out of the names of earlier runs: when
    the point's last keys are at their base values, a folder under the shorter name
    (made before those keys joined the grid) holds this point's runs, new seeds included.
    """
    leaf = f"rate{rate_name}-seed{seed}.json"
    if point == base:
        return results / pair / method / leaf
    path = results / pair / "tuning" / point_name(point) / leaf
    keys = list(point)
    while not path.parent.is_dir() and len(keys) > 1 and point[keys[-1]] == base.get(keys[-1]):
        keys.pop()
        shorter = results / pair / "tuning" / point_name({k: point[k] for k in keys}) / leaf
        if shorter.parent.is_dir():
            return shorter
    return path


def search(results: Path, pair: str, rate_name: str, tuning: Dict[str, Any], base: Point) -> Tuple[List[Tuple[Point, int]], Optional[Point], List[Dict[str, Any]]]:
    """Replay the coordinate search over the runs found.

    Returns (the (point, seed) runs still to do before the search can go on, the dev-best
    point or None while unfinished, the trace: one {key, value, point, dev_f, dev_fs, seeds,
    chosen, machine} row per point tried, ``dev_f`` the mean over the seeds of ``dev_fs``).
    """
    method, seeds = tuning["method"], search_seeds(tuning)
    current, trace = dict(base), []
    for key, values in tuning["grid"].items():
        scores: Dict[Any, List[float]] = {}
        machine: Dict[Any, Dict[str, Any]] = {}
        missing = []
        for value in values:
            point = {**current, key: grid_value(value)}
            records = []
            for seed in seeds:
                path = point_path(results, pair, method, rate_name, seed, point, base)
                if path.exists():
                    records.append(srsly.read_json(path))
                else:
                    missing.append((point, seed))
            if len(records) == len(seeds):
                scores[grid_value(value)] = [record["dev"]["ents_f"] for record in records]
                machine[grid_value(value)] = records[0].get("machine") or {}
        if missing:
            return missing, None, trace
        mean = {value: statistics.mean(fs) for value, fs in scores.items()}
        best = max(mean, key=lambda v: (mean[v], v == current[key]))
        trace += [{"key": key, "value": v, "point": point_name({**current, key: v}), "dev_f": mean[v], "dev_fs": scores[v],
                   "seeds": seeds, "chosen": v == best, "machine": machine[v]} for v in scores]
        current[key] = best
    return [], current, trace


def method_best(plan: Dict[str, Any], method: str, results: Path, pair: str, rate_name: str, project: Path,
                default_config: Path) -> Tuple[Optional[Point], Point]:
    """(the dev-best point of tuned ``method``'s search on (pair, rate), None while unfinished; its base point)."""
    tuning = method_tuning(plan, method)
    base = plan_base(plan, project, default_config, tuning)
    return search(results, pair, rate_name, tuning, base)[1], base
