"""The accuracy benchmark harness: one JSON per run, resumable, compare -> Markdown table."""
from pathlib import Path

import pytest
import spacy
import srsly
from spacy.tokens import DocBin

from project_scripts import PROJECT, load_script, run_script


@pytest.mark.slow
def test_benchmark_runs_resumes_and_compares(tmp_path):
    results, work = tmp_path / "results", tmp_path / "work"
    common = ["--data-dir", "sample", "--pairs", "bionlp13pc-bionlp13cg", "--seeds", "0", "--rates", "0.1",
              "--results", str(results), "--work", str(work)]
    methods = ["--methods", "non_transfer,retrain,ladtl,spacy_eff_concat"]
    first = run_script("scripts/benchmark_run.py", *common, *methods, "--max-steps", "10", "--jobs", "2")
    assert "4 run(s) to do" in first.stdout
    for method in ("non_transfer", "retrain", "ladtl", "spacy_eff_concat"):
        record = srsly.read_json(results / "bionlp13pc-bionlp13cg" / method / "rate0.1-seed0.json")
        assert record["method"] == method and record["rate"] == 0.1 and record["seed"] == 0
        assert set(record["test"]) >= {"ents_p", "ents_r", "ents_f", "ents_per_type"} and "ents_f" in record["dev"]
        assert record["commands"] and len(record["config_sha256"]) == 64 and record["budget"]["max_steps"] == 10
        assert record["dev_curve"][0]["step"] == 0 and record["dev_curve"][0]["dev_f"] is not None
    retrain = srsly.read_json(results / "bionlp13pc-bionlp13cg" / "retrain" / "rate0.1-seed0.json")
    assert len(retrain["commands"]) == 2 and "init_encoder_from" in retrain["commands"][1]
    assert not (work / "bionlp13pc-bionlp13cg" / "runs" / "ladtl-rate0.1-seed0").exists()  # models removed
    # resumable: finished runs are skipped
    second = run_script("scripts/benchmark_run.py", *common, *methods, "--max-steps", "10")
    assert "0 run(s) to do" in second.stdout
    table = tmp_path / "RESULTS.md"
    run_script("scripts/benchmark_compare.py", "--results", str(results), "--output", str(table), "--plot", str(tmp_path / "c.png"))
    text = table.read_text(encoding="utf-8")
    assert "| bionlp13pc-bionlp13cg | 10% |" in text and "**" in text and "Jia & Zhang 2020" in text
    assert "- bionlp13pc-bionlp13cg, trained on CPU" in text


def test_benchmark_plan_skips_optional_methods_unless_named(tmp_path):
    """The transformer methods are optional: `all` leaves them out, naming one plans it."""
    common = ["--data-dir", "sample", "--pairs", "bionlp13pc-bionlp13cg", "--seeds", "0", "--rates", "0.1",
              "--results", str(tmp_path / "results"), "--work", str(tmp_path / "work"), "--dry-run"]
    default = run_script("scripts/benchmark_run.py", *common).stdout
    assert "ladtl_trf" not in default and " ladtl rate=0.1" in default and "spacy_acc_concat" in default
    assert "_trf" not in default
    trf_methods = ["ladtl_trf", "spacy_trf_target", "joint_trf", "non_transfer_trf"]
    named = run_script("scripts/benchmark_run.py", *common, "--methods", ",".join(trf_methods)).stdout
    assert "4 run(s) to do" in named
    assert all(f" {method} rate=0.1 seed=0" in named for method in trf_methods)


def test_extra_rates_and_curve_plan_only_their_methods():
    """A pair's `extra_rates` and the curve add rates for the methods they name, no others."""
    benchmark_run = load_script("benchmark_run")
    plan = {"rates": [0.1], "methods": {"joint": {}, "ladtl": {}, "spacy": {}},
            "pairs": {"p": {"extra_rates": {"rates": [1.0], "methods": ["ladtl"]}}, "q": {"rates": [1.0]}},
            "curve": {"pair": "q", "rates": [0.5], "methods": ["joint", "ladtl"]}}
    methods = ["joint", "ladtl", "spacy"]
    assert benchmark_run.planned_runs(plan, "p", methods, Path("b.yml")) == [
        (0.1, "joint"), (0.1, "ladtl"), (0.1, "spacy"), (1.0, "ladtl")]
    assert benchmark_run.planned_runs(plan, "q", ["spacy", "ladtl"], Path("b.yml")) == [
        (1.0, "spacy"), (1.0, "ladtl"), (0.5, "ladtl")]
    plan["pairs"]["p"]["extra_rates"]["methods"] = ["ladtl_typo"]
    with pytest.raises(SystemExit, match="b.yml: pair 'p' names method 'ladtl_typo'"):
        benchmark_run.planned_runs(plan, "p", methods, Path("b.yml"))


def write_record(results: Path, method: str, seed: int, f: float, **extra) -> None:
    record = {"pair": "bionlp13pc-bionlp13cg", "method": method, "rate": 0.1, "seed": seed,
              "dev": {"ents_f": f}, "test": {"ents_f": f}, "wall_seconds": 10.0,
              "budget": {"max_steps": 10, "eval_frequency": 5, "patience": 5},
              "machine": {"platform": "x", "torch_threads": 2, "cpus": 2, "gpu": None}, **extra}
    path = results / "bionlp13pc-bionlp13cg" / method / f"rate0.1-seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_json(path, record)


