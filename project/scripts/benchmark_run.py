"""Run the accuracy benchmark of benchmark.yml: every (pair, method, rate, seed), resumably.

Usage (from project/):
    python scripts/benchmark_run.py [--data-dir ../../shared/data] [--pairs P,..] [--methods M,..]
        [--seeds 0,1,2] [--rates 0.1,..] [--max-steps N] [--jobs N] [--gpu-id 0]
        [--prepare-only] [--dry-run] [--keep-models]

Each run writes ``benchmarks/results/<pair>/<method>/rate<rate>-seed<seed>.json``
(dev and test P/R/F overall and per type, steps, epochs, wall time, the exact
commands and the config's sha256) and is skipped when that file exists: stop it
any time and start it again. Work files (converted corpora, models) go to
``benchmarks/work/`` and models are deleted after scoring unless --keep-models.
Run it unattended with e.g. ``nohup python scripts/benchmark_run.py ... > bench.log &``.
``--jobs N`` trains N runs at once (each gets cores/N torch threads); with
``--gpu-id`` the La-DTL/BiLSTM runs train on that GPU (spaCy's ``ner`` runs too).
A method with ``tuned: true`` (``ladtl_tuned``) first runs the plan's dev-set
coordinate search over α, β, ε (``tuning``, see scripts/bench_tuning.py), resumably
too, then trains the dev-best point with every seed; its own ``tuning`` keys (e.g.
``seeds: [0, 1, 2]`` for ``ladtl_tuned_mean``: points scored by their mean dev F1) replace the plan's.
A method with ``pretrain`` settings first runs ``spacy pretrain`` on its training text (once per
text, config and settings: cached in ``benchmarks/work/<pair>/pretrain/``) and trains from it;
``pretrain: {unlabelled: [FILE, ..]}`` adds raw text files (one text per line, under --data-dir) to that text.
A pair's ``extra_sources: [CORPUS, ..]`` (catalog entries) adds each as one more source domain (all
its splits, less any target dev/test sentence) to the La-DTL runs, with its own CRF head, and to
spaCy's source+target runs; the target keeps half of every La-DTL batch, the sources share the rest.
"""
import argparse
import hashlib
import os
import threading
import importlib.util
import json
import platform
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import spacy
import srsly
import torch
from spacy.training import Corpus

from spacy_ladtl.cli.evaluate import evaluate_domain
from spacy_ladtl.sampling import subsample, write_docs

PROJECT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("prepare_pair", PROJECT / "scripts" / "prepare_pair.py")
prepare_pair = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prepare_pair)
sys.path.insert(0, str(PROJECT / "scripts"))
import bench_tuning  # noqa: E402

LADTL_CONFIG = bench_tuning.DEFAULT_CONFIG


def as_list(text: Optional[str], cast=str) -> Optional[List[Any]]:
    """"a,b" -> [a, b]; None or "all" -> None (everything in the plan)."""
    return None if text in (None, "all") else [cast(item) for item in text.split(",") if item]


def rate_name(rate: float) -> str:
    return f"{rate:g}"


def subsample_path(corpus: Path, rate: float) -> Path:
    """The target training subsample of ``rate`` in a pair's prepared corpus folder."""
    return corpus / f"target_train_r{rate_name(rate)}.spacy"


def subsampled_rates(corpus: Path) -> List[str]:
    """The rates whose target training subsample ``corpus`` holds, as named in their files."""
    return sorted(path.stem[len("target_train_r"):] for path in corpus.glob("target_train_r*.spacy"))


def result_path(results: Path, pair: str, method: str, rate: float, seed: int) -> Path:
    return results / pair / method / f"rate{rate_name(rate)}-seed{seed}.json"


#: Environment of the training subprocesses (set by main: torch threads per job).
CHILD_ENV: Dict[str, str] = dict(os.environ)
#: Scoring loads models in this process: one at a time when runs go in parallel.
SCORING_LOCK = threading.Lock()


