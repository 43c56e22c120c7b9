"""Which critic an evaluation acted with, by value: the ``guidance_file`` column of the evals contract,
and the plugged-in critic (not the snapshot's own) deciding the actions and so the rows.

* ``guidance_file`` is "" for the snapshot's own critic, else the plugged-in file, relative to the run
  directory when inside it; older tables (without the column) read as null on both sides of the contract;
* ``make_actor(snapshot, ..., guidance=other)`` selects with ``other`` although the snapshot carries a
  critic (a known quadratic critic: the chosen actions are the best candidates under it);
* ``run_request`` with a pretrained artifact or another snapshot's critic writes rows that differ from
  the own-critic rows and equal an evaluation with that critic plugged in by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from analysis.load import load_run
from rl_core.evaluation import EpisodeResult, EvalJob, evaluate
from rl_core.guidance import load_artifact
from rl_core.inference import InferenceConfig
from rl_core.snapshot import load_snapshot, make_actor, save_snapshot
from rl_core.types import Normalizer
from tests.analysis.conftest import write_run
from tests.rl_core.algo_tester import gen, make_algo, tiny_buffer
from tests.rl_core.test_actor_guidance import QuadraticGuidance
from trainables.evaluator import eval_request, run_request
from trainables.results import EvalLabels, ResultStore, eval_rows, guidance_file, read_table

INFERENCE = {"method": "argmax", "scale": None, "n_candidates": 8, "temperature": 0.5, "use_advantage": None,
             "q_target": True, "swg_select": "q"}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----- the column ------------------------------------------------------------------------------------
def test_guidance_file_is_empty_for_the_own_critic_and_relative_inside_the_run_dir(tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert guidance_file(run, None) == ""
    assert guidance_file(run, run / "guidance" / "t1" / "final.pt") == "guidance/t1/final.pt"
    assert guidance_file(run, str(run / "snapshots" / "t2" / "step_00000400.pt")) == "snapshots/t2/step_00000400.pt"
    assert guidance_file(run, tmp_path / "elsewhere" / "g.pt") == str(tmp_path / "elsewhere" / "g.pt")
    monkeypatch.chdir(tmp_path)  # relative run directory and path
    assert guidance_file("run", "run/guidance/t1/final.pt") == "guidance/t1/final.pt"
    assert guidance_file("run", "other/g.pt") == str(tmp_path / "other" / "g.pt")


def test_eval_rows_record_the_guidance_file_and_round_trip(tmp_path):
    labels = EvalLabels(sweep="s", trial_id="t1", task="hopper-medium", algo="dql", train_guidance="joint",
                        infer_source="algo:idql", diffusion_seed=0, guidance_seed=4, step=400)
    results = [EpisodeResult(e, 10 + e, 100.0 + e, 3.0 + e, 50) for e in range(2)]
    artifact = tmp_path / "guidance" / "p4" / "final.pt"
    rows = eval_rows(labels, INFERENCE, results, 1.5, guidance=str(artifact), run_dir=tmp_path)
    assert [r["guidance_file"] for r in rows] == ["guidance/p4/final.pt"] * 2
    own = eval_rows(labels, INFERENCE, results, 1.5, guidance=None, run_dir=tmp_path)
    assert {r["guidance_file"] for r in own} == {""}
    ResultStore(tmp_path).write_eval_job(rows)
    assert read_table(tmp_path, "evals").column("guidance_file").to_pylist() == ["guidance/p4/final.pt"] * 2


def test_tables_without_the_column_read_it_as_null_on_both_sides(tmp_path):
    run = write_run(tmp_path / "run", arms=(("dql", "joint", "self"), ("dql", "joint", "algo:idql")), seeds=(0, 1),
                    steps=(400, 800), episodes=2)
    files = sorted((run / "results" / "evals").rglob("*.parquet"))
    new = load_run(run).evals.column("guidance_file").to_pylist()
    assert set(new) == {"", "guidance/algo:idql/final.pt"}
    old = files[0]
    pq.write_table(pq.read_table(old).drop_columns(["guidance_file"]), old)  # one file of an older mdpt
    n_old = pq.read_table(old).num_rows
    for column in (read_table(run, "evals").column("guidance_file"), load_run(run).evals.column("guidance_file")):
        values = column.to_pylist()
        assert values.count(None) == n_old and len(values) == len(new)
    for f in files[1:]:  # only older files
        pq.write_table(pq.read_table(f).drop_columns(["guidance_file"]), f)
    assert set(load_run(run).evals.column("guidance_file").to_pylist()) == {None}


# ----- the actor acts with the plugged-in critic -------------------------------------------------------
@pytest.mark.parametrize("name", ["dql", "edp"])
def test_make_actor_selects_with_the_plugged_in_critic_not_the_snapshots_own(name, tmp_path):
    buf, ds = tiny_buffer()
    algo, g = make_algo(name, "joint"), gen(0)
    for _ in range(3):
        algo.update(buf.sample(8, g), g)
    path = save_snapshot(tmp_path / "s.pt", algo, step=3, config={}, normalizer=Normalizer.identity(ds.obs_dim),
                         dataset_meta={"fingerprint": ds.fingerprint}, guidance_meta={"kind": algo.guidance.kind})
    snap = load_snapshot(path)
    assert snap.guidance is not None  # it carries its own critic
    inf = InferenceConfig.from_dict({**INFERENCE, "n_candidates": 16, "temperature": 1.0})
    obs = np.repeat(ds.observations[:20], 3, axis=0)
    own = make_actor(snap, inf).act(obs, gen(5))
    for c in ((0.8, -0.8), (-0.8, 0.8)):
        known = QuadraticGuidance(c)
        plugged = make_actor(snap, inf, guidance=known).act(obs, gen(5))  # the same candidates (same generator)
        q = lambda a: known.q(torch.as_tensor(obs), torch.as_tensor(a)).numpy()  # noqa: E731
        # argmax under the plugged critic: never worse than the own critic's pick, better on most states
        assert np.all(q(plugged) >= q(own))
        assert np.mean(q(plugged) > q(own)) > 0.5, (c, q(plugged).mean(), q(own).mean())
    other = make_actor(snap, inf, guidance=QuadraticGuidance((0.8, -0.8))).act(obs, gen(5))
    flipped = make_actor(snap, inf, guidance=QuadraticGuidance((-0.8, 0.8))).act(obs, gen(5))
    assert not np.array_equal(other, flipped)


# ----- recombined rows on a real snapshot, env and artifact ------------------------------------------------
@pytest.fixture(scope="module")
def run(tiny_data_root, tmp_path_factory):
    """A run directory with two DQL joint snapshots (seeds 0 and 1, 20 steps each) and a pretrained TD
    artifact (20 steps) on the tiny hopper dataset."""
    from rl_core.data.io import load_dataset
    from rl_core.train import PretrainConfig, TrainConfig, run_pretraining, run_training

    ds = load_dataset("hopper-medium", root=tiny_data_root)
    run_dir = tmp_path_factory.mktemp("run")
    for seed in (0, 1):
        cfg = TrainConfig(task="hopper-medium", algo="dql", seed=seed, steps=20, batch_size=32, eval_every=20,
                          log_every=20, threads=1, guidance_config={"hidden": 32},
                          algo_config={"hidden": 32, "n_layers": 2, "emb_dim": 8, "ema_start": 0})
        run_training(cfg, ds, workdir=run_dir / "snapshots" / f"t{seed}")
    pre = PretrainConfig(task="hopper-medium", kind="td", guidance_config={"hidden": 32}, seed=4, steps=20,
                         batch_size=32, log_every=20, threads=1)
    run_pretraining(pre, ds, workdir=run_dir / "guidance" / "p4")
    return run_dir


def _request(run_dir, source: str, guidance=None, fmt: str = "artifact") -> dict:
    job = EvalJob(snapshot=str(run_dir / "snapshots" / "t0" / "step_00000020.pt"), inference=INFERENCE, episodes=2,
                  eval_seed=11, max_steps=15, guidance=None if guidance is None else str(guidance),
                  guidance_format=fmt)
    labels = EvalLabels(sweep="s", trial_id="t0", task="hopper-medium", algo="dql", train_guidance="joint",
                        infer_source=source, diffusion_seed=0, guidance_seed=0 if guidance is None else 4, step=20)
    return eval_request(run_dir, job, labels)


def _rows(path) -> list[dict]:
    return sorted(pq.read_table(path).to_pylist(), key=lambda r: r["episode"])


def _by_hand(snapshot, guidance, normalizer) -> list[float]:
    """Returns of the same episodes acted by make_actor with ``guidance`` plugged in by hand."""
    snap = load_snapshot(snapshot)
    actor = make_actor(snap, InferenceConfig.from_dict(INFERENCE), guidance=guidance, guidance_normalizer=normalizer)
    meta = snap.dataset_meta
    return [r.ret for r in evaluate(actor, meta["env_id"], episodes=2, seed=11, max_steps=15,
                                    ref_min=meta["ref_min_score"], ref_max=meta["ref_max_score"])]


def test_recombined_rows_use_the_plugged_in_critic_and_record_it(run):
    own = _rows(run_request(_request(run, "self"))[0])
    artifact = run / "guidance" / "p4" / "final.pt"
    art = _rows(run_request(_request(run, "algo:pre", artifact))[0])
    other_snapshot = run / "snapshots" / "t1" / "step_00000020.pt"
    dbl = _rows(run_request(_request(run, "seed:+1", other_snapshot, "snapshot"))[0])
    assert [r["guidance_file"] for r in own] == ["", ""]
    assert [r["guidance_file"] for r in art] == ["guidance/p4/final.pt"] * 2
    assert [r["guidance_file"] for r in dbl] == ["snapshots/t1/step_00000020.pt"] * 2
    assert [r["eval_seed"] for r in own] == [r["eval_seed"] for r in art] == [r["eval_seed"] for r in dbl]
    returns = {k: [r["return"] for r in rows] for k, rows in (("own", own), ("art", art), ("dbl", dbl))}
    assert all(math.isfinite(x) for v in returns.values() for x in v)
    assert returns["art"] != returns["own"] and returns["dbl"] != returns["own"], returns  # the critics differ
    snapshot = run / "snapshots" / "t0" / "step_00000020.pt"
    critic, meta = load_artifact(artifact)
    assert returns["art"] == _by_hand(snapshot, critic, Normalizer.from_dict(meta["normalizer"]))
    other = load_snapshot(other_snapshot)
    assert returns["dbl"] == _by_hand(snapshot, other.guidance, other.normalizer)
    assert returns["own"] == _by_hand(snapshot, None, None)
