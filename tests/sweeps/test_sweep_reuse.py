"""`mdpt sweep --reuse RUN_DIR` (sweeps/reuse.py) on the session's Ray: a tiny sweep A (a TD critic
pretrained, DQL joint + frozen, seed 0, snapshots at steps 200 and 400) is run once; sweeps B take its
finished trials instead of training them. Checks which trials are taken (same identity and training config;
frozen only with its pretraining trial), that a stage whose trials are all taken starts no Tune experiment,
that the taken files are A's (same inode), what the imported rows say, that own evaluations are copied when
B evaluates as A did and re-evaluated when it does not, and that recombination runs on the taken snapshots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rl_core.errors import ConfigError
from sweeps.reuse import check_source, plan
from sweeps.run import run_sweep
from tests.sweeps.sweep_helpers import tiny_spec, trials, tune_results
from trainables.ledger import self_eval_ledger
from trainables.results import read_table

pytestmark = pytest.mark.ray

BUDGET = {"steps": 400, "eval_every": 200, "episodes": 2, "pretrain_steps": 200, "batch_size": 32, "log_every": 100}
PRETRAINING = [{"algo": "dql", "kind": "td", "guidance_config": {"hidden": 32}}]
RECOMBINE = [{"name": "plus1", "kind": "double_guidance", "diffusion": {"algo": "dql", "train_guidance": "joint"},
              "guidance": {"trained": {"algo": "dql", "train_guidance": "joint"}}, "match": "step", "seed_shift": 1}]


def _spec(name: str, seeds=(0,), budget=None, **over) -> dict:
    b = dict(BUDGET, **(budget or {}))
    over = {"train_guidance": ["joint", "frozen"], **over}
    return tiny_spec(seeds=seeds, name=name, pretraining=PRETRAINING, budgets={"smoke": b, "paper": b}, **over)


@pytest.fixture(scope="module")
def run_a(ray_session, tiny_data_root, tmp_path_factory) -> Path:
    """Sweep A: pretrain dql_td s0, dql/joint s0, dql/frozen s0 (snapshots at steps 200 and 400)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MDPT_DATA", str(tiny_data_root))
        run_dir = tmp_path_factory.mktemp("reuse") / "a"
        run_sweep(_spec("tiny_a"), run_dir, printer=lambda s: None, report=False)
    assert {r["status"] for r in trials(run_dir).values()} == {"TERMINATED"} and len(trials(run_dir)) == 3
    return run_dir.resolve()


def _self_rows(run_dir: Path) -> list[dict]:
    return [r for r in read_table(run_dir, "evals").to_pylist() if r["infer_source"] == "self"]


def _same_files(run_a: Path, run_b: Path, tid: str, folder: str) -> None:
    """B holds A's files of trial ``tid`` (hard links: same inode, same bytes) and its training logs."""
    def names(run_dir: Path) -> list[str]:
        return sorted(p.name for p in (run_dir / folder / tid).glob("step_*.pt"))
    files = names(run_a)
    assert files and files == names(run_b)
    for f in files:
        a, b = run_a / folder / tid / f, run_b / folder / tid / f
        assert os.stat(a).st_ino == os.stat(b).st_ino and a.read_bytes() == b.read_bytes()
    a_train = {(r["step"], r["metric"]): r["value"] for r in read_table(run_a, "train").to_pylist()
               if r["trial_id"] == tid}
    b_train = [r for r in read_table(run_b, "train").to_pylist() if r["trial_id"] == tid]
    assert a_train and a_train == {(r["step"], r["metric"]): r["value"] for r in b_train}
    assert {r["sweep"] for r in b_train} == {"tiny_b"}


def _imported_rows(run_b: Path, sweep: str = "tiny_b") -> dict[str, dict]:
    """B's trials rows, checked: TERMINATED, B's sweep and runtime, frozen trials on B's copy of the artifact."""
    rows = trials(run_b)
    for row in rows.values():
        cfg = json.loads(row["config_json"])
        assert row["status"] == "TERMINATED" and row["sweep"] == sweep
        assert cfg["runtime"]["run_dir"] == str(run_b.resolve()) and cfg["runtime"]["sweep"] == sweep
        if row["train_guidance"] == "frozen":
            pre = next(t for t, r in rows.items() if r["stage"] == "pretrain" and r["seed"] == row["seed"])
            assert cfg["train"]["guidance_artifact"] == str(run_b.resolve() / "guidance" / pre / "final.pt")
            assert Path(cfg["train"]["guidance_artifact"]).is_file()
    return rows