def test_compare_ranks_only_planned_methods_and_lists_notes(tmp_path):
    """An optional method (another encoder) or one with fewer seeds is shown but never bold; notes and machines are listed."""
    results = tmp_path / "results"
    for seed, f in enumerate([0.60, 0.62]):
        write_record(results, "ladtl", seed, f)
        write_record(results, "joint", seed, f - 0.05, note="same note for both seeds")
    write_record(results, "retrain", 0, 0.70)  # one seed where the others have two: not ranked
    write_record(results, "ladtl_trf", 0, 0.80, note="cut short at step 1600",
                 machine={"platform": "y", "torch_threads": 16, "cpus": 16, "gpu": "Some GPU"})
    table = tmp_path / "RESULTS.md"
    run_script("scripts/benchmark_compare.py", "--results", str(results), "--output", str(table), "--plot", str(tmp_path / "c.png"))
    text = table.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| bionlp13pc-bionlp13cg"))
    assert "**61.00 ± 1.41**" in row and "| 80.00 (n=1) |" in row and "**80.00" not in row and "| 70.00 (n=1) |" in row
    assert "- bionlp13pc-bionlp13cg joint rate 0.1 seeds 0, 1: same note for both seeds." in text
    assert "cut short at step 1600" in text and "trained on Some GPU (GPU): ladtl_trf" in text and "trained on CPU (2 cores, 2 torch threads): joint, ladtl" in text
    # paired by seed: ladtl - joint is +5 on both seeds
    assert "| pair | target rate | ladtl − joint |" in text
    assert "| bionlp13pc-bionlp13cg | 10% | +5.00 ± 0.00 (2/2) |" in text


def test_notes_count_only_the_runs_the_table_shows(tmp_path):
    """Runs of a method the plan does not list (another probe's, in a folder compared) are not counted or named."""
    benchmark_compare = load_script("benchmark_compare")
    write_record(tmp_path, "ladtl", 0, 0.5, wall_seconds=3600.0)
    write_record(tmp_path, "other", 0, 0.5, wall_seconds=7200.0)
    plan = {"seeds": [0], "budget": {"subsample_seed": 0}, "pairs": {"bionlp13pc-bionlp13cg": {}}, "methods": {"ladtl": {}}}
    text = benchmark_compare.notes(benchmark_compare.load_results(tmp_path), plan, [])
    assert "- 1 run, 1.0 h of training wall time in all." in text
    assert ": ladtl." in text and "other" not in text


def test_compare_bolds_nothing_when_no_method_is_ranked():
    """A row whose methods are all optional (not ranked) has no bold cell, rather than all of them."""
    benchmark_compare = load_script("benchmark_compare")
    record = {"test": {"ents_f": 0.5}, "seed": 0}
    plan = {"seeds": [0], "pairs": {"p": {}}, "methods": {"a": {"optional": True}, "b": {"optional": True}}}
    text = benchmark_compare.markdown_table({("p", 0.1): {"a": [record], "b": [record]}}, plan)
    assert "| p | 10% | 50.00 | 50.00 |" in text and "**" not in text


LADTL_LOG = """\x1b[38;5;4mℹ Initial learn rate: 0.002\x1b[0m
E    #       LOSS LADTL_NER  LOSS CRF   LOSS MMD   LOSS CRF_L2  ENTS_TARGET_F  ENTS_TARGET_P  ENTS_TARGET_R  ENTS_F  SCORE 
---  ------  --------------  ---------  ---------  -----------  -------------  -------------  -------------  ------  ------
0    0       62.75           62.40      2.66       9.70         1.13           3.66           0.67           1.13    0.01  
3    200     900.10          880.00     15.20      4.90         41.50          45.00          38.50          30.00   0.42  
\x1b[38;5;2m✔ Saved pipeline to output directory\x1b[0m
"""
SPACY_LOG = """E    #       LOSS TOK2VEC  LOSS NER  ENTS_F  ENTS_P  ENTS_R  SCORE 
---  ------  ------------  --------  ------  ------  ------  ------
  0       0          0.00     51.88    0.00    0.00    0.00    0.00
  5     200          0.00   1200.50   37.25   40.00   35.00    0.37
"""


def test_training_table_reads_ladtl_and_spacy_logs(tmp_path):
    """The dev curve of a run: the target dev F1 column of either logger, with the loss columns."""
    benchmark_run = load_script("benchmark_run")
    (tmp_path / "ladtl.log").write_text(LADTL_LOG, encoding="utf-8")
    (tmp_path / "spacy.log").write_text(SPACY_LOG, encoding="utf-8")
    ladtl = benchmark_run.training_table(tmp_path / "ladtl.log")
    assert [(r["epoch"], r["step"], r["dev_f"]) for r in ladtl] == [(0, 0, 1.13), (3, 200, 41.5)]  # not ENTS_F
    assert ladtl[1]["losses"] == {"LOSS LADTL_NER": 900.1, "LOSS CRF": 880.0, "LOSS MMD": 15.2, "LOSS CRF_L2": 4.9}
    spacy_rows = benchmark_run.training_table(tmp_path / "spacy.log")
    assert [(r["step"], r["dev_f"]) for r in spacy_rows] == [(0, 0.0), (200, 37.25)]
    assert benchmark_run.last_epoch_and_step(spacy_rows) == {"epochs": 5, "steps": 200}
    assert benchmark_run.last_epoch_and_step([]) == {"epochs": 0, "steps": 0}


