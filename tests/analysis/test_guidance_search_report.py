"""The report's guidance-scale search section, from a run directory holding the guidance_search table
in the writer's schema (trainables.results.GUIDANCE_SEARCH_SCHEMA; rows built here with pyarrow) and the
search trials' eval rows (written by trainables.results.ResultStore via conftest.write_run)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from analysis import tables as tb
from analysis.comparisons import comparisons_for
from analysis.load import GUIDANCE_SEARCH_COLUMNS, is_search_source, load_run, variants
from sweeps.cmd_report import make_report
from tests.analysis.conftest import write_run
from trainables.results import GUIDANCE_SEARCH_SCHEMA as SCHEMA

TASK = "hopper-medium"
SWG_STUDY, GRAD_STUDY = "hm-swg-joint-swg", "hm-dql-joint-gradient"
# study SWG: scale -> per-seed scores (x100); None = a FAIL trial. Scales span 0.1..30 (> 2 decades: log axis)
SWG_TRIALS = [(1.0, [40, 44, 42]), (5.0, [60, 66, 63]), (10.0, [70, 72, 77]), (20.0, [65, 61, 63]), (30.0, None),
              (0.1, [20, 25, 21]), (12.5, [71, 73, 72])]
# study GRAD: (scale, n_candidates) -> per-seed scores; trial 3 re-evaluates trial 1's parameters (same scores)
GRAD_TRIALS = [((0.5, 10), [50, 54]), ((2.0, 20), [58, 60]), ((1.0, 10), None), ((2.0, 20), [58, 60])]


def _row(study: str, trial: int, algo: str, method: str, params: dict, scores: list | None) -> dict:
    extra = ",".join(f"{k}={params[k]:.10g}" for k in sorted(params) if k != "scale")
    ok = scores is not None
    return {"study": study, "trial": trial, "tune_trial_id": f"t{trial}", "task": TASK, "algo": algo,
            "train_guidance": "joint", "method": method, "scale": float(params["scale"]),
            "params_json": json.dumps(params, sort_keys=True),
            "inference_json": json.dumps({"method": method, "n_candidates": 1, **params}, sort_keys=True),
            "objective": float(np.mean(scores)) if ok else math.nan,
            "per_seed_json": json.dumps({str(s): float(v) for s, v in enumerate(scores)} if ok else {}),
            "state": "COMPLETE" if ok else "FAIL", "reason": "" if ok else "the Tune trial errored",
            "infer_source": f"search:{study}" + (f":{extra}" if extra else ""), "episodes": 1,
            "updated_at": 1000.0 + trial}


def _write_search_run(run: Path) -> Path:
    """DQL joint/frozen + SWG joint training runs, two guidance-search studies and their eval rows."""
    write_run(run, run_json={"sweep": "search-test"})
    write_run(run, arms=(("swg", "joint", "self"),), infer=("swg", 1.0), rng_seed=1)
    rows = [_row(SWG_STUDY, i, "swg", "swg", {"scale": s}, sc) for i, (s, sc) in enumerate(SWG_TRIALS)]
    rows += [_row(GRAD_STUDY, i, "dql", "gradient", {"scale": s, "n_candidates": n}, sc)
             for i, ((s, n), sc) in enumerate(GRAD_TRIALS)]
    for r in rows:  # the writer's layout: RUN_DIR/results/guidance_search/<study>/trial_<number>.parquet
        path = run / "results" / "guidance_search" / r["study"] / f"trial_{r['trial']:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist([r], schema=SCHEMA), path)
        if r["state"] != "COMPLETE":
            continue
        scores = json.loads(r["per_seed_json"])
        write_run(run, arms=((r["algo"], "joint", r["infer_source"]),), seeds=tuple(int(s) for s in scores),
                  steps=(1600,), episodes=1, noise=0.0, infer=(r["method"], r["scale"]),
                  score=lambda *a, sc=scores: sc[str(a[4])])
    return run


def test_schema_matches_the_writer():
    """analysis keeps its own column list (it imports no trainables); it must be the writer's schema."""
    assert tuple(SCHEMA.names) == GUIDANCE_SEARCH_COLUMNS


def test_per_study_tables_are_read_and_search_sources_get_no_default_comparison(tmp_path):
    run = load_run(_write_search_run(tmp_path / "run"))
    assert run.guidance_search.num_rows == len(SWG_TRIALS) + len(GRAD_TRIALS)
    assert set(run.guidance_search.column("study").to_pylist()) == {SWG_STUDY, GRAD_STUDY}
    assert sum(is_search_source(v["infer_source"]) for v in variants(run.evals)) == 6 + 2
    comps = comparisons_for(run, None)
    assert [c.name for c in comps] == ["dql/frozen vs dql/joint"]
    assert not any(is_search_source(c.method.get("infer_source")) for c in comps)


