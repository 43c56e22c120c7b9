"""End to end: reports of small run directories written in the result schema, and bad input."""

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from analysis import metrics as mt
from analysis import tables as tb
from analysis.errors import AnalysisError, HorizonMismatchError, MissingBaselineError
from analysis.comparisons import comparisons_for, pair_curves
from analysis.load import load_run
from sweeps.cli import main
from sweeps.cmd_report import make_report
from tests.analysis.conftest import default_score, set_d4rl_scores, write_run

REPS = 200


def test_quickstart_shaped_report(small_run, tmp_path):
    failed = {"hopper-medium_dql_frozen_s1": {"status": "ERROR", "failure_reason": "DivergenceError: NaN at step 900",
                                              "num_failures": 1, "restored_from": 800}}
    run = write_run(tmp_path / "run", trial_status=failed)
    md = make_report(run, reps=REPS)
    out = run / "report"
    assert md == out / "report.md"
    for name in ("report.html", "comparisons.csv", "variance.csv", "aggregates.csv", "improvement.csv",
                 "checkpoints.csv", "run_health.csv", "learning_curves.png", "variance.png", "aggregates.png",
                 "performance_profiles.png"):
        assert (out / name).stat().st_size > 0, name
    text = md.read_text()
    for needle in ("GFDT (frozen pretrained guidance) vs baseline", "Variance table", "Aggregates across tasks",
                   "Too few seeds for significance", "3 vs 3 seeds", "smallest attainable", "even before correction",
                   "1 ERROR", "DivergenceError: NaN at step 900", "learning_curves.png", "performance_profiles.png"):
        assert needle in text, needle
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "<img src=\"" not in html
    comp = pacsv.read_csv(out / "comparisons.csv").to_pylist()
    (row,) = comp
    assert row["method"] == "dql/frozen" and row["peak_gain_pct"] > 0 and row["auc_gain_pct"] > 0
    assert row["seed_mwu_p_min"] == pytest.approx(0.1) and row["seed_mwu_can_reach_alpha"] is False
    assert row["seed_mwu_method"] == "exact" and "| 0.1 (exact) | 0.1 |" in text
    assert row["runs_m"] == row["runs_b"] == 3 and row["horizon_step"] == 1600


def test_aggregates_are_deterministic_given_the_seed(small_run):
    run = load_run(small_run)
    pairs, _ = pair_curves(mt.checkpoint_stats(run.evals), comparisons_for(run, None))
    mats, tasks, _ = tb.score_matrices(pairs)
    assert tasks == ["hopper-medium"] and {m.shape for m in mats.values()} == {(3, 1)}
    tables = [(tb.aggregate_table(mats, np.random.default_rng(seed), REPS),
               tb.improvement_table(pairs, mats, np.random.default_rng(seed), REPS)) for seed in (3, 3)]
    assert tables[0][0].equals(tables[1][0]) and tables[0][1].equals(tables[1][1])


def test_every_table_kind(tmp_path):
    run = tmp_path / "run"
    seeds = (0, 1, 2, 3, 4)
    sel = lambda a, t, s="self": {"algo": a, "train_guidance": t, "infer_source": s}  # noqa: E731
    comparisons = [
        {"name": "GFDT DQL", "kind": "gfdt", "method": sel("dql", "frozen"), "baseline": sel("dql", "joint")},
        {"name": "IDQL-guid + DQL-diff vs DQL", "kind": "plug_and_play", "method": sel("dql", "joint", "algo:idql"),
         "baseline": sel("dql", "joint")},
        {"name": "IDQL-guid + DQL-diff vs IDQL", "kind": "plug_and_play", "method": sel("dql", "joint", "algo:idql"),
         "baseline": sel("idql", "joint")},
        {"name": "Double guidance", "kind": "double_guidance", "method": sel("dql", "joint", "seed:1"),
         "baseline": sel("dql", "joint")},
        {"name": "EDP (not run)", "kind": "gfdt", "method": sel("edp", "frozen"), "baseline": sel("edp", "joint")},
    ]
    arms = (("dql", "joint", "self"), ("dql", "frozen", "self"), ("dql", "joint", "algo:idql"),
            ("dql", "joint", "seed:1"), ("idql", "joint", "self"))
    write_run(run, tasks=("hopper-medium", "walker2d-medium"), arms=arms, seeds=seeds, episodes=3,
              run_json={"sweep": "full", "comparisons": comparisons})
    for scale in (0.5, 1.0, 2.0):
        write_run(run, arms=(("swg", "joint", "self"),), seeds=(0, 1, 2), episodes=2, infer=("swg", scale),
                  score=lambda *a, s=scale: default_score(*a) - 10 * (s - 1.0) ** 2, rng_seed=int(10 * scale))
    (run / "results" / "guidance_search").mkdir(parents=True)
    pq.write_table(pa.table({"trial": [0, 1], "infer_scale": [0.7, 1.3], "objective": [61.0, 58.5],
                             "params": [{"scale": 0.7}, {"scale": 1.3}]}),
                   run / "results" / "guidance_search" / "study.parquet")
    out = make_report(run, reps=REPS).parent
    text = (out / "report.md").read_text()
    for needle in ("GFDT (frozen", "Plug-and-play guidance", "Plug-and-play table", "Double guidance",
                   "SWG guidance scale", "Guidance-scale search (Optuna)", "Left out: comparison 'EDP (not run)'",
                   "swg_scale.png"):
        assert needle in text, needle
    for name in ("plug_and_play.csv", "swg_scale.csv", "guidance_search.csv", "swg_scale.png"):
        assert (out / name).exists(), name
    assert pacsv.read_csv(out / "guidance_search.csv").column("params").to_pylist() == ['{"scale": 0.7}', '{"scale": 1.3}']
    comp = pacsv.read_csv(out / "comparisons.csv")
    assert comp.num_rows == 8 and set(comp.column("task").to_pylist()) == {"hopper-medium", "walker2d-medium"}
    swg = pacsv.read_csv(out / "swg_scale.csv").to_pylist()
    assert [r["infer_scale"] for r in swg] == [0.5, 1.0, 2.0] and max(swg, key=lambda r: r["final_x100"])["infer_scale"] == 1.0
    aggs = pacsv.read_csv(out / "aggregates.csv").to_pylist()
    assert {r["variant"] for r in aggs} == {"dql/joint", "dql/frozen", "dql/joint/algo:idql", "dql/joint/seed:1", "idql/joint"}
    assert all(r["tasks"] == 2 and r["runs"] == 5 and r["iqm_lo"] <= r["iqm_x100"] <= r["iqm_hi"] for r in aggs)
    iqm = {r["variant"]: r["iqm_x100"] for r in aggs}
    assert iqm["dql/frozen"] > iqm["dql/joint"]  # frozen guidance learns faster in the fixture
    assert "after Holm correction over 8 comparisons" in text