def run_logged(command: List[str], log_path: Path) -> float:
    """Run ``command``, teeing nothing but writing its output to ``log_path``; return wall seconds."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT, env=CHILD_ENV)
    if result.returncode != 0:
        tail = log_path.read_text(encoding="utf-8")[-3000:]
        raise RuntimeError(f"command failed ({result.returncode}), log {log_path}:\n{tail}")
    return time.time() - start


def training_table(log_path: Path) -> List[Dict[str, Any]]:
    """The rows of spaCy's training table in ``log_path``: epoch, step, the loss columns
    and ``dev_f``, the dev F1 (%) that chose the checkpoint (ENTS_TARGET_F, or ENTS_F for spaCy's ``ner``)."""
    header: List[str] = []
    rows: List[Dict[str, Any]] = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        cells = line.split()
        if cells[:2] == ["E", "#"]:
            header = re.split(r"\s{2,}", line.strip())
        elif header and len(cells) == len(header) and re.fullmatch(r"\d+", cells[0]) and re.fullmatch(r"\d+", cells[1]):
            named = dict(zip(header, cells))
            score_col = "ENTS_TARGET_F" if "ENTS_TARGET_F" in named else "ENTS_F"
            rows.append({"epoch": int(cells[0]), "step": int(cells[1]),
                         "dev_f": _number(named.get(score_col)),
                         "losses": {col: _number(value) for col, value in named.items() if col.startswith("LOSS ")}})
    return rows


def _number(text: Optional[str]) -> Optional[float]:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def last_epoch_and_step(rows: List[Dict[str, Any]]) -> Dict[str, int]:
    """The last (epoch, step) of a training table."""
    return {"epochs": rows[-1]["epoch"], "steps": rows[-1]["step"]} if rows else {"epochs": 0, "steps": 0}


def train_command(config: Path, output: Path, lang: str, seed: int, budget: Dict[str, Any], overrides: Dict[str, Any]) -> List[str]:
    command = [sys.executable, "-m", "spacy", "train", str(config), "--output", str(output), "--nlp.lang", lang,
               "--system.seed", str(seed), "--training.max_steps", str(budget["max_steps"]),
               "--training.eval_frequency", str(budget["eval_frequency"]), "--training.patience", str(budget["patience"])]
    if budget.get("gpu_id", -1) >= 0:
        command += ["--gpu-id", str(budget["gpu_id"])]
    for key, value in overrides.items():
        command += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return command


def extra_sources(plan: Dict[str, Any], pair_name: str, corpus: Path) -> Dict[str, str]:
    """The pair's ``extra_sources`` as {domain: DocBin path} (prepared by ``prepare_corpus``)."""
    names = plan["pairs"][pair_name].get("extra_sources", [])
    return {name: str(prepare_pair.extra_source_path(corpus, name)) for name in names}


def source_shares(sources: List[str], target: str) -> Dict[str, float]:
    """Batch shares with several sources: half of every batch for the target, as with one source."""
    return {**{name: 0.5 / len(sources) for name in sources}, target: 0.5}


def ladtl_overrides(domains: Dict[str, str], target: str, dev: str, label_map: Dict[str, str]) -> Dict[str, Any]:
    return {
        "components.ladtl_ner.model.domains": list(domains),
        "components.ladtl_ner.target_domain": target,
        "components.ladtl_ner.label_map": label_map,
        "corpora.train.paths": domains,
        "corpora.dev.paths": {target: dev},
    }


def score_ladtl(model: Path, data: Path, domain: str) -> Dict[str, Any]:
    with SCORING_LOCK:
        scores = evaluate_domain(str(model), data, domain)
    return {k: scores[k] for k in ("ents_p", "ents_r", "ents_f", "ents_per_type")}


def score_spacy(model: Path, data: Path) -> Dict[str, Any]:
    with SCORING_LOCK:
        nlp = spacy.load(model)
        scores = nlp.evaluate(list(Corpus(data)(nlp)))
    return {k: scores[k] for k in ("ents_p", "ents_r", "ents_f", "ents_per_type")}


def up_to_date(path: Path, plan: Dict[str, Any], pair_name: str, method: str, rate: float, results: Path) -> bool:
    """Whether the run at ``path`` is done: it exists and, for a tuned method, holds the
    dev search's current point (a grid change can make an old tuned run stale)."""
    if not path.exists():
        return False
    if not plan["methods"][method].get("tuned"):
        return True
    best, base = bench_tuning.method_best(plan, method, results, pair_name, rate_name(rate), PROJECT, LADTL_CONFIG)
    return bench_tuning.holds_point(srsly.read_json(path), best, base)


def seeds_text(tuning: Dict[str, Any]) -> str:
    """" (mean dev of seeds 0, 1, 2)" for a search over several seeds, "" for one."""
    seeds = bench_tuning.search_seeds(tuning)
    return f" (mean dev of seeds {', '.join(map(str, seeds))})" if len(seeds) > 1 else ""


MODEL_OVERRIDE_PREFIX = "components.ladtl_ner.model."
#: One lock per pretraining output folder: parallel runs that share an encoder pretrain it once.
PRETRAIN_LOCKS: Dict[Path, threading.Lock] = {}
PRETRAIN_LOCKS_GUARD = threading.Lock()


def pretrain_command(config: Path, output: Path, lang: str, corpus: Dict[str, Any], settings: Dict[str, Any],
                     encoder: Dict[str, Any]) -> List[str]:
    """``spacy pretrain`` of the config's encoder; ``corpus``: the overrides naming its text (labels unused)."""
    command = [sys.executable, "-m", "spacy", "pretrain", str(config), str(output), "--nlp.lang", lang,
               "--system.seed", str(settings.get("seed", 0))]
    for key, value in corpus.items():
        command += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    command += ["--pretraining.max_epochs", str(settings.get("max_epochs", 10))]
    for key, value in encoder.items():
        command += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
    return command


def output_lock(output: Path) -> threading.Lock:
    """The lock of one cached pretraining output: parallel runs that need it make it once."""
    with PRETRAIN_LOCKS_GUARD:
        return PRETRAIN_LOCKS.setdefault(output, threading.Lock())


def pretrained_encoder(config: Path, work: Path, name: str, lang: str, corpus: Dict[str, Any],
                       settings: Dict[str, Any], encoder: Dict[str, Any]) -> Tuple[Path, List[str], float]:
    """The weights of ``spacy pretrain`` on ``corpus``' text, trained once and cached under
    ``work/pretrain/<name>-<key>`` (shared by the methods and seeds with the same config, text,
    settings and encoder); return (weights, command, wall seconds spent here: 0 when cached)."""
    command = pretrain_command(config, Path("OUT"), lang, corpus, settings, encoder)
    key = hashlib.sha256(json.dumps([str(config), command[6:]], sort_keys=True).encode("utf-8")).hexdigest()[:10]
    output = work / "pretrain" / f"{name}-{key}"
    command[command.index("OUT")] = str(output)
    weights, log = output / "model-last.bin", output.parent / f"{output.name}.log"
    with output_lock(output):
        if weights.exists():
            return weights, command, 0.0
        shutil.rmtree(output, ignore_errors=True)
        output.mkdir(parents=True)
        wall = run_logged(command, log)
        if not weights.exists():
            raise RuntimeError(f"spacy pretrain wrote no {weights}; log {log}")
        return weights, command, wall


#: ``pretrain: {text: ..}``: which training texts of the pair ``spacy pretrain`` reads.
PRETRAIN_TEXTS = {"target": ("target",), "source+target": ("source", "target")}


def pretrain_roles(method_name: str, text: str) -> Tuple[str, ...]:
    """The pair's roles (source, target) whose training text a method's pretraining reads."""
    if text not in PRETRAIN_TEXTS:
        raise ValueError(f"benchmark.yml: method {method_name}: pretrain text must be target or source+target, not {text!r}")
    return PRETRAIN_TEXTS[text]


def unlabelled_paths(data_dir: str, settings: Dict[str, Any]) -> List[Path]:
    """The raw text files of a method's ``pretrain: {unlabelled: [..]}``, resolved under ``data_dir``."""
    return [Path(data_dir) / name for name in settings.get("unlabelled", [])]


def unlabelled_docbin(work: Path, files: List[Path], lang: str) -> Path:
    """``files``' lines (one text each; blank and repeated lines dropped), tokenized once with
    ``spacy.blank(lang)`` into ``work/pretrain/unlabelled-<key>.spacy``: text for ``spacy pretrain``."""
    key = hashlib.sha256(json.dumps([lang] + [str(f.resolve()) for f in files]).encode("utf-8")).hexdigest()[:10]
    output = work / "pretrain" / f"unlabelled-{key}.spacy"
    with output_lock(output):
        if not output.exists():
            texts = dict.fromkeys(line.strip() for f in files for line in f.read_text(encoding="utf-8").splitlines())
            texts.pop("", None)
            nlp = spacy.blank(lang)
            write_docs(output, list(nlp.pipe(texts)))
    return output


def run_one(plan: Dict[str, Any], pair_name: str, method_name: str, rate: float, seed: int, corpus: Path,
            work: Path, budget: Dict[str, Any], extra: Optional[Dict[str, Any]] = None,
            tag: str = "", *, data_dir: str) -> Tuple[Dict[str, Any], Path]:
    """Train and score one run (``extra``: config overrides on top of the method's); return its record and work dir."""
    pair, method = plan["pairs"][pair_name], plan["methods"][method_name]
    source, target, lang = pair["source"], pair["target"], pair.get("lang", "en")
    label_map = pair.get("label_map", {})
    target_train = str(subsample_path(corpus, rate))
    source_train, source_dev = str(corpus / "source_train.spacy"), str(corpus / "source_dev.spacy")
    dev, test = corpus / "target_dev.spacy", corpus / "target_test.spacy"
    train_texts = {"source": (source, source_train), "target": (target, target_train)}  # role -> (domain, DocBin)
    extras = extra_sources(plan, pair_name, corpus)
    out = work / "runs" / f"{method_name}{tag}-rate{rate_name(rate)}-seed{seed}"
    shutil.rmtree(out, ignore_errors=True)
    commands, wall = [], 0.0
    kind = method["kind"]
    method_overrides = {**method.get("overrides", {}), **(extra or {})}
    if kind in ("ladtl", "target", "retrain"):
        config = PROJECT / method["config"] if "config" in method else LADTL_CONFIG
        if kind == "ladtl":
            overrides = ladtl_overrides({source: source_train, **extras, target: target_train}, target, str(dev), label_map)
            if extras:
                overrides["training.batcher.shares"] = source_shares([source, *extras], target)
            overrides.update(method_overrides)
        else:
            overrides = {**ladtl_overrides({target: target_train}, target, str(dev), {}), **method_overrides}
        if "pretrain" in method:  # spacy pretrain on the text this run trains on, then train from those weights
            if kind == "retrain":
                raise ValueError(f"benchmark.yml: method {method_name}: `pretrain` is not supported for kind retrain")
            encoder = {k: v for k, v in method_overrides.items() if k.startswith(MODEL_OVERRIDE_PREFIX)}
            settings = method["pretrain"] or {}
            # text: the run's training text (default), "target" or "source+target"; plus any unlabelled files
            text = settings.get("text")
            domains = (overrides["corpora.train.paths"] if text is None
                       else dict(train_texts[role] for role in pretrain_roles(method_name, text)))
            files = unlabelled_paths(data_dir, settings)
            if files:
                domains = {**domains, "unlabelled": str(unlabelled_docbin(work, files, lang))}
            weights, pre_cmd, pre_wall = pretrained_encoder(
                config, work, f"{'+'.join(domains)}-rate{rate_name(rate)}", lang,
                {"corpora.pretrain.paths": domains, "corpora.pretrain.sample_rate": 1.0}, settings, encoder)
            overrides["paths.init_tok2vec"] = str(weights)
            commands.append(pre_cmd)
            wall += pre_wall
        if kind == "retrain":
            pre = out / "source_only"
            # the target phase loads this encoder, so the method's model overrides (e.g. another embedding) shape both
            encoder = {k: v for k, v in method_overrides.items() if k.startswith(MODEL_OVERRIDE_PREFIX)}
            pre_cmd = train_command(LADTL_CONFIG, pre, lang, seed, budget,
                                    {**ladtl_overrides({source: source_train}, source, source_dev, {}), **encoder})
            wall += run_logged(pre_cmd, out / "source_only.log")
            commands.append(pre_cmd)
            overrides["initialize.after_init"] = {"@callbacks": "spacy-ladtl.init_encoder_from.v1", "path": str(pre / "model-best")}
        cmd = train_command(config, out, lang, seed, budget, overrides)
        wall += run_logged(cmd, out / "train.log")
        commands.append(cmd)
        dev_scores, test_scores = score_ladtl(out / "model-best", dev, target), score_ladtl(out / "model-best", test, target)
    elif kind == "spacy":
        if method["data"] == "target":
            train_path = target_train
        else:  # spaCy's Corpus reads every .spacy file of a directory
            concat = out / "train"
            concat.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source_train, concat / "source.spacy")
            shutil.copyfile(target_train, concat / "target.spacy")
            for name, path in extras.items():
                shutil.copyfile(path, concat / f"extra_{name}.spacy")
            train_path = str(concat)
        spacy_overrides = {"paths.train": train_path, "paths.dev": str(dev), **method_overrides}
        if "pretrain" in method:  # spacy pretrain of its tok2vec, as for La-DTL
            settings = method["pretrain"] or {}
            # text: the training text (default), or "source+target" (e.g. for a target-only run)
            text = settings.get("text", method["data"])
            roles = pretrain_roles(method_name, text)
            files = unlabelled_paths(data_dir, settings)
            if text == method["data"] and not files:
                text_path = train_path
            else:  # a folder of the DocBins to read (spaCy's Corpus reads every .spacy file in it)
                parts = {f"{role}.spacy": train_texts[role][1] for role in roles}
                if files:
                    unlabelled = unlabelled_docbin(work, files, lang)
                    parts["unlabelled.spacy"] = str(unlabelled)
                    text += f"+{unlabelled.stem}"
                text_path = str(work / "pretrain" / f"text-{text}-rate{rate_name(rate)}")
                with output_lock(Path(text_path)):
                    for name, path in parts.items():
                        if not (Path(text_path) / name).exists():
                            Path(text_path).mkdir(parents=True, exist_ok=True)
                            shutil.copyfile(path, Path(text_path) / name)
            weights, pre_cmd, pre_wall = pretrained_encoder(
                PROJECT / method["config"], work, f"spacy-{text}-rate{rate_name(rate)}", lang,
                {"paths.train": text_path}, settings, {})
            spacy_overrides["paths.init_tok2vec"] = str(weights)
            commands.append(pre_cmd)
            wall += pre_wall
        cmd = train_command(PROJECT / method["config"], out, lang, seed, budget, spacy_overrides)
        wall += run_logged(cmd, out / "train.log")
        commands.append(cmd)
        dev_scores, test_scores = score_spacy(out / "model-best", dev), score_spacy(out / "model-best", test)
    else:
        raise ValueError(f"benchmark.yml: method {method_name} has unknown kind {kind!r}")
    config_text = (out / "model-best" / "config.cfg").read_text(encoding="utf-8")
    curve = training_table(out / "train.log")
    return {
        "pair": pair_name, "source": source, "target": target, "method": method_name, "kind": kind,
        **({"extra_sources": list(extras)} if extras else {}),
        "rate": rate, "seed": seed, "subsample_seed": budget["subsample_seed"],
        "overrides": method_overrides,
        "dev": dev_scores, "test": test_scores, **last_epoch_and_step(curve),
        # the dev F1 at every evaluation (and the losses logged with it): what the checkpoint was chosen from
        "dev_curve": curve,
        "budget": {k: budget[k] for k in ("max_steps", "eval_frequency", "patience")},
        "gpu_id": budget.get("gpu_id", -1),
        "wall_seconds": round(wall, 1),
        "commands": [" ".join(c) for c in commands],
        "config_sha256": hashlib.sha256(config_text.encode("utf-8")).hexdigest(),
        "machine": {"platform": platform.platform(), "torch_threads": int(CHILD_ENV.get("OMP_NUM_THREADS", torch.get_num_threads())),
                    "python": platform.python_version(), "cpus": os.cpu_count(),
                    "gpu": torch.cuda.get_device_name(budget["gpu_id"]) if budget.get("gpu_id", -1) >= 0 else None},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }, out


