"""Reference lines and degenerate-policy flags in the report: the references the trainables side writes are read
back, drawn on the learning curves (the plotted Line2D data) on the chosen scale, and listed; a standing-still
arm is flagged in the summary and beside its comparison."""

from __future__ import annotations

import csv

import numpy as np
import pyarrow.parquet as pq
import pytest

from analysis import plots
from analysis.load import REFERENCE_COLUMNS, load_run
from analysis.report import build_report
from tests.analysis.conftest import set_d4rl_scores, write_run
from trainables.results import REFERENCES_SCHEMA, reference_rows, write_references

REF_MIN, REF_MAX = 20.0, 2520.0  # the dataset's reference returns (mdpt scale)
D4RL = (20.058972, 1441.8059623430963)  # D4RL's bullet hopper references
LINES = {"seed": 0, "episodes": 10, "max_episode_steps": 1000, "source": "stored with the dataset",
         "random": {"policy": "uniform random actions", "return_mean": 22.0, "return_std": 4.0, "length_mean": 18.0,
                    "episodes": 10},
         "stand_still": {"policy": "the zero action", "return_mean": 48.0, "return_std": 6.0, "length_mean": 41.0,
                         "episodes": 10},
         "no_progress": {"policy": "none (computed)", "return_mean": 1000.0, "return_std": 0.0, "length_mean": 1000.0,
                         "episodes": 0, "seed": -1, "source": "computed: alive bonus 1 x the 1000-step cap"},
         "dataset": {"policy": "the behaviour data", "return_mean": 1120.0, "return_std": 600.0, "length_mean": 520.0,
                     "episodes": 190}}
OLD_LINES = {k: v for k, v in LINES.items() if k != "no_progress"}  # runs made before no_progress existed


def mdpt(ret: float) -> float:
    return 100 * (ret - REF_MIN) / (REF_MAX - REF_MIN)


def make_run(run_dir, lines):
    """DQL joint learns; DQL frozen stands still (every episode 1000 steps, return ~770); reference ``lines``
    written by the trainables side."""
    run_dir = write_run(run_dir)
    set_d4rl_scores(run_dir, lambda task, s: s * 1.5)
    for path in sorted((run_dir / "results" / "evals").rglob("*.parquet")):
        t = pq.read_table(path)
        if t.column("train_guidance")[0].as_py() == "frozen":
            n = t.num_rows
            ret = 770.0 + 0.5 * np.sin(np.arange(n) + t.column("step")[0].as_py())
            for col, vals in (("return", ret), ("normalized_score", mdpt(ret)), ("normalized_score_d4rl", mdpt(ret) * 1.5)):
                t = t.set_column(t.column_names.index(col), col, [vals])
            pq.write_table(t, path)
    write_references(run_dir, reference_rows("hopper-medium", "HopperBulletEnv-v0", lines, REF_MIN, REF_MAX))
    return run_dir


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "run", LINES)


def drawn_lines(monkeypatch, run, scale="mdpt"):
    """Build the report; return its markdown and the learning-curve panel's lines by legend text (before " (" or
    ":")."""
    figures = []
    real = plots.learning_curves_figure

    def keep(*args, **kw):
        figures.append(real(*args, **kw))
        return figures[-1]

    monkeypatch.setattr(plots, "learning_curves_figure", keep)
    md = build_report(run, score_scale=scale, reps=50).read_text()
    (fig,) = figures
    (ax,) = [a for a in fig.axes if a.get_visible()]
    return md, {ln.get_label().split(" (")[0].split(":")[0]: ln for ln in ax.get_lines()}


def test_references_written_by_trainables_read_back_by_analysis(run):
    assert tuple(REFERENCES_SCHEMA.names) == REFERENCE_COLUMNS
    refs = {r["reference"]: r for r in load_run(run).references.to_pylist()}
    assert set(refs) == {"random", "stand_still", "no_progress", "dataset"}
    for kind, line in LINES.items():
        if isinstance(line, dict):
            assert refs[kind]["return_mean"] == line["return_mean"]
            assert refs[kind]["normalized_score"] == pytest.approx(mdpt(line["return_mean"]))
            assert refs[kind]["normalized_score_d4rl"] == pytest.approx(
                100 * (line["return_mean"] - D4RL[0]) / (D4RL[1] - D4RL[0]))
    assert refs["dataset"]["seed"] == -1 and refs["random"]["max_episode_steps"] == 1000
    assert refs["no_progress"]["seed"] == -1 and refs["no_progress"]["episodes"] == 0
    assert refs["no_progress"]["source"].startswith("computed")
    assert refs["random"]["source"] == "stored with the dataset"