def test_single_variant_run_has_curves_and_no_comparisons(tmp_path):
    run = write_run(tmp_path / "run", arms=(("idql", "joint", "self"),), steps=(400, 800), episodes=2,
                    run_json={"sweep": "one", "scale": None, "comparisons": []})
    text = make_report(run, reps=REPS).read_text()
    assert "0 comparison(s)" in text and "learning_curves.png" in text and "Aggregates" not in text
    assert "(exact)" not in text


def test_unequal_lengths_and_ambiguous_spec_comparisons_are_reported(tmp_path):
    run = tmp_path / "run"
    write_run(run, arms=(("dql", "joint", "self"),), steps=(400, 800, 1200, 1600))
    write_run(run, arms=(("dql", "frozen", "self"),), steps=(400, 800, 1200), rng_seed=1,
              run_json={"comparisons": [
                  {"name": "GFDT", "kind": "gfdt", "method": {"algo": "dql", "train_guidance": "frozen"},
                   "baseline": {"algo": "dql", "train_guidance": "joint"}},
                  {"name": "all of dql", "method": {"algo": "dql", "infer_source": "self"},
                   "baseline": {"algo": "dql", "train_guidance": "joint"}}]})
    text = make_report(run, reps=REPS).read_text()
    assert "GFDT on hopper-medium: compared up to step 1200" in text and "baseline up to 1600" in text
    assert "Left out: comparison 'all of dql' on hopper-medium (method) matches several" in text
    with pytest.raises(AnalysisError, match="matches several"):
        make_report(run, horizon=1200, reps=REPS)  # an explicit horizon makes every comparison strict


def test_missing_baseline_is_a_clear_error(small_run, capsys):
    with pytest.raises(MissingBaselineError, match=r"baseline dql/none has no evaluation rows; the run has \['dql/frozen', 'dql/joint'\]"):
        make_report(small_run, compare=["dql/frozen:dql/none"], reps=REPS)
    assert main(["report", str(small_run), "--compare", "edp/frozen:dql/joint"]) == 2
    assert "method edp/frozen has no evaluation rows" in capsys.readouterr().err
    assert not (small_run / "report").exists()