def test_dev_curves_bold_the_kept_step_and_say_how_runs_ended(tmp_path):
    """model-best is the latest of the best dev scores; a run cut by max_steps at its best was still improving."""
    results = tmp_path / "results"
    budget = {"max_steps": 600, "eval_frequency": 200, "patience": 400}

    def curve(*scores):
        return [{"epoch": 0, "step": 200 * i, "dev_f": f, "losses": {}} for i, f in enumerate(scores)]

    write_record(results, "ladtl", 0, 0.5, budget=budget, dev_curve=curve(1.0, 40.0, 45.0, 47.0))  # budget, rising
    write_record(results, "joint", 0, 0.4, budget=budget, dev_curve=curve(1.0, 44.0, 43.0, 44.0))  # tie: later kept
    write_record(results, "retrain", 0, 0.3, budget={**budget, "max_steps": 2000}, dev_curve=curve(2.0, 30.0, 29.0, 28.0))
    write_record(results, "non_transfer", 0, 0.2)  # older run: no curve
    output = tmp_path / "curves.md"
    run_script("scripts/benchmark_curves.py", "--results", str(results), "--methods", "ladtl,joint,retrain,non_transfer",
               "--output", str(output), "--plot", "none")
    text = output.read_text(encoding="utf-8")
    assert "| step | ladtl s0 | joint s0 | retrain s0 |" in text
    assert "| 200 | 40.00 | 44.00 | **30.00** |" in text and "| 600 | **47.00** | **44.00** | 28.00 |" in text
    assert "- ladtl s0: kept step 600 (dev 47.00), last step 600 (dev 47.00), ended by the budget — still improving" in text
    assert "- joint s0: kept step 600 (dev 44.00), last step 600 (dev 44.00), ended by the budget; test F1 of the kept checkpoint 40.00." in text
    assert "- retrain s0: kept step 200 (dev 30.00), last step 600 (dev 28.00), ended by the patience;" in text
    assert "1 run(s) of the rows shown have no dev curve" in text
    none = run_script("scripts/benchmark_curves.py", "--results", str(results), "--methods", "non_transfer",
                      "--output", str(output), "--plot", "none", check=False)
    assert none.returncode != 0 and "no run with a dev curve" in none.stderr


def test_compare_adds_side_folders_and_refuses_a_run_found_twice(tmp_path):
    """--extra-results joins a side folder's seeds to the main ones; the same run in both is an error."""
    results, side = tmp_path / "results", tmp_path / "side"
    for seed, f in enumerate([0.60, 0.62]):
        write_record(results, "ladtl", seed, f)
        write_record(results, "joint", seed, f - 0.05)
    write_record(side, "ladtl", 2, 0.64)
    write_record(side, "joint", 2, 0.65)  # joint wins the side seed
    table = tmp_path / "five.md"
    run_script("scripts/benchmark_compare.py", "--results", str(results), "--extra-results", str(side),
               "--pairs", "bionlp13pc-bionlp13cg", "--output", str(table), "--plot", "none")
    text = table.read_text(encoding="utf-8")
    assert "**62.00 ± 2.00**" in text and "| 59.00 ± 5.29 |" in text
    assert "| bionlp13pc-bionlp13cg | 10% | +3.00 ± 3.46 (2/3) |" in text
    assert "Not run yet" not in text and not (tmp_path / "c.png").exists()
    write_record(side, "ladtl", 3, 0.66)  # more seeds than the plan's three: n is shown
    run_script("scripts/benchmark_compare.py", "--results", str(results), "--extra-results", str(side),
               "--output", str(table), "--plot", "none")
    assert "**63.00 ± 2.58** (n=4)" in table.read_text(encoding="utf-8")
    write_record(side, "ladtl", 1, 0.61)  # seed 1 is in the main folder too
    failed = run_script("scripts/benchmark_compare.py", "--results", str(results), "--extra-results", str(side),
                        "--output", str(table), "--plot", "none", check=False)
    assert failed.returncode != 0 and "also in" in failed.stderr and "rate0.1-seed1.json" in failed.stderr
    unknown = run_script("scripts/benchmark_compare.py", "--results", str(results), "--pairs", "nope",
                         "--output", str(table), "--plot", "none", check=False)
    assert unknown.returncode != 0 and "--pairs: no runs of nope" in unknown.stderr


def test_paired_differences_one_table_per_entry():
    """A list under ``paired`` gives one table per entry; an entry whose method never ran gives none."""
    benchmark_compare = load_script("benchmark_compare")

    def runs(*fs):
        return [{"seed": seed, "test": {"ents_f": f}} for seed, f in enumerate(fs)]

    table = {("p", 0.1): {"ladtl": runs(0.60, 0.62), "joint": runs(0.55, 0.57), "ladtl_tuned": runs(0.61)}}
    plan = {"pairs": {"p": {}}, "paired": [
        {"method": "ladtl", "against": ["joint"]},
        {"method": "ladtl_tuned", "against": ["ladtl", "joint", "retrain"]},
        {"method": "never_run", "against": ["ladtl"]},
    ]}
    text = benchmark_compare.paired_differences(table, plan)
    assert text.count("Paired test F1 differences") == 2 and "never_run" not in text
    assert "| p | 10% | +5.00 ± 0.00 (2/2) |" in text
    assert "| pair | target rate | ladtl_tuned − ladtl | ladtl_tuned − joint |\n" in text  # retrain never ran
    assert "| p | 10% | +1.00 (1 seed) | +6.00 (1 seed) |" in text
    # the single-entry form of earlier plans still works
    assert benchmark_compare.paired_differences(table, {**plan, "paired": plan["paired"][0]}).count("| p | 10% |") == 1


def test_tuning_search_walks_one_key_at_a_time(tmp_path):
    """The coordinate search asks for one key's points, keeps the dev-best value, then moves on."""
    bench_tuning = load_script("bench_tuning")
    tuning = {"method": "ladtl", "seed": 0, "grid": {"c.alpha": [0.01, 0.02, 0.04], "c.beta": [0.03, 0.12]}}
    base = {"c.alpha": 0.02, "c.beta": 0.03}
    results = tmp_path / "results"

    def write(point, dev_f):
        path = bench_tuning.point_path(results, "p", "ladtl", "0.1", 0, point, base)
        path.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path, {"dev": {"ents_f": dev_f}})
        return path

    missing, best, _ = bench_tuning.search(results, "p", "0.1", tuning, base)
    assert best is None and missing == [({"c.alpha": 0.01, "c.beta": 0.03}, 0), (base, 0), ({"c.alpha": 0.04, "c.beta": 0.03}, 0)]
    assert write(base, 0.50) == results / "p" / "ladtl" / "rate0.1-seed0.json"  # the base point is the method's run
    write({"c.alpha": 0.01, "c.beta": 0.03}, 0.50)  # a tie keeps the base value
    assert write({"c.alpha": 0.04, "c.beta": 0.03}, 0.40).parent.name == "alpha0.04-beta0.03"
    missing, best, trace = bench_tuning.search(results, "p", "0.1", tuning, base)
    assert missing == [({"c.alpha": 0.02, "c.beta": 0.12}, 0)] and [t["chosen"] for t in trace] == [False, True, False]
    write({"c.alpha": 0.02, "c.beta": 0.12}, 0.55)
    missing, best, trace = bench_tuning.search(results, "p", "0.1", tuning, base)
    assert not missing and best == {"c.alpha": 0.02, "c.beta": 0.12} and trace[-1]["chosen"]