def prepare_corpus(plan: Dict[str, Any], pair_name: str, catalog: Path, data_dir: str, work: Path, rates: List[float], budget: Dict[str, Any]) -> Path:
    corpus = work / "corpus"
    if not (corpus / "pair.json").exists():
        pair = plan["pairs"][pair_name]
        prepare_pair.prepare(catalog, data_dir, pair["source"], pair["target"], corpus)
    pair = plan["pairs"][pair_name]
    names = pair.get("extra_sources", [])
    clash = [n for n in names if n in (pair["source"], pair["target"])]
    if clash:
        sys.exit(f"✘ pair {pair_name!r}: extra_sources {clash} repeat the pair's source or target")
    missing = [n for n in names if not prepare_pair.extra_source_path(corpus, n).exists()]
    if missing:
        counts_path = corpus / "extra_sources.json"
        earlier = srsly.read_json(counts_path) if counts_path.exists() else {}
        srsly.write_json(counts_path, {**earlier, **prepare_pair.prepare_extra_sources(catalog, data_dir, missing, corpus)})
    for rate in rates:
        out = subsample_path(corpus, rate)
        if not out.exists():
            docs, manifest = subsample(corpus / "target_train_full.spacy", rate, budget["subsample_seed"])
            write_docs(out, docs)
            srsly.write_json(out.with_suffix(".manifest.json"), manifest)
    return corpus