def test_search_points_count_a_reevaluated_parameter_set_once(tmp_path):
    trials = tb.search_trials(load_run(_write_search_run(tmp_path / "run")).guidance_search)
    points = tb.search_points(trials)
    grad = points[(TASK, "dql", "joint", "gradient", GRAD_STUDY)]
    assert [(p["scale"], p["params"], p["trials"]) for p in grad] == [
        (0.5, '{"n_candidates": 10}', [0]), (2.0, '{"n_candidates": 20}', [1, 3])]
    assert grad[1]["per_seed"] == {"0": 58.0, "1": 60.0} and grad[1]["mean"] == 59.0
    swg = points[(TASK, "swg", "joint", "swg", SWG_STUDY)]
    assert [p["scale"] for p in swg] == [0.1, 1.0, 5.0, 10.0, 12.5, 20.0]  # sorted; the FAIL trial (30) is not plotted


def test_report_has_the_search_section(tmp_path):
    run = _write_search_run(tmp_path / "run")
    md = make_report(run, reps=200)
    out, text = md.parent, md.read_text()
    for needle in ("Guidance-scale search (Optuna)", "Best scale per task and algorithm", "guidance_search.png",
                   "11 finished trial(s) of 2 studies", "(9 COMPLETE, 2 FAIL",
                   "(22 episodes)",  # 6 x 3 + 2 x 2: trial 3 reuses the eval rows of trial 1
                   "8 of them guidance-search parameter sets", "95% Student-t CI over seeds",
                   "| 2 | 10 | – | 73.00 | [64.04, 81.96] | 0: 70.0, 1: 72.0, 2: 77.0 | 6 | 1 | 0.1 … 30 |", "| 0.1 … 30 |", '{"n_candidates": 20}'):
        assert needle in text, needle
    for name in ("guidance_search.csv", "guidance_search_best.csv", "guidance_search.png", "swg_scale.csv"):
        assert (out / name).stat().st_size > 0, name
    assert pacsv.read_csv(out / "guidance_search.csv").num_rows == 11
    grad, swg = pacsv.read_csv(out / "guidance_search_best.csv").to_pylist()  # sorted by algo: dql, swg
    half = 4.302652729911275 * math.sqrt(13 / 3)  # t(0.975, 2) * sd / sqrt(3), sd^2 of (70, 72, 77) = 13
    assert (swg["study"], swg["method"], swg["best_trial"], swg["scale"], swg["objective_x100"]) == (
        SWG_STUDY, "swg", 2, 10.0, 73.0)
    assert swg["ci_lo_x100"] == pytest.approx(73 - half) and swg["ci_hi_x100"] == pytest.approx(73 + half)
    assert json.loads(swg["per_seed_json"]) == {"0": 70.0, "1": 72.0, "2": 77.0} and swg["seeds"] == 3
    assert (swg["trials_complete"], swg["trials_failed"], swg["scale_min"], swg["scale_max"]) == (6, 1, 0.1, 30.0)
    assert swg["infer_source"] == f"search:{SWG_STUDY}"
    half2 = 12.706204736174698 * math.sqrt(2) / math.sqrt(2)  # t(0.975, 1) * sd(58, 60) / sqrt(2)
    assert (grad["best_trial"], grad["scale"], grad["objective_x100"], grad["trials_complete"], grad["trials_failed"]) == (
        1, 2.0, 59.0, 3, 1)  # trial 3 ties trial 1: the earlier wins
    assert grad["ci_hi_x100"] == pytest.approx(59 + half2) and json.loads(grad["other_params"]) == {"n_candidates": 20}
    assert grad["infer_source"] == f"search:{GRAD_STUDY}:n_candidates=20"
    # the SWG scale table keeps the trained SWG evals only; no comparison involves a search source
    assert {r["infer_source"] for r in pacsv.read_csv(out / "swg_scale.csv").to_pylist()} == {"self"}
    assert "search:" not in pacsv.read_csv(out / "comparisons.csv").column("method").to_pylist()[0]
    assert pacsv.read_csv(out / "comparisons.csv").num_rows == 1
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6  # curves, variance, aggregates, profiles, SWG, search


def test_a_study_without_complete_trials_is_counted_not_plotted(tmp_path):
    run = write_run(tmp_path / "run")
    path = run / "results" / "guidance_search" / "dead" / "trial_00000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([_row("dead", 0, "dql", "softmax", {"scale": 3.0}, None)], schema=SCHEMA), path)
    out = make_report(run, reps=200).parent
    (row,) = pacsv.read_csv(out / "guidance_search_best.csv").to_pylist()
    assert row["best_trial"] is None and row["trials_complete"] == 0 and row["trials_failed"] == 1
    assert not (out / "guidance_search.png").exists()
    assert "Best scale per task and algorithm" in (out / "report.md").read_text()