def test_reused_trials_are_not_retrained_and_recombination_uses_them(run_a, tiny_data_root, tmp_path, monkeypatch):
    """B = A's joint arm + seed 1 + a double-guidance recombination: joint seed 0 is taken from A (Tune trains
    seed 1 only, with no pretraining stage), A's own evaluations are copied, and the recombination pairs the
    taken snapshots with the trained ones."""
    monkeypatch.setenv("MDPT_DATA", str(tiny_data_root))
    run_b, printed = tmp_path / "b", []
    summary = run_sweep(_spec("tiny_b", seeds=(0, 1), train_guidance=["joint"], recombination=RECOMBINE), run_b,
                        printer=printed.append, report=False, reuse=run_a)
    a_rows, b_rows = trials(run_a), _imported_rows(run_b)
    reused = {t for t, r in a_rows.items() if r["train_guidance"] == "joint"}
    assert len(reused) == 1 and reused < set(b_rows) and len(b_rows) == 2 and "pretrain" not in summary["stages"]
    assert summary["stages"]["train"] == dict(summary["stages"]["train"], trials=1, reused=1, errors=0)
    ran = set(tune_results(run_b, "train"))
    assert len(ran) == 1 and not ran & reused and b_rows[ran.pop()]["seed"] == 1  # Tune trained seed 1 only
    assert printed.count(f"[reuse] train: 1 of 2 trial(s) taken from {run_a} (snapshots, logs, 2 own evaluations); "
                         "1 retrained") == 1
    assert json.loads((run_b / "run.json").read_text())["reused"] == {"from": str(run_a), "trials": sorted(reused)}
    (tid,) = reused
    _same_files(run_a, run_b, tid, "snapshots")

    def episodes(rows):  # A's rows copied for the taken snapshots: the same returns, B's sweep name
        return {(r["step"], r["episode"]): r["return"] for r in rows if r["trial_id"] == tid}
    assert episodes(_self_rows(run_b)) == episodes(_self_rows(run_a)) != {}
    assert {r["sweep"] for r in _self_rows(run_b)} == {"tiny_b"}
    ledger = self_eval_ledger(run_b)
    assert len(ledger) == 4 and all(e.done for e in ledger) and summary["ledger"]["missing"] == []
    recombined = [r for r in read_table(run_b, "evals").to_pylist() if r["infer_source"] == "seed:+1"]
    assert sorted({(r["diffusion_seed"], r["guidance_seed"], r["step"]) for r in recombined}) == [
        (0, 1, 200), (0, 1, 400), (1, 0, 200), (1, 0, 400)]
    assert len(recombined) == 8 and summary["stages"]["recombine"]["failed"] == 0


def test_a_sweep_taking_every_trial_starts_no_tune_and_re_evaluates_what_it_evaluates_otherwise(
        run_a, tiny_data_root, tmp_path, monkeypatch):
    """B = A's trials (pretraining, joint, frozen) evaluated with 3 episodes at scale 50 (A: 2 at 100): no Tune
    experiment, A's files linked, no row of A's evaluations copied, every snapshot evaluated with B's inference."""
    monkeypatch.setenv("MDPT_DATA", str(tiny_data_root))
    run_b, printed = tmp_path / "b", []
    summary = run_sweep(_spec("tiny_b", budget={"episodes": 3},
                              eval={"max_episode_steps": 20, "inference": {"dql": {"n_candidates": 4, "scale": 50.0}}}),
                        run_b, printer=printed.append, report=False, reuse=run_a)
    assert not (run_b / "tune").exists()
    assert summary["stages"]["train"] == dict(summary["stages"]["train"], trials=0, reused=2, errors=0)
    assert summary["stages"]["pretrain"] == dict(summary["stages"]["pretrain"], trials=0, reused=1, errors=0)
    assert f"[reuse] train: 2 of 2 trial(s) taken from {run_a} (snapshots, logs, 0 own evaluations); 0 retrained" \
        in printed
    assert f"[reuse] pretrain: 1 of 1 trial(s) taken from {run_a} (artifacts, logs); 0 retrained" in printed
    b_rows = _imported_rows(run_b)
    assert set(b_rows) == set(trials(run_a))
    for tid, row in b_rows.items():
        _same_files(run_a, run_b, tid, "guidance" if row["stage"] == "pretrain" else "snapshots")
        if row["stage"] == "train":
            cfg = json.loads(row["config_json"])
            assert (cfg["eval"]["episodes"], cfg["eval"]["inference"]["scale"]) == (3, 50.0)
    per_snapshot: dict[tuple, list] = {}
    for r in _self_rows(run_b):
        per_snapshot.setdefault((r["trial_id"], r["step"]), []).append(r)
    assert len(per_snapshot) == 4
    for group in per_snapshot.values():
        assert len(group) == 3 and {(r["infer_scale"], r["sweep"]) for r in group} == {(50.0, "tiny_b")}
    assert summary["ledger"]["missing"] == []