def test_tuning_over_several_seeds_scores_a_point_by_its_mean_dev(tmp_path):
    """A method's own ``tuning: {seeds: [..]}`` asks for every seed of a point and keeps the best mean,
    even where seed 0 alone would keep another value; seed 0's runs are shared with the one-seed search."""
    bench_tuning = load_script("bench_tuning")
    plan = {"tuning": {"method": "ladtl", "seed": 0, "grid": {"c.alpha": [0.02, 0.04]}},
            "methods": {"ladtl": {}, "tuned": {"tuned": True}, "tuned_mean": {"tuned": True, "tuning": {"seeds": [0, 1]}}}}
    one, mean = bench_tuning.method_tuning(plan, "tuned"), bench_tuning.method_tuning(plan, "tuned_mean")
    assert bench_tuning.search_seeds(one) == [0] and bench_tuning.search_seeds(mean) == [0, 1]
    base, other = {"c.alpha": 0.02}, {"c.alpha": 0.04}
    results = tmp_path / "results"
    for point, seed, dev_f in [(base, 0, 0.50), (other, 0, 0.60), (base, 1, 0.58)]:
        path = bench_tuning.point_path(results, "p", "ladtl", "0.1", seed, point, base)
        path.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path, {"dev": {"ents_f": dev_f}})
    assert bench_tuning.search(results, "p", "0.1", one, base)[1] == other  # seed 0 alone: 0.60 > 0.50
    missing, best, _ = bench_tuning.search(results, "p", "0.1", mean, base)
    assert best is None and missing == [(other, 1)]  # only the run not on disk
    path = bench_tuning.point_path(results, "p", "ladtl", "0.1", 1, other, base)
    srsly.write_json(path, {"dev": {"ents_f": 0.46}})
    missing, best, trace = bench_tuning.search(results, "p", "0.1", mean, base)
    assert not missing and best == base  # mean 0.54 against 0.53
    assert trace[0]["dev_fs"] == [0.50, 0.58] and trace[0]["dev_f"] == pytest.approx(0.54) and trace[0]["chosen"]


def test_tuning_grid_grown_at_the_end_reuses_earlier_runs(tmp_path):
    """A key appended to the grid later: earlier runs (names and records without it) count as its base value."""
    bench_tuning = load_script("bench_tuning")
    old_grid = {"c.alpha": [0.01, 0.02]}
    grown = {"method": "ladtl", "seed": 0, "grid": {**old_grid, "c.memory": [0, 16]}}
    base = {"c.alpha": 0.02, "c.memory": 0}
    results = tmp_path / "results"
    earlier = results / "p" / "tuning" / "alpha0.01" / "rate0.1-seed0.json"  # named before c.memory existed
    earlier.parent.mkdir(parents=True)
    srsly.write_json(earlier, {"dev": {"ents_f": 0.6}})
    (results / "p" / "ladtl").mkdir(parents=True)
    srsly.write_json(results / "p" / "ladtl" / "rate0.1-seed0.json", {"dev": {"ents_f": 0.5}})
    assert bench_tuning.point_path(results, "p", "ladtl", "0.1", 0, {"c.alpha": 0.01, "c.memory": 0}, base) == earlier
    # another seed of that point (a search over several seeds) goes to the same folder
    assert bench_tuning.point_path(results, "p", "ladtl", "0.1", 1, {"c.alpha": 0.01, "c.memory": 0}, base) == earlier.with_name("rate0.1-seed1.json")
    new_point = {"c.alpha": 0.01, "c.memory": 16}
    assert bench_tuning.point_path(results, "p", "ladtl", "0.1", 0, new_point, base).parent.name == "alpha0.01-memory16"
    missing, best, _ = bench_tuning.search(results, "p", "0.1", grown, base)
    assert best is None and missing == [(new_point, 0)]  # only the new key's point is left to run
    assert isinstance(missing[0][0]["c.memory"], int)  # an int setting stays an int for the config
    # a tuned run recorded before the grid grew holds the base value of the new key
    assert bench_tuning.holds_point({"tuned": {"point": {"c.alpha": 0.01}}}, {"c.alpha": 0.01, "c.memory": 0}, base)
    assert not bench_tuning.holds_point({"tuned": {"point": {"c.alpha": 0.01}}}, new_point, base)
    assert not bench_tuning.holds_point({}, new_point, base)


def test_tuning_base_reads_the_config_and_names_bad_keys(tmp_path):
    bench_tuning = load_script("bench_tuning")
    plan = srsly.read_yaml(PROJECT / "benchmark.yml")
    config = PROJECT.parent / "configs" / "ladtl_bilstm.cfg"
    base = bench_tuning.plan_base(plan, PROJECT, config)
    assert base == {"components.ladtl_ner.mmd_include_o": False, "components.ladtl_ner.alpha": 0.02,
                    "components.ladtl_ner.beta": 0.03, "components.ladtl_ner.epsilon": 0.3,
                    "components.ladtl_ner.mmd_memory": 0}
    assert bench_tuning.point_name(base) == "mmd_include_ofalse-alpha0.02-beta0.03-epsilon0.3-mmd_memory0"
    assert bench_tuning.same_point({"a": 0.3, "o": True}, {"a": 0.30000000000000004, "o": True})  # JSON round trip
    assert not bench_tuning.same_point({"a": 0.3, "o": True}, {"a": 0.3, "o": 1.0}) and not bench_tuning.same_point({"a": 0.3}, None)
    with pytest.raises(KeyError, match="components.ladtl_ner.gamma_typo"):
        bench_tuning.base_point({"grid": {"components.ladtl_ner.gamma_typo": [1]}}, config)
    side_plan = {**plan, "methods": {"ladtl_avg": plan["methods"]["ladtl"]}}  # a side plan without the searched method
    with pytest.raises(SystemExit, match="tuning.method 'ladtl' is not one of its methods \\(ladtl_avg\\)"):
        bench_tuning.plan_base(side_plan, PROJECT, config)


