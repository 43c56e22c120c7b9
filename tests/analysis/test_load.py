"""Reading run directories written by trainables.results, selectors and comparisons."""

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.errors import AnalysisError, EmptyRunError
from analysis.comparisons import (comparisons_for, default_comparisons, parse_compare, parse_selector,
                                  plug_and_play_partners)
from analysis.load import EVAL_COLUMNS, TRIAL_COLUMNS, load_run, select
from tests.analysis.conftest import set_d4rl_scores, write_run
from trainables.results import EVALS_SCHEMA, TRIALS_SCHEMA


def test_columns_match_what_trainables_write(small_run):
    assert sorted(EVAL_COLUMNS) == sorted(EVALS_SCHEMA.names) and TRIAL_COLUMNS == tuple(TRIALS_SCHEMA.names)
    run = load_run(small_run)
    assert run.evals.num_rows == 2 * 3 * 4 * 4 and run.trials.num_rows == 6 and run.guidance_search is None


def test_duplicate_episode_rows_are_dropped_last_read_wins(small_run):
    files = sorted((small_run / "results" / "evals").rglob("*.parquet"))
    src, last_file = files[0], files[-1]
    table = pq.read_table(src)
    table = table.set_column(table.column_names.index("normalized_score"), "normalized_score",
                             pa.array(np.full(table.num_rows, 999.0)))
    pq.write_table(table, src.with_name("zz-retry.parquet"))  # a stray retry file, read after the original
    run = load_run(small_run)
    scores = run.evals.column("normalized_score").to_pylist()
    assert run.evals.num_rows == 2 * 3 * 4 * 4
    assert scores.count(999.0) == table.num_rows
    assert not set(pq.read_table(src).column("normalized_score").to_pylist()) & set(scores)  # the original is replaced
    assert set(pq.read_table(last_file).column("normalized_score").to_pylist()) <= set(scores)  # other jobs stay


def test_empty_run_has_a_clear_message(tmp_path):
    with pytest.raises(EmptyRunError, match="no evaluation results"):
        load_run(tmp_path)
    with pytest.raises(EmptyRunError, match="does not exist"):
        load_run(tmp_path / "nope")


def test_shorthand_selectors_and_kinds():
    assert parse_selector("dql/frozen") == {"algo": "dql", "train_guidance": "frozen", "infer_source": "self"}
    c = parse_compare("dql/joint/algo-idql:dql/joint")
    assert c.method["infer_source"] == "algo:idql" and c.kind == "plug_and_play"
    assert parse_compare("dql/frozen:dql/joint").kind == "gfdt"
    assert parse_compare("idql/joint/seed-3:idql/joint").method["infer_source"] == "seed:3"
    for bad in ("dql", "dql/frozen", "a/b/c/d:dql/joint", "dql//x:dql/joint"):
        with pytest.raises(AnalysisError):
            parse_compare(bad)


def test_comparisons_from_run_json_then_spec_yaml(tmp_path, small_run):
    entry = {"name": "GFDT", "kind": "gfdt", "method": {"algo": "dql", "train_guidance": "frozen"},
             "baseline": {"algo": "dql", "train_guidance": "joint"}}
    run_dir = write_run(tmp_path / "a", run_json={"sweep": "s", "comparisons": [entry]})
    (c,) = comparisons_for(load_run(run_dir), None)
    assert c.name == "GFDT" and c.method["infer_source"] == "self"
    shutil.copytree(small_run, tmp_path / "b")
    (tmp_path / "b" / "spec.yaml").write_text(
        "report:\n  comparisons:\n    - kind: generic\n      method: {algo: dql, train_guidance: joint}\n"
        "      baseline: {algo: dql, train_guidance: frozen}\n")
    (c,) = comparisons_for(load_run(tmp_path / "b"), None)
    assert c.name == "dql/joint vs dql/frozen"
    (c,) = comparisons_for(load_run(tmp_path / "b"), ["dql/frozen:dql/joint"])  # --compare wins
    assert c.kind == "gfdt"
    (tmp_path / "b" / "spec.yaml").write_text("report:\n  comparisons:\n    - kind: nope\n      method: {algo: dql}\n"
                                              "      baseline: {algo: dql}\n")
    with pytest.raises(AnalysisError, match=r"report.comparisons\[0\].kind"):
        comparisons_for(load_run(tmp_path / "b"), None)


def test_default_comparisons_against_joint_and_own_guidance(tmp_path):
    arms = (("dql", "joint", "self"), ("dql", "frozen", "self"), ("dql", "none", "self"),
            ("dql", "joint", "algo:idql"), ("idql", "frozen", "self"), ("idql", "unfrozen", "self"))
    run = load_run(write_run(tmp_path / "r", arms=arms, seeds=(0,), steps=(400,), episodes=1))
    names = [c.name for c in default_comparisons(run.evals)]
    assert names == ["dql/frozen vs dql/joint", "dql/none vs dql/joint", "idql/frozen vs idql/unfrozen",
                     "dql/joint/algo:idql vs dql/joint"]


def test_select_matches_nan_scales(tmp_path):
    run = load_run(write_run(tmp_path / "r", seeds=(0,), steps=(400,), episodes=2, infer=("none", float("nan"))))
    assert select(run.evals, {"infer_scale": float("nan"), "train_guidance": "joint"}).num_rows == 2
    assert select(run.evals, {"infer_scale": 1.0}).num_rows == 0


def test_plug_and_play_rows_also_face_the_guidance_algorithm(tmp_path):
    arms = (("dql", "joint", "self"), ("idql", "joint", "self"), ("dql", "joint", "algo:idql+1-final"))
    run = load_run(write_run(tmp_path / "r", arms=arms, seeds=(0,), steps=(400,), episodes=1))
    (c,) = [parse_compare("dql/joint/algo-idql+1-final:dql/joint")]
    (extra,) = plug_and_play_partners([c], run.evals)
    assert extra.kind == "plug_and_play" and extra.baseline == {"algo": "idql", "train_guidance": "joint",
                                                               "infer_source": "self"}
    assert plug_and_play_partners([c, extra], run.evals) == []


def test_tables_without_the_d4rl_column_load_as_nan(small_run):
    set_d4rl_scores(small_run, None)  # every file written before normalized_score_d4rl existed
    scores = load_run(small_run).evals.column("normalized_score_d4rl")
    assert scores.type == pa.float64() and np.isnan(scores.to_numpy()).all()
    first = sorted((small_run / "results" / "evals").rglob("*.parquet"))[0]
    set_d4rl_scores(small_run, lambda task, s: s + 1)
    table = pq.read_table(first).drop_columns(["normalized_score_d4rl"])
    pq.write_table(table, first)  # one old file among new ones
    evals = load_run(small_run).evals
    d4rl, mdpt = (evals.column(c).to_numpy() for c in ("normalized_score_d4rl", "normalized_score"))
    assert np.isnan(d4rl).sum() == table.num_rows and np.allclose(d4rl[~np.isnan(d4rl)], mdpt[~np.isnan(d4rl)] + 1)