def test_what_matches(run_a, tiny_data_root, monkeypatch):
    """Taken: same identity and training config; eval does not count (but decides whether rows are copied).
    Not taken: more steps; a frozen trial whose pretraining differs (its pretraining is retrained)."""
    monkeypatch.setenv("MDPT_DATA", str(tiny_data_root))
    same = plan(_spec("x"), run_a)
    assert (len(same["pretrain"]), len(same["train"])) == (1, 2) and all(m.same_eval for m in same["train"])
    other_eval = plan(_spec("x", budget={"episodes": 3}), run_a)
    assert len(other_eval["train"]) == 2 and not any(m.same_eval for m in other_eval["train"])
    assert plan(_spec("x", budget={"steps": 600}), run_a)["train"] == []
    other_pre = plan(_spec("x", budget={"pretrain_steps": 400}), run_a)
    assert other_pre["pretrain"] == [] and [m.target.identity.train_guidance for m in other_pre["train"]] == ["joint"]
    assert plan(_spec("x", seeds=(1,)), run_a) == {"pretrain": [], "train": []}


def test_bad_reuse_directories_fail_in_one_line(run_a, tmp_path):
    with pytest.raises(ConfigError, match="no such directory"):
        check_source(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        check_source(tmp_path / "file", tmp_path / "out")
    with pytest.raises(ConfigError, match="no spec.yaml there"):
        check_source(tmp_path, tmp_path / "out")
    with pytest.raises(ConfigError, match="own output directory"):
        check_source(run_a, run_a)
    with pytest.raises(ConfigError, match="cannot be combined with --resume"):
        run_sweep(_spec("x"), tmp_path / "out", resume=True, reuse=run_a)


def test_not_taken_other_data_other_device_or_missing_files(run_a, tiny_data_root, tmp_path, monkeypatch):
    """A source trial trained on another dataset (fingerprint), on CUDA for a CPU sweep, or whose files are not
    there (a copy of the run holding only results/ and spec.yaml) is trained again, not taken."""
    import shutil

    monkeypatch.setenv("MDPT_DATA", str(tiny_data_root))
    assert plan(_spec("x"), run_a, {"hopper-medium": "0123456789abcdef"}) == {"pretrain": [], "train": []}
    gpu = _spec("x", resources={"trial": {"cpu": 1, "gpu": 0.5}, "evaluators": {"count": 1, "cpu": 1}})
    assert plan(gpu, run_a) == {"pretrain": [], "train": []}
    results_only = tmp_path / "results_only"
    shutil.copytree(run_a / "results", results_only / "results")
    shutil.copy(run_a / "spec.yaml", results_only / "spec.yaml")
    assert plan(_spec("x"), check_source(results_only, tmp_path / "out")) == {"pretrain": [], "train": []}
    partial = tmp_path / "partial"  # the last snapshot of every training trial missing: its pretraining still taken
    shutil.copytree(run_a, partial)
    for f in (partial / "snapshots").glob("*/step_00000400.pt"):
        f.unlink()
    got = plan(_spec("x"), partial)
    assert (len(got["pretrain"]), got["train"]) == (1, [])


def test_an_interrupted_import_is_finished_on_resume(run_a, tiny_data_root, tmp_path, monkeypatch):
    """A driver that died while importing left run.json's record and some trials without a row: resuming
    imports them (no retraining beside their copied rows); the imported rows start with no failures."""
    from sweeps.reuse import finish_import, import_trials
    from sweeps.run import write_run_dir

    monkeypatch.setenv("MDPT_DATA", str(tiny_data_root))
    spec, run_b = _spec("tiny_b"), tmp_path / "b"
    write_run_dir(spec, run_b)
    import_trials(spec, run_b, run_a, str(tiny_data_root), printer=lambda s: None)
    rows = trials(run_b)
    assert len(rows) == 3 and {(r["num_failures"], r["restored_from"]) for r in rows.values()} == {(0, -1)}
    lost = next(t for t, r in rows.items() if r["train_guidance"] == "frozen")
    (run_b / "results" / "trials" / f"{lost}.parquet").unlink()  # died before its row was written
    printed: list[str] = []
    assert finish_import(spec, run_b, str(tiny_data_root), printed.append) == 1
    assert set(trials(run_b)) == set(rows) and printed[0].startswith("[reuse] finishing an interrupted import: 1")
    assert finish_import(spec, run_b, str(tiny_data_root), printed.append) == 0  # complete: nothing to do