def test_tuned_run_is_redone_when_the_search_moves(tmp_path):
    """A tuned run whose kept point is no longer the dev search's best (e.g. after a grid change) is planned again."""
    plan = srsly.read_yaml(PROJECT / "benchmark.yml")
    plan["tuning"]["grid"] = {"components.ladtl_ner.mmd_include_o": [False, True]}
    plan_path = tmp_path / "plan.yml"
    srsly.write_yaml(plan_path, plan)
    results = tmp_path / "results"
    write_record(results, "ladtl", 0, 0.50)  # the base point (include_o false)
    point = {"components.ladtl_ner.mmd_include_o": True}
    bench_tuning = load_script("bench_tuning")
    assert bench_tuning.point_name(point) == "mmd_include_otrue"
    path = results / "bionlp13pc-bionlp13cg" / "tuning" / "mmd_include_otrue" / "rate0.1-seed0.json"
    path.parent.mkdir(parents=True)
    srsly.write_json(path, {"dev": {"ents_f": 0.60}})
    common = ["--plan", str(plan_path), "--data-dir", "sample", "--pairs", "bionlp13pc-bionlp13cg", "--seeds", "0",
              "--rates", "0.1", "--results", str(results), "--methods", "ladtl_tuned", "--dry-run"]
    write_record(results, "ladtl_tuned", 0, 0.55, tuned={"point": {"components.ladtl_ner.mmd_include_o": False}})
    out = run_script("scripts/benchmark_run.py", *common).stdout
    assert "1 run(s) to do" in out and "dev-best point mmd_include_otrue" in out
    table = tmp_path / "RESULTS.md"
    run_script("scripts/benchmark_compare.py", "--plan", str(plan_path), "--results", str(results), "--output", str(table), "--plot", str(tmp_path / "c.png"))
    assert "ladtl_tuned rate 0.1: 1 run(s) left out" in table.read_text(encoding="utf-8")
    write_record(results, "ladtl_tuned", 0, 0.55, tuned={"point": point})
    assert "0 run(s) to do" in run_script("scripts/benchmark_run.py", *common).stdout
    # the several-seed search wants seeds 1 and 2 of both points; seed 0's runs are the one-seed search's
    mean = run_script("scripts/benchmark_run.py", *[("ladtl_tuned_mean" if a == "ladtl_tuned" else a) for a in common]).stdout
    assert "tuning bionlp13pc-bionlp13cg rate=0.1 (mean dev of seeds 0, 1, 2): 4 run(s) of its points to do next" in mean


@pytest.mark.slow
def test_tuned_method_runs_the_search_first(tmp_path):
    """`ladtl_tuned` trains the dev search's points, then its own run with the kept values, and compare lists the search."""
    plan = srsly.read_yaml(PROJECT / "benchmark.yml")
    plan["tuning"]["grid"] = {"components.ladtl_ner.alpha": [0.02, 0.04]}
    plan_path = tmp_path / "plan.yml"
    srsly.write_yaml(plan_path, plan)
    results = tmp_path / "results"
    common = ["--plan", str(plan_path), "--data-dir", "sample", "--pairs", "bionlp13pc-bionlp13cg", "--seeds", "0",
              "--rates", "0.1", "--results", str(results), "--work", str(tmp_path / "work"), "--max-steps", "6"]
    out = run_script("scripts/benchmark_run.py", *common, "--methods", "ladtl_tuned,ladtl", "--jobs", "2").stdout
    assert "tuning bionlp13pc-bionlp13cg rate=0.1: 2 run(s) of its points to do next" in out and "dev-best point alpha" in out
    # ladtl seed 0 is the search's base point: trained once, not again as the listed ladtl run
    assert out.count("(= ladtl)") == 1 and "ladtl rate=0.1 seed=0: trained by the dev search as its base point" in out
    pair = results / "bionlp13pc-bionlp13cg"
    point = srsly.read_json(pair / "tuning" / "alpha0.04" / "rate0.1-seed0.json")
    assert point["tuning_point"] == {"components.ladtl_ner.alpha": 0.04} and point["overrides"]["components.ladtl_ner.alpha"] == 0.04
    assert (pair / "ladtl" / "rate0.1-seed0.json").exists()  # the base point is ladtl's own run
    tuned = srsly.read_json(pair / "ladtl_tuned" / "rate0.1-seed0.json")
    assert tuned["method"] == "ladtl_tuned" and len(tuned["tuned"]["trace"]) == 2
    assert tuned["overrides"].get("components.ladtl_ner.alpha", 0.02) == tuned["tuned"]["point"]["components.ladtl_ner.alpha"]
    table = tmp_path / "RESULTS.md"
    run_script("scripts/benchmark_compare.py", "--plan", str(plan_path), "--results", str(results), "--output", str(table), "--plot", str(tmp_path / "c.png"))
    assert "- bionlp13pc-bionlp13cg, 10% target: alpha " in table.read_text(encoding="utf-8")