def planned_runs(plan: Dict[str, Any], pair_name: str, methods: List[str], plan_path: Path) -> List[Tuple[float, str]]:
    """(rate, method) of a pair: every method at the pair's rates, plus the curve's rates and
    the pair's ``extra_rates`` (e.g. a published 100% setting) for the methods they name."""
    pair = plan["pairs"][pair_name]
    planned = [(rate, method) for rate in pair.get("rates", plan["rates"]) for method in methods]
    extras = [pair.get("extra_rates", {})]
    if pair_name == plan.get("curve", {}).get("pair"):
        extras.append(plan["curve"])
    for extra in extras:
        for name in extra.get("methods", []):
            if name not in plan["methods"]:
                sys.exit(f"✘ {plan_path}: pair {pair_name!r} names method {name!r} for extra rates, but `methods` has no such entry")
        planned += [(rate, m) for rate in extra.get("rates", []) for m in methods if m in extra.get("methods", [])]
    return planned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", type=Path, default=PROJECT / "benchmark.yml")
    parser.add_argument("--catalog", type=Path, default=PROJECT / "corpora.yml")
    parser.add_argument("--data-dir", default="../../shared/data")
    parser.add_argument("--results", type=Path, help="default: benchmarks/results (benchmarks/results-steps<N> with --max-steps)")
    parser.add_argument("--work", type=Path, default=PROJECT / "benchmarks" / "work")
    parser.add_argument("--pairs"), parser.add_argument("--methods"), parser.add_argument("--seeds"), parser.add_argument("--rates")
    parser.add_argument("--max-steps", type=int, help="override the plan's budget (results go to their own folder)")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once (default 1)")
    parser.add_argument("--gpu-id", type=int, default=-1, help="train on this GPU (default -1: CPU)")
    parser.add_argument("--prepare-only", action="store_true", help="convert and subsample the corpora, train nothing")
    parser.add_argument("--dry-run", action="store_true", help="list the runs still to do and stop")
    parser.add_argument("--keep-models", action="store_true")
    args = parser.parse_args()
    plan = srsly.read_yaml(args.plan)
    budget = dict(plan["budget"])
    if args.max_steps:
        budget["max_steps"] = args.max_steps
    budget["gpu_id"] = args.gpu_id
    if args.jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        CHILD_ENV["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // args.jobs))
    CHILD_ENV.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning threads starve parallel jobs
    if args.results is None:
        suffix = f"-steps{args.max_steps}" if args.max_steps else ""
        args.results = PROJECT / "benchmarks" / f"results{suffix}"
    pairs = as_list(args.pairs) or list(plan["pairs"])
    # "optional" methods (e.g. the transformer, slow on a CPU) run only when named
    methods = as_list(args.methods) or [m for m, spec in plan["methods"].items() if not spec.get("optional")]
    seeds = as_list(args.seeds, int) or plan["seeds"]
    for name in pairs + methods:
        if name not in plan["pairs"] and name not in plan["methods"]:
            sys.exit(f"✘ {args.plan}: no pair or method named {name!r}")
    todo, wanted = [], []
    for pair_name in pairs:
        planned = planned_runs(plan, pair_name, methods, args.plan)
        # seed-major order: a partial benchmark still covers every method once
        for seed in seeds:
            for rate, method in planned:
                if args.rates and rate not in as_list(args.rates, float):
                    continue
                wanted.append((pair_name, method, rate, seed))
                if not up_to_date(result_path(args.results, pair_name, method, rate, seed), plan, pair_name, method, rate, args.results):
                    todo.append((pair_name, method, rate, seed))
    for pair_name, method, _, _ in todo:
        if plan["pairs"][pair_name].get("extra_sources") and plan["methods"][method]["kind"] == "retrain":
            sys.exit(f"✘ {args.plan}: pair {pair_name!r} has extra_sources, which method {method!r} (kind retrain) "
                     f"does not support: leave it out with --methods")
    print(f"{len(todo)} run(s) to do; results in {args.results}", flush=True)
    for i, (pair_name, method, rate, seed) in enumerate(todo, start=1):
        print(f"[{i}/{len(todo)}] {pair_name} {method} rate={rate_name(rate)} seed={seed}", flush=True)
    # methods with `tuned: true` need the dev-set search of their (pair, rate) first; methods
    # with the same search (the plan's `tuning` and their own keys) share it
    if any(plan["methods"][m].get("tuned") for _, m, _, _ in todo) and "tuning" not in plan:
        sys.exit(f"✘ {args.plan}: a method has `tuned: true` but the plan has no `tuning` section")
    searches = bench_tuning.tuned_searches(plan, list(dict.fromkeys(m for _, m, _, _ in todo)))
    search_key = {m: key for key, (_, methods) in searches.items() for m in methods}
    to_tune = list(dict.fromkeys((p, r, search_key[m]) for p, m, r, _ in todo if m in search_key))
    tunings = {key: tuning for key, (tuning, _) in searches.items()}
    bases = {key: bench_tuning.plan_base(plan, PROJECT, LADTL_CONFIG, tuning) for key, tuning in tunings.items()}
    for pair_name, rate, key in to_tune:
        missing, best, _ = bench_tuning.search(args.results, pair_name, rate_name(rate), tunings[key], bases[key])
        state = f"dev-best point {bench_tuning.point_name(best)}" if best else f"{len(missing)} run(s) of its points to do next"
        print(f"tuning {pair_name} rate={rate_name(rate)}{seeds_text(tunings[key])}: {state}", flush=True)
    for method in dict.fromkeys(m for _, m, _, _ in todo):  # a missing text file stops everything before training
        for path in unlabelled_paths(args.data_dir, plan["methods"][method].get("pretrain") or {}):
            if not path.is_file():
                sys.exit(f"✘ {args.plan}: method {method!r}: pretrain.unlabelled file {path} not found "
                         f"(names are relative to --data-dir {args.data_dir})")
    if args.dry_run:
        return
    corpora = {}
    # --prepare-only makes every planned corpus, also those whose runs are all done
    to_prepare = wanted if args.prepare_only else todo
    for pair_name in dict.fromkeys(p for p, _, _, _ in to_prepare):
        rates = sorted({r for p, _, r, _ in to_prepare if p == pair_name})
        corpora[pair_name] = prepare_corpus(plan, pair_name, args.catalog, args.data_dir, args.work / pair_name, rates, budget)
    if args.prepare_only:
        return

    def execute(label: str, pair_name: str, method: str, rate: float, seed: int, path: Path,
                extra: Optional[Dict[str, Any]] = None, tag: str = "", annotate: Optional[Dict[str, Any]] = None) -> bool:
        """Train, score and save one run; False (and a message) when it failed."""
        start = time.time()
        try:
            record, out = run_one(plan, pair_name, method, rate, seed, corpora[pair_name], args.work / pair_name, budget, extra, tag,
                                  data_dir=args.data_dir)
        except RuntimeError as err:
            print(f"✘ {label} failed: {err}", flush=True)
            return False
        record.update(annotate or {})
        path.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path, record)
        if not args.keep_models:
            shutil.rmtree(out, ignore_errors=True)
        print(f"✔ {label}: dev F {100 * record['dev']['ents_f']:.2f}, test F {100 * record['test']['ents_f']:.2f} "
              f"({time.time() - start:.0f} s) -> {path}", flush=True)
        return True

    def tune(pool: ThreadPoolExecutor, pair_name: str, rate: float, key: str) -> Optional[Tuple[Dict[str, float], List[Dict[str, Any]]]]:
        """Run the coordinate search ``key`` of (pair, rate) to its end; (dev-best point, trace) or None on a failure."""
        tuning, base = tunings[key], bases[key]
        label = f"tuning {pair_name} rate={rate_name(rate)}{seeds_text(tuning)}"
        while True:
            missing, best, trace = bench_tuning.search(args.results, pair_name, rate_name(rate), tuning, base)
            if best is not None:
                print(f"✔ {label}: dev-best point {bench_tuning.point_name(best)}", flush=True)
                return best, trace

            def run_point(point_seed: Tuple[Dict[str, float], int]) -> bool:
                point, seed = point_seed
                name = bench_tuning.point_name(point)
                path = bench_tuning.point_path(args.results, pair_name, tuning["method"], rate_name(rate), seed, point, base)
                if point == base:  # the base method's own run
                    return execute(f"tuning {pair_name} {name} seed={seed} (= {tuning['method']})", pair_name, tuning["method"], rate, seed, path)
                return execute(f"tuning {pair_name} {name} seed={seed}", pair_name, tuning["method"], rate, seed, path,
                               extra=point, tag=f"-{name}", annotate={"tuning_point": point})

            print(f"{label}: {len(missing)} run(s) of its points", flush=True)
            if not all(list(pool.map(run_point, missing))):
                print(f"✘ {label} stopped: a point failed", flush=True)
                return None

    def do_run(item: Tuple[int, Tuple[str, str, float, int]]) -> bool:
        i, (pair_name, method, rate, seed) = item
        label = f"[{i}/{len(todo)}] {pair_name} {method} rate={rate_name(rate)} seed={seed}"
        path = result_path(args.results, pair_name, method, rate, seed)
        if not plan["methods"][method].get("tuned"):
            if path.exists():  # missing when listed, then trained by this call's dev search as its base point
                print(f"✔ {label}: trained by the dev search as its base point", flush=True)
                return True
            return execute(label, pair_name, method, rate, seed, path)
        key = search_key[method]
        if tuned.get((pair_name, rate, key)) is None:
            print(f"✘ {label} skipped: its dev tuning did not finish", flush=True)
            return False
        best, trace = tuned[(pair_name, rate, key)]
        tuning, base = tunings[key], bases[key]
        if path.exists() and bench_tuning.holds_point(srsly.read_json(path), best, base):
            print(f"✔ {label}: up to date with the dev search", flush=True)
            return True
        seeds = bench_tuning.search_seeds(tuning)
        annotate = {"tuned": {"point": best, **({"seed": seeds[0]} if len(seeds) == 1 else {"seeds": seeds}), "trace": trace}}
        # same config and seed as a run on disk (the base method's, or the search's own run of the point): reuse it
        same = bench_tuning.point_path(args.results, pair_name, tuning["method"], rate_name(rate), seed, best, base)
        if same.exists():
            what = f"the {tuning['method']} run" if best == base else "the dev search's run of this point"
            record = {**srsly.read_json(same), "method": method, **annotate, "note": f"same config and seed as {what}: reused"}
            path.parent.mkdir(parents=True, exist_ok=True)
            srsly.write_json(path, record)
            print(f"✔ {label}: reused {same} (same config and seed)", flush=True)
            return True
        inherited = plan["methods"][tuning["method"]].get("overrides", {})  # the searched method's other settings
        return execute(label, pair_name, method, rate, seed, path, extra={**inherited, **best}, annotate=annotate)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool, \
            ThreadPoolExecutor(max_workers=max(1, len(to_tune))) as searches:  # the pairs' searches share the jobs
        futures = {key: searches.submit(tune, pool, *key) for key in to_tune}
        tuned = {key: future.result() for key, future in futures.items()}
        list(pool.map(do_run, enumerate(todo, start=1)))


if __name__ == "__main__":
    main()