@pytest.mark.parametrize("scale,column", [("mdpt", "normalized_score"), ("d4rl", "normalized_score_d4rl")])
def test_the_report_draws_the_reference_lines_on_the_chosen_scale(run, monkeypatch, scale, column):
    md, lines = drawn_lines(monkeypatch, run, scale)
    refs = {r["reference"]: r[column] for r in load_run(run).references.to_pylist()}
    for kind, text in (("random", "random"), ("stand_still", "zero action"), ("no_progress", "no forward progress"),
                       ("dataset", "dataset")):
        ln = lines[text]
        np.testing.assert_allclose(ln.get_ydata(), [refs[kind], refs[kind]])
        assert tuple(ln.get_xdata()) == (0, 1)  # axhline: the whole width of the panel
    assert "horizontal lines = the task's reference policies" in md
    # listed in the report's table and references.csv, on the same scale
    assert "## Reference lines — normalized score" in md
    with open(run / "report" / "references.csv") as f:
        rows = {r["reference"]: r for r in csv.DictReader(f)}
    assert float(rows["stand_still"]["score_x100"]) == pytest.approx(refs["stand_still"])
    assert rows["stand_still"]["score_scale"] == scale
    assert f"| hopper-medium | stand_still | the zero action | {refs['stand_still']:.2f} |" in md
    assert f"| hopper-medium | no_progress | none (computed) | {refs['no_progress']:.2f} |" in md
    assert rows["no_progress"]["score_x100"] and float(rows["no_progress"]["score_x100"]) == pytest.approx(
        refs["no_progress"])
    assert "a score above it proves the policy moved forward" in md


def test_no_progress_line_is_drawn_at_its_score(run, monkeypatch):
    """The no-forward-progress line sits at the alive bonus x the cap on mdpt's scale (1000 -> 39.2 here), above
    the standing arm's curve (~770 -> 30) and distinct in style from the zero-action line."""
    _, lines = drawn_lines(monkeypatch, run)
    ln = lines["no forward progress"]
    np.testing.assert_allclose(ln.get_ydata(), [mdpt(1000.0)] * 2)
    assert ln.get_label() == f"no forward progress (upper bound): {mdpt(1000.0):.1f}"
    zero = lines["zero action"]
    assert (ln.get_linestyle(), ln.get_color()) != (zero.get_linestyle(), zero.get_color())
    standing = [l for name, l in lines.items() if "frozen" in name]
    assert standing and max(standing[0].get_ydata()) < mdpt(1000.0)


def test_a_run_with_the_three_older_reference_rows_still_loads_and_reports(tmp_path, monkeypatch):
    """Runs written before no_progress existed have three reference rows: they load, draw three lines, are listed
    and the standing arm is still flagged."""
    run = make_run(tmp_path / "old", OLD_LINES)
    refs = {r["reference"]: r for r in load_run(run).references.to_pylist()}
    assert set(refs) == {"random", "stand_still", "dataset"}
    md, lines = drawn_lines(monkeypatch, run)
    assert {"random", "zero action", "dataset"} <= set(lines) and "no forward progress" not in lines
    np.testing.assert_allclose(lines["zero action"].get_ydata(), [mdpt(48.0)] * 2)
    with open(run / "report" / "references.csv") as f:
        assert [r["reference"] for r in csv.DictReader(f)] == ["random", "stand_still", "dataset"]
    assert "hopper-medium dql/frozen stands still" in md


def test_a_standing_arm_is_flagged_in_the_summary_and_beside_its_comparison(run):
    md = build_report(run, reps=50).read_text()
    summary = md.split("## Degenerate-policy checks")[1].split("\n## ")[0]
    assert "**Warning: 1 of 2 arm(s) are degenerate at their last checkpoint**" in summary
    assert "hopper-medium dql/frozen stands still (step 1600: 12 episode(s), lengths 1000–1000" in summary
    assert "dql/joint" in summary and "| dql/joint | 1600 | – |" in summary
    with open(run / "report" / "comparisons.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["flag_method"] == "stands_still" and row["flag_baseline"] == ""
    assert "lengths 1000–1000 of the 1000-step cap, returns 769.8 ± 0.3" in row["flag_method_evidence"]
    assert "| M: stands still |" in md  # the comparison table's column
    assert "**Degenerate arm** in dql/frozen vs dql/joint on hopper-medium: dql/frozen stands still (step 1600: 12 " in md
    with open(run / "report" / "policy_checks.csv") as f:
        checks = {r["variant"]: r["flag"] for r in csv.DictReader(f)}
    assert checks == {"dql/frozen": "stands_still", "dql/joint": ""}


def test_a_run_without_references_says_so(tmp_path):
    run_dir = write_run(tmp_path / "run")
    md = build_report(run_dir, reps=50).read_text()
    assert load_run(run_dir).references is None
    assert "This run has no reference lines" in md and "this run has no reference lines." in md