def test_mismatched_horizons_and_empty_run(small_run, tmp_path, capsys):
    with pytest.raises(HorizonMismatchError, match="horizon 2000 is beyond the last checkpoint"):
        make_report(small_run, horizon=2000, reps=REPS)
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_analysis_imports_neither_torch_nor_ray_nor_rl_core():
    code = ("import sys, analysis.report, sweeps.cmd_report; "
            "bad = [m for m in ('torch', 'ray', 'trainables', 'rl_core') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_d4rl_score_scale_leaves_out_tasks_without_it(tmp_path, capsys):
    run = write_run(tmp_path / "run", tasks=("hopper-medium", "walker2d-medium"))
    set_d4rl_scores(run, lambda task, s: 2 * s + 5 if task == "hopper-medium" else np.full(s.shape, np.nan))
    mdpt = make_report(run, tmp_path / "mdpt", reps=REPS)
    d4rl = make_report(run, tmp_path / "d4rl", reps=REPS, score_scale="d4rl")
    m, d = (pacsv.read_csv(md.parent / "comparisons.csv").to_pylist() for md in (mdpt, d4rl))
    assert [r["task"] for r in m] == ["hopper-medium", "walker2d-medium"]
    assert [r["task"] for r in d] == ["hopper-medium"]
    assert {r["score_scale"] for r in m} == {"mdpt"} and {r["score_scale"] for r in d} == {"d4rl"}
    for key in ("peak_m_x100", "peak_b_x100", "auc_m_x100", "early_b_x100", "final_m_x100"):  # a linear map: 2 x + 5
        assert d[0][key] == pytest.approx(2 * m[0][key] + 5), key
    assert d[0]["peak_gain_pct"] != pytest.approx(m[0]["peak_gain_pct"])
    var = {r["level"]: r for r in pacsv.read_csv(d4rl.parent / "variance.csv").to_pylist()}
    assert var["within-run"]["median_m_x100sq"] == pytest.approx(
        4 * pacsv.read_csv(mdpt.parent / "variance.csv").to_pylist()[0]["median_m_x100sq"])
    text = d4rl.read_text()
    headings = [ln for ln in text.splitlines() if ln.startswith("## ") and "(×100" not in ln]
    scored = [h for h in headings if h not in ("## Run status", "## Comparisons", "## Definitions")]
    assert scored and all(h.endswith("— normalized score (D4RL bullet scale)") for h in scored), headings
    assert "(mdpt scale)" not in text.replace("--score-scale mdpt` shows the mdpt scale", "")
    (note,) = [ln for ln in text.splitlines() if "walker2d-medium" in ln]
    assert note.startswith("Left out on the D4RL bullet scale: walker2d-medium: no D4RL bullet scale scores")
    assert "— normalized score (mdpt scale)" in mdpt.read_text()


def test_d4rl_score_scale_without_any_d4rl_score_is_one_clear_line(small_run, capsys):
    assert main(["report", str(small_run), "--score-scale", "d4rl"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mdpt: error: score scale 'd4rl': no task of this run has "
                                                   "D4RL bullet scale scores") and "--score-scale mdpt" in err
    assert main(["report", str(small_run), "--score-scale", "raw"]) == 2
    assert "allowed: ['mdpt', 'd4rl']" in capsys.readouterr().err
    assert not (small_run / "report").exists()


@pytest.mark.parametrize("scale,banner", [("smoke", True), ("quick", True), ("cpu", False), ("paper", False),
                                          (None, False)])
def test_a_smoke_runs_report_opens_with_the_banner(tmp_path, scale, banner):
    run = write_run(tmp_path / "run", steps=(400, 800, 1200), run_json={"sweep": "t", "scale": scale, "comparisons": []})
    text = make_report(run, reps=REPS).read_text()
    first = text.split("\n\n")[1]  # the paragraph right under the title
    said = "Its policies are not trained and its statistics are not evidence"
    assert (said in first) is banner and (said in text) is banner
    if banner:
        assert first.startswith("**Smoke run (budget `smoke`)") and "budget `smoke`." in text
        assert "<strong>Smoke run (budget <code>smoke</code>)" in (run / "report" / "report.html").read_text()
    elif scale:
        assert f"budget `{scale}`." in text


def test_a_smoke_run_of_fallen_policies_shows_no_statistics_of_noise(tmp_path):
    """The issue's double_guidance smoke run: every arm falls at once (-0.25, identical up to rounding), two
    checkpoints: no Levene F of 3e28, no "IQR ↓ 73.5 %", each refusal with its reason."""
    arms = (("dql", "joint", "self"), ("dql", "joint", "seed:+1"))
    run = write_run(tmp_path / "run", arms=arms, steps=(400, 800), episodes=3, noise=1e-14,
                    score=lambda *a: -0.25, run_json={"sweep": "double_guidance", "scale": "smoke",
                                                      "comparisons": []})
    text = make_report(run, reps=REPS).read_text()
    out = run / "report"
    assert "statistics are not evidence" in text.split("\n\n")[1]
    (comp,) = pacsv.read_csv(out / "comparisons.csv").to_pylist()
    assert comp["levene_w"] is None and comp["mwu_p"] is None and comp["seed_mwu_p"] is None  # NaN in the CSV
    # both arms are flagged degenerate (the report's degenerate-policy checks), which refuses every test first
    for test in ("levene", "mwu", "seed_mwu"):
        assert comp[f"{test}_reason"].startswith("degenerate arm: method dql/joint/seed:+1: stands still"), test
    for row in pacsv.read_csv(out / "variance.csv").to_pylist():
        for s in ("median", "iqr", "max", "cv"):
            assert row[f"{s}_reduction_pct"] is None and row[f"{s}_reason"], (row["level"], s)
    section = text.split("## Variance table")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| hopper-medium")]
    assert len(rows) == 2 and not any("%" in line for line in rows)  # no reduction of noise in any cell
    assert all(line.count("| not computable |") + line.count("| not computable") >= 4 for line in rows)
    assert "**Not computable** in" in text and "**Degenerate arm** in" in text
    assert "| not computable |" in text