def test_mmd_coverage_counts_what_la_mmd_sees(tmp_path):
    """Pooling a type's tags (mmd_labels = "type") lets at least as many target entity tokens into La-MMD."""
    work = tmp_path / "work"
    run_script("scripts/benchmark_run.py", "--data-dir", "sample", "--pairs", "bionlp13pc-bionlp13cg", "--rates", "0.1",
               "--results", str(tmp_path / "results"), "--work", str(work), "--prepare-only")
    out = tmp_path / "coverage.md"
    text = run_script("scripts/mmd_coverage.py", "bionlp13pc-bionlp13cg", "--work", str(work), "--batches", "20",
                      "--out", str(out)).stdout
    assert out.read_text(encoding="utf-8").strip() == text.strip()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] in ("tag", "type"):
            key = (cells[0], int(cells[1]), cells[2] == "True", int(cells[3]))
            rows[key] = (int(cells[4]), float(cells[5]), float(cells[6].rstrip("%")))
    assert len(rows) == 10  # 8 without memory, mmd_memory 16 and 48
    rows_no_memory = {key[:3]: value for key, value in rows.items() if key[3] == 0}
    assert rows[("tag", 2, False, 48)][2] >= rows[("tag", 2, False, 16)][2] >= rows_no_memory[("tag", 2, False)][2]
    rows = rows_no_memory
    tag, typ = rows[("tag", 2, False)], rows[("type", 2, False)]
    assert typ[0] < tag[0]  # fewer shared labels: one per type
    assert typ[2] >= tag[2] > 0  # share of target entity tokens in La-MMD
    assert rows[("tag", 1, False)][2] >= tag[2]  # a lower min_tokens never sees less
    assert rows[("tag", 2, True)][0] == tag[0] + 1  # O is one more shared label


def dev_test_runs(*pairs):
    """Run records of seeds 0, 1, ..., one per (dev F, test F) pair."""
    return [{"seed": seed, "dev": {"ents_f": dev}, "test": {"ents_f": test}} for seed, (dev, test) in enumerate(pairs)]


def test_goal_check_picks_la_dtl_on_dev_and_names_what_is_ahead():
    """The goal table takes the La-DTL variant with the best dev mean (not test) and checks it against
    every baseline, the spaCy target-only margin and the published number."""
    benchmark_compare = load_script("benchmark_compare")

    plan = {"pairs": {"p": {}, "q": {}, "r": {}}, "methods": {},
            "goal": {"ours": ["ladtl", "ladtl_tuned"], "baselines": ["joint", "spacy_eff_target"],
                     "spacy_target": ["spacy_eff_target"], "margin": 5.0},
            "references": [{"pair": "q", "rate": 0.1, "source": "paper", "ladtl": 50.0}]}
    table = {
        # ladtl has the better test mean, ladtl_tuned the better dev mean: ladtl_tuned is the row's La-DTL
        ("p", 0.1): {"ladtl": dev_test_runs((0.50, 0.70), (0.50, 0.70)), "ladtl_tuned": dev_test_runs((0.60, 0.58), (0.60, 0.62)),
                     "joint": dev_test_runs((0.55, 0.61), (0.55, 0.60)), "spacy_eff_target": dev_test_runs((0.5, 0.50), (0.5, 0.52))},
        ("q", 0.1): {"ladtl": dev_test_runs((0.5, 0.52), (0.5, 0.54)), "joint": dev_test_runs((0.5, 0.50), (0.5, 0.51)),
                     "spacy_eff_target": dev_test_runs((0.4, 0.40), (0.4, 0.40))},
        # ahead on the means (52 vs 51) but behind on the two seeds both ran: the seeds decide
        ("r", 0.1): {"ladtl": dev_test_runs((0.5, 0.50), (0.5, 0.50), (0.5, 0.56)), "joint": dev_test_runs((0.5, 0.51), (0.5, 0.51))},
    }
    text = benchmark_compare.goal_check(table, plan)
    row_p = next(line for line in text.splitlines() if line.startswith("| p |"))
    assert "| ladtl_tuned | 60.00 | 1 of 2 |" in row_p
    assert "joint -0.50 ± 3.54 (1/2), within noise" in row_p
    assert "+9.00 ✔" in row_p and row_p.endswith("| not met |")
    row_q = next(line for line in text.splitlines() if line.startswith("| q |"))
    assert "| ladtl | 53.00 | 2 of 2 (closest: joint +2.50 ± 0.71 (2/2), beyond noise) | none |" in row_q
    assert "+13.00 ✔" in row_q and "+3.00 (50.0) ✔" in row_q and row_q.endswith("| met |")
    assert "| r | 10% | ladtl | 52.00 | 0 of 1 | joint -1.00 ± 0.00 (0/2), beyond noise |" in text
    assert "Ahead of every baseline on 1 of 3 rows" in text and "on 2 of 2 rows with those runs" in text
    assert "on 1 of 1 rows with one" in text
    assert benchmark_compare.goal_check(table, {**plan, "goal": None}) == ""


def test_goal_check_chooses_among_the_variants_with_the_most_seeds():
    """A variant run with one seed does not become the row's La-DTL by its single dev score."""
    benchmark_compare = load_script("benchmark_compare")

    plan = {"pairs": {"p": {}}, "methods": {}, "goal": {"ours": ["ladtl", "ladtl_tuned"], "baselines": ["joint"]}}
    table = {("p", 0.1): {"ladtl": dev_test_runs((0.70, 0.40)), "ladtl_tuned": dev_test_runs((0.60, 0.50), (0.62, 0.52)),
                          "joint": dev_test_runs((0.5, 0.45), (0.5, 0.45))}}
    text = benchmark_compare.goal_check(table, plan)
    assert "| p | 10% | ladtl_tuned | 51.00 | 1 of 1 " in text
    table[("p", 0.1)]["ladtl"] += dev_test_runs((0.70, 0.40), (0.70, 0.40))[1:]  # now two seeds, the better dev mean
    assert "| p | 10% | ladtl | 40.00 | 0 of 1 " in benchmark_compare.goal_check(table, plan)


def test_method_overrides_reach_every_kind(tmp_path):
    """A plan method's `overrides` go into the training command of target-only, spaCy and re-training runs too."""
    plan = srsly.read_yaml(PROJECT / "benchmark.yml")
    plan["methods"]["non_transfer"]["overrides"] = {"components.ladtl_ner.epsilon": 0.5}
    plan["methods"]["spacy_eff_target"]["overrides"] = {"training.dropout": 0.2}
    affix = {"components.ladtl_ner.model.tok2vec.embed.@architectures": "spacy-ladtl.CharacterAffixEmbed.v1"}
    plan["methods"]["retrain"]["overrides"] = {**affix, "components.ladtl_ner.epsilon": 0.5}
    plan_path = tmp_path / "plan.yml"
    srsly.write_yaml(plan_path, plan)
    results = tmp_path / "results"
    run_script("scripts/benchmark_run.py", "--plan", str(plan_path), "--data-dir", "sample", "--pairs", "bionlp13pc-bionlp13cg",
               "--seeds", "0", "--rates", "0.1", "--results", str(results), "--work", str(tmp_path / "work"),
               "--max-steps", "4", "--methods", "non_transfer,spacy_eff_target,retrain", "--jobs", "2")
    pair = results / "bionlp13pc-bionlp13cg"
    target = srsly.read_json(pair / "non_transfer" / "rate0.1-seed0.json")
    assert target["overrides"] == {"components.ladtl_ner.epsilon": 0.5}
    assert "--components.ladtl_ner.epsilon 0.5" in target["commands"][0]
    spacy_run = srsly.read_json(pair / "spacy_eff_target" / "rate0.1-seed0.json")
    assert spacy_run["overrides"] == {"training.dropout": 0.2} and "--training.dropout 0.2" in spacy_run["commands"][0]
    # retrain: the encoder override shapes the source phase too (its encoder is loaded by the target phase)
    source_cmd, target_cmd = srsly.read_json(pair / "retrain" / "rate0.1-seed0.json")["commands"]
    architecture = "--components.ladtl_ner.model.tok2vec.embed.@architectures spacy-ladtl.CharacterAffixEmbed.v1"
    assert architecture in source_cmd and architecture in target_cmd
    assert "epsilon" not in source_cmd and "--components.ladtl_ner.epsilon 0.5" in target_cmd


def test_notes_say_where_checkpoints_were_chosen():
    """A `corpora.dev.paths` override (e.g. a test-selection probe) is named in the notes, not called target dev."""
    benchmark_compare = load_script("benchmark_compare")
    plain = [{"method": "ladtl", "overrides": {}}, {"method": "spacy_eff_target"}]
    assert benchmark_compare.selection_text(plain) == "checkpoints chosen on target dev"
    probe = plain + [{"method": "joint", "overrides": {"corpora.dev.paths": {"ritter_twitter": "corpus/target_test.spacy"}}}]
    text = benchmark_compare.selection_text(probe)
    assert "on corpus/target_test.spacy for joint" in text and "target dev for any other" in text


def test_pretrain_method_pretrains_each_text_once_and_trains_from_it(tmp_path):
    """A method with `pretrain` runs `spacy pretrain` on the text it trains on (cached: methods
    with the same text share it) and trains from those weights."""
    plan = srsly.read_yaml(PROJECT / "benchmark.yml")
    for name in ("non_transfer", "joint", "ladtl", "spacy_eff_target"):
        plan["methods"][f"{name}_pt"] = {**plan["methods"][name], "pretrain": {"max_epochs": 1}}
    plan_path = tmp_path / "plan.yml"
    srsly.write_yaml(plan_path, plan)
    results, work = tmp_path / "results", tmp_path / "work"
    run_script("scripts/benchmark_run.py", "--plan", str(plan_path), "--data-dir", "sample", "--pairs", "bionlp13pc-bionlp13cg",
               "--seeds", "0", "--rates", "0.1", "--results", str(results), "--work", str(work),
               "--max-steps", "4", "--methods", "non_transfer_pt,joint_pt,ladtl_pt,spacy_eff_target_pt", "--jobs", "2")
    pair = results / "bionlp13pc-bionlp13cg"
    methods = ("non_transfer_pt", "joint_pt", "ladtl_pt", "spacy_eff_target_pt")
    records = {m: srsly.read_json(pair / m / "rate0.1-seed0.json") for m in methods}
    for record in records.values():
        pretrain_cmd, train_cmd = record["commands"]
        assert " spacy pretrain " in pretrain_cmd and "--pretraining.max_epochs 1" in pretrain_cmd
        weights = pretrain_cmd.split()[5] + "/model-last.bin"
        assert f"--paths.init_tok2vec {weights}" in train_cmd and Path(weights).exists()
    # the two transfer methods read the same text: one pretraining; target-only reads the target's alone
    assert records["joint_pt"]["commands"][0] == records["ladtl_pt"]["commands"][0]
    assert records["non_transfer_pt"]["commands"][0] != records["joint_pt"]["commands"][0]
    assert sorted(p.name.split("-rate")[0] for p in (work / "bionlp13pc-bionlp13cg" / "pretrain").glob("*.log")) == [
        "bionlp13cg", "bionlp13pc+bionlp13cg", "spacy-target"]
    assert "spacy_ner_baseline.cfg" in records["spacy_eff_target_pt"]["commands"][0]
    # a target-only spaCy run can pretrain on both domains' text
    plan["methods"]["spacy_eff_target_both"] = {**plan["methods"]["spacy_eff_target"], "pretrain": {"max_epochs": 1, "text": "source+target"}}
    srsly.write_yaml(plan_path, plan)
    run_script("scripts/benchmark_run.py", "--plan", str(plan_path), "--data-dir", "sample", "--pairs", "bionlp13pc-bionlp13cg",
               "--seeds", "0", "--rates", "0.1", "--results", str(results), "--work", str(work),
               "--max-steps", "4", "--methods", "spacy_eff_target_both")
    both = srsly.read_json(pair / "spacy_eff_target_both" / "rate0.1-seed0.json")["commands"]
    text = work / "bionlp13pc-bionlp13cg" / "pretrain" / "text-source+target-rate0.1"
    assert f"--paths.train {text}" in both[0] and sorted(p.name for p in text.iterdir()) == ["source.spacy", "target.spacy"]
    assert "/target_train_r0.1.spacy" in both[1]  # trained on the target only


def test_pretrain_adds_unlabelled_text_files(tmp_path):
    """`pretrain: {unlabelled: [..]}` adds raw text files (one text per line, blank and repeated
    lines dropped) to the pretraining text of La-DTL and spaCy runs; a missing file stops the runner first."""
    raw = tmp_path / "data" / "raw.txt"
    raw.parent.mkdir()
    raw.write_text("protein kinase binds it\n\nprotein kinase binds it\nThe cell line grows .\n", encoding="utf-8")
    plan = srsly.read_yaml(PROJECT / "benchmark.yml")
    settings = {"max_epochs": 1, "text": "target", "unlabelled": [str(raw)]}  # an absolute name: not under --data-dir
    plan["methods"]["ladtl_raw"] = {**plan["methods"]["ladtl"], "pretrain": settings}
    plan["methods"]["spacy_raw"] = {**plan["methods"]["spacy_eff_target"], "pretrain": settings}
    plan["methods"]["ladtl_gone"] = {**plan["methods"]["ladtl"], "pretrain": {**settings, "unlabelled": ["gone.txt"]}}
    plan_path = tmp_path / "plan.yml"
    srsly.write_yaml(plan_path, plan)
    results, work = tmp_path / "results", tmp_path / "work"
    args = ("scripts/benchmark_run.py", "--plan", str(plan_path), "--data-dir", "sample", "--pairs", "bionlp13pc-bionlp13cg",
            "--seeds", "0", "--rates", "0.1", "--results", str(results), "--work", str(work), "--max-steps", "4")
    missing = run_script(*args, "--methods", "ladtl_gone", check=False)
    assert missing.returncode != 0 and "pretrain.unlabelled file sample/gone.txt not found" in missing.stderr
    assert not work.exists()  # stopped before converting or training anything
    run_script(*args, "--methods", "ladtl_raw,spacy_raw", "--jobs", "2")
    pretrain_dir = work / "bionlp13pc-bionlp13cg" / "pretrain"
    (docbin,) = pretrain_dir.glob("unlabelled-*.spacy")
    texts = [doc.text for doc in DocBin().from_disk(docbin).get_docs(spacy.blank("en").vocab)]
    assert texts == ["protein kinase binds it", "The cell line grows ."]
    pair = results / "bionlp13pc-bionlp13cg"
    ladtl_cmd = srsly.read_json(pair / "ladtl_raw" / "rate0.1-seed0.json")["commands"][0]
    # text "target": the target's training text and the unlabelled file, not the source's
    assert f'"unlabelled": "{docbin}"' in ladtl_cmd and '"bionlp13cg"' in ladtl_cmd and '"bionlp13pc"' not in ladtl_cmd
    spacy_cmd = srsly.read_json(pair / "spacy_raw" / "rate0.1-seed0.json")["commands"][0]
    text = pretrain_dir / f"text-target+{docbin.stem}-rate0.1"
    assert f"--paths.train {text}" in spacy_cmd
    assert sorted(p.name for p in text.iterdir()) == ["target.spacy", "unlabelled.spacy"]


@pytest.mark.slow
def test_extra_sources_join_la_dtl_and_spacy_concat_runs(tmp_path):
    """A pair's extra_sources: one more domain (own head) for La-DTL, one more file for spaCy's concat run."""
    catalog = srsly.read_yaml(PROJECT / "corpora.yml")
    catalog["bionlp13pc_again"] = dict(catalog["bionlp13pc"])
    srsly.write_yaml(tmp_path / "corpora.yml", catalog)
    plan = srsly.read_yaml(PROJECT / "benchmark.yml")
    plan["pairs"]["bionlp13pc-bionlp13cg"]["extra_sources"] = ["bionlp13pc_again"]
    srsly.write_yaml(tmp_path / "plan.yml", plan)
    results, work = tmp_path / "results", tmp_path / "work"
    common = ["scripts/benchmark_run.py", "--plan", str(tmp_path / "plan.yml"), "--catalog", str(tmp_path / "corpora.yml"),
              "--data-dir", "sample", "--pairs", "bionlp13pc-bionlp13cg", "--seeds", "0", "--rates", "0.1",
              "--results", str(results), "--work", str(work), "--max-steps", "4"]
    refused = run_script(*common, "--methods", "retrain", check=False)
    assert refused.returncode != 0 and "extra_sources" in refused.stderr
    run_script(*common, "--methods", "ladtl,spacy_eff_concat", "--keep-models")
    ladtl = srsly.read_json(results / "bionlp13pc-bionlp13cg" / "ladtl" / "rate0.1-seed0.json")
    assert ladtl["extra_sources"] == ["bionlp13pc_again"]
    assert '--components.ladtl_ner.model.domains ["bionlp13pc", "bionlp13pc_again", "bionlp13cg"]' in ladtl["commands"][0]
    assert '--training.batcher.shares {"bionlp13pc": 0.25, "bionlp13pc_again": 0.25, "bionlp13cg": 0.5}' in ladtl["commands"][0]
    concat = work / "bionlp13pc-bionlp13cg" / "runs" / "spacy_eff_concat-rate0.1-seed0" / "train"
    assert sorted(p.name for p in concat.iterdir()) == ["extra_bionlp13pc_again.spacy", "source.spacy", "target.spacy"]
