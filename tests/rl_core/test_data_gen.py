"""Generation from the shipped policies on the tiny budget in the real PyBullet envs: D4RL-v2 semantics, levels,
metadata, atomicity and reproducibility (same task, budget and seed -> same fingerprint)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rl_core.data.dataset import FIELDS, compute_fingerprint
from rl_core.data.envs import make_env
from rl_core.data.gen import budgets
from rl_core.data.gen.budgets import BUDGETS, Budget
from rl_core.data.gen.make import ensure_dataset, make_dataset, make_datasets
from rl_core.data.gen.policies import MLPPolicy, dense, tanh
from rl_core.data.gen.policyset import load_policy_set
from rl_core.data.io import load_dataset
from rl_core.errors import ConfigError, DatasetError

ROOT = Path(__file__).resolve().parents[2]
HOPPER = ("hopper-medium", "hopper-medium-replay", "hopper-expert", "hopper-medium-expert", "hopper-random")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for task in HOPPER:
        make_dataset(task, budget="tiny", root=root, progress=None)
    return root


def test_rewards_and_terminals_replay_in_a_seeded_env(root):
    ds = load_dataset("hopper-medium", root=root)
    base = ds.metadata["behaviour"]["reset_seed_base"]
    ends = ds.episode_ends()
    env = make_env(ds.env_id)
    env.reset()  # PyBullet builds the scene on the first reset; generation resets every env once first too
    start = 0
    for j, end in enumerate(ends[:3]):
        obs, _ = env.reset(seed=base + j)
        for i in range(start, end + 1):
            np.testing.assert_array_equal(obs, ds.observations[i])
            obs, r, term, trunc, _ = env.step(ds.actions[i])
            assert ds.rewards[i] == np.float32(r)  # rewards[i] = r(s_i, a_i)
            np.testing.assert_array_equal(obs, ds.next_observations[i])
            assert ds.terminals[i] == term and ds.timeouts[i] == (trunc and not term)
        assert term or trunc  # datasets hold whole episodes
        start = end + 1


def test_d4rl_semantics_within_and_between_episodes(root):
    ds = load_dataset("hopper-expert", root=root)
    ends = ds.episode_ends()
    assert ends[-1] == ds.n_transitions - 1
    flags = ds.terminals | ds.timeouts
    np.testing.assert_array_equal(np.flatnonzero(flags), ends)  # flags exactly at episode ends
    assert not (ds.terminals & ds.timeouts).any()
    inner = np.setdiff1d(np.arange(ds.n_transitions - 1), ends)
    np.testing.assert_array_equal(ds.next_observations[inner], ds.observations[inner + 1])
    assert np.abs(ds.actions).max() <= 1.0
    assert ds.timeouts.any()  # the expert survives to the 1000-step limit: a timeout, not a terminal


def test_levels_and_metadata(root):
    medium, expert = load_dataset("hopper-medium", root=root), load_dataset("hopper-expert", root=root)
    replay, rand = load_dataset("hopper-medium-replay", root=root), load_dataset("hopper-random", root=root)
    mixed = load_dataset("hopper-medium-expert", root=root)
    for k in FIELDS:  # medium-expert = medium followed by expert
        np.testing.assert_array_equal(getattr(mixed, k), np.concatenate([getattr(medium, k), getattr(expert, k)]))
    assert rand.episode_returns().mean() < medium.episode_returns().mean() < expert.episode_returns().mean()
    assert medium.n_transitions >= BUDGETS["tiny"].transitions
    assert BUDGETS["tiny"].replay_transitions <= replay.n_transitions < BUDGETS["tiny"].replay_transitions + 20_000
    pset = load_policy_set("hopper")
    m = medium.metadata
    assert m["env_id"] == "HopperBulletEnv-v0" and m["task"] == "hopper-medium" and m["level"] == "medium"
    assert m["budget"]["name"] == "tiny" and Budget.from_dict(m["budget"]["values"]) == BUDGETS["tiny"]
    assert m["fingerprint"] == compute_fingerprint(medium) and m["mdpt_version"]
    assert m["n_episodes"] == len(medium.episode_returns())
    assert m["return_mean"] == pytest.approx(medium.episode_returns().mean())
    b = m["behaviour"]
    assert b["policies"] == "shipped" and b["policies_fingerprint"] == pset.fingerprint
    assert b["medium_round"] == pset.info["medium"]["round"] and b["action_noise"] == pset.action_noise
    assert "2017" in b["expert"] and "DAgger" in b["learning_process"]
    assert "random" in m["ref_min_source"] and "episodes" in m["ref_max_source"]
    for ds in (expert, replay, rand, mixed):  # one set of reference scores per env: the policy set's
        assert (ds.ref_min_score, ds.ref_max_score) == (pset.references["ref_min_score"],
                                                        pset.references["ref_max_score"])
    assert expert.normalized_score(expert.episode_returns().mean()) > 80
    # medium-replay: every shipped learning-process snapshot in order, the budget spread evenly over them
    rounds = replay.metadata["behaviour"]["rounds"]
    assert [r["round"] for r in rounds] == pset.replay_rounds and rounds[-1]["round"] == b["medium_round"]
    assert sum(r["transitions"] for r in rounds) == replay.n_transitions
    assert sum(r["episodes"] for r in rounds) == len(replay.episode_returns())


def test_same_task_budget_seed_same_data_in_any_root_env_count_and_thread_count(root, tmp_path):
    """Two data roots, 1 vs 8 envs in lockstep, and a fresh process with other BLAS/OpenMP thread counts:
    one fingerprint. Another seed gives other data."""
    ref = load_dataset("hopper-medium", root=root).fingerprint
    one = make_dataset("hopper-medium", budget="tiny", root=tmp_path / "a", n_envs=1, progress=None)
    assert load_dataset(str(one)).fingerprint == ref
    code = ("from rl_core.data.gen.make import make_dataset; from rl_core.data.io import load_dataset; "
            f"print(load_dataset(str(make_dataset('hopper-medium', 'tiny', root='{tmp_path / 'b'}', n_envs=3, "
            "progress=None))).fingerprint)")
    env = {**os.environ, "OMP_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "3", "MKL_NUM_THREADS": "3",
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == ref
    other = make_dataset("hopper-medium", budget="tiny", seed=1, root=tmp_path / "c", progress=None)
    assert load_dataset(str(other)).fingerprint != ref


def test_policy_inference_is_row_independent_and_matches_numpy():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((9, 26)), rng.standard_normal((26, 64)), rng.standard_normal(64)
    np.testing.assert_allclose(dense(x, w, b), x @ w + b, rtol=0, atol=1e-12)
    grid = np.linspace(-30, 30, 20001)
    np.testing.assert_allclose(tanh(grid), np.tanh(grid), rtol=0, atol=1e-15)
    for env in ("hopper", "walker2d"):
        pset = load_policy_set(env)
        for which in ("expert", "medium", pset.replay_rounds[0]):
            pol = pset.policy(which)
            obs = rng.uniform(-2, 2, (7, pol.obs_dim)).astype(np.float32)
            batch = pol(obs)
            assert batch.shape == (7, pol.act_dim) and np.abs(batch).max() <= 1.0
            for i in range(7):  # a row's action does not depend on the rest of the batch
                assert np.array_equal(pol(obs[i]), batch[i])
                assert np.array_equal(pol(obs[i:i + 3])[0], batch[i])


def test_policy_file_round_trip(tmp_path):
    pol = MLPPolicy([(np.ones((3, 4)), np.zeros(4)), (np.full((4, 2), 0.25), np.ones(2))], output="tanh", mean_clip=2)
    pol.save(tmp_path / "p.npz")
    back = MLPPolicy.load(tmp_path / "p.npz")
    assert back.output == "tanh" and back.mean_clip == 2.0
    obs = np.array([0.1, -0.2, 0.3], np.float32)
    assert np.array_equal(back(obs), pol(obs)) and back(obs)[0] == pytest.approx(np.tanh(1.2))  # 4 * relu(0.2) * 0.25 + 1
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(DatasetError, match="bad.npz: not a policy weight file"):
        MLPPolicy.load(tmp_path / "bad.npz")


def test_interrupted_generation_leaves_no_complete_looking_dataset(tmp_path, monkeypatch):
    import rl_core.data.gen.make as make

    def boom(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(make, "save_dataset", boom)
    with pytest.raises(KeyboardInterrupt):
        make_dataset("hopper-random", budget="tiny", root=tmp_path, progress=None)
    assert not (tmp_path / "hopper-random").exists()
    with pytest.raises(DatasetError, match="mdpt data make hopper-random"):
        load_dataset("hopper-random", root=tmp_path)


def test_ensure_dataset_and_make_datasets_skip_current_datasets(tmp_path, monkeypatch):
    monkeypatch.setattr(budgets, "BUDGETS", {**BUDGETS, "quick": BUDGETS["tiny"]})
    ds = ensure_dataset("hopper-random", root=tmp_path)
    stamp = (tmp_path / "hopper-random" / "metadata.json").stat().st_mtime_ns
    assert ensure_dataset("hopper-random", root=tmp_path).fingerprint == ds.fingerprint
    lines: list[str] = []
    summary = make_datasets(["hopper-random"], root=tmp_path, progress=lines.append)
    assert summary["skipped"] == ["hopper-random"] and summary["made"] == []
    assert (tmp_path / "hopper-random" / "metadata.json").stat().st_mtime_ns == stamp
    with pytest.raises(DatasetError, match="unknown task"):
        ensure_dataset("hopper-median", root=tmp_path)
    with pytest.raises(DatasetError, match="unknown budget 'huge'; allowed: tiny, quick"):
        make_dataset("hopper-random", budget="huge", root=tmp_path)


def test_check_datasets_makes_missing_known_tasks(tmp_path, monkeypatch):
    from sweeps.run import check_datasets

    monkeypatch.setattr(budgets, "BUDGETS", {**BUDGETS, "quick": BUDGETS["tiny"]})
    check_datasets({"tasks": ["ant-random"]}, str(tmp_path))
    ds = load_dataset("ant-random", root=tmp_path)
    assert ds.metadata["budget"]["name"] == "tiny" and ds.obs_dim == 28


@pytest.mark.parametrize("name", list(BUDGETS))
def test_budget_json_round_trip(name):
    b = BUDGETS[name]
    assert Budget.from_dict(json.loads(json.dumps(b.to_dict()))) == b
    with pytest.raises(ConfigError, match="unknown field"):
        Budget.from_dict({**b.to_dict(), "fraction": 0.4})
    with pytest.raises(DatasetError, match="must be >= 1"):
        Budget.from_dict({**b.to_dict(), "transitions": 0})


def test_reference_lines_stored_with_the_dataset_and_measured_alike_when_missing(root):
    """make_dataset stores the random and stand-still lines (fixed seed and episodes, the env's step cap); a
    dataset without them (older, imported) gets the same numbers measured from the env; the dataset line is
    the behaviour data's own episodes."""
    from rl_core.data.gen.collect import ENV_STEP_LIMIT, REFERENCE_EPISODES, REFERENCE_SEED
    from rl_core.data.gen.make import dataset_reference_lines

    ds = load_dataset("hopper-medium", root=root)
    stored = ds.metadata["reference_lines"]
    assert (stored["seed"], stored["episodes"], stored["max_episode_steps"]) == (REFERENCE_SEED, REFERENCE_EPISODES,
                                                                                 ENV_STEP_LIMIT)
    for kind in ("random", "stand_still"):
        line = stored[kind]
        assert line["episodes"] == REFERENCE_EPISODES and 1 <= line["length_mean"] <= ENV_STEP_LIMIT
        assert np.isfinite(line["return_mean"]) and line["return_std"] >= 0
    # hopper: the zero action falls over within tens of steps; uniform random actions fall faster
    assert stored["random"]["length_mean"] < stored["stand_still"]["length_mean"] < 200
    lines = dataset_reference_lines(ds)
    assert lines["source"].startswith("stored") and lines["random"] == stored["random"]
    assert lines["dataset"]["return_mean"] == pytest.approx(ds.metadata["return_mean"])
    assert lines["dataset"]["episodes"] == ds.metadata["n_episodes"]
    assert lines["dataset"]["length_mean"] == pytest.approx(ds.n_transitions / ds.metadata["n_episodes"])
    del ds.metadata["reference_lines"]  # as a dataset made before mdpt stored them
    measured = dataset_reference_lines(ds)
    assert measured["source"].startswith("measured")
    assert {k: measured[k] for k in ("random", "stand_still", "dataset")} == \
        {k: lines[k] for k in ("random", "stand_still", "dataset")}
    short = dataset_reference_lines(load_dataset("hopper-medium", root=root), max_episode_steps=20)
    assert short["source"].startswith("measured") and short["max_episode_steps"] == 20
    assert short["stand_still"]["length_mean"] <= 20
    # no_progress: computed from the cap (alive bonus 1 per step), never stored with the dataset
    assert "no_progress" not in stored
    assert lines["no_progress"]["return_mean"] == measured["no_progress"]["return_mean"] == 1000.0
    assert (short["no_progress"]["return_mean"], short["no_progress"]["length_mean"]) == (20.0, 20.0)
    assert short["no_progress"]["return_std"] == 0.0 and short["no_progress"]["episodes"] == 0
    # the zero action falls long before the cap: its return is far below the no-forward-progress bound
    assert lines["stand_still"]["return_mean"] < 0.2 * lines["no_progress"]["return_mean"]


def test_no_progress_line_only_for_envs_with_a_known_alive_bonus(root):
    """The no_progress line needs the env's alive bonus: a dataset (stored lines) of another env has none, and
    one without stored lines fails with one line naming the env."""
    from rl_core.data.envs import ALIVE_BONUS, ENV_DIMS
    from rl_core.data.gen.make import dataset_reference_lines

    assert set(ALIVE_BONUS) == set(ENV_DIMS) and set(ALIVE_BONUS.values()) == {1.0}
    ds = load_dataset("hopper-medium", root=root)
    ds.metadata["env_id"] = "SwimmerBulletEnv-v0"
    lines = dataset_reference_lines(ds)
    assert "no_progress" not in lines and {"random", "stand_still", "dataset"} <= set(lines)
    del ds.metadata["reference_lines"]
    with pytest.raises(DatasetError, match="env_id 'SwimmerBulletEnv-v0' is not an env mdpt runs"):
        dataset_reference_lines(ds)


def test_reference_rows_round_trip_through_the_results_table(root, tmp_path):
    """record_references writes four rows per task that read back with their normalized scores; the no_progress
    row is the alive bonus x the cap (computed: 0 episodes, seed -1, std 0)."""
    import pyarrow.parquet as pq

    from rl_core.config import D4RL_BULLET_REF_SCORES
    from trainables.results import REFERENCES_SCHEMA, read_table, record_references

    ds = load_dataset("hopper-medium", root=root)
    path = record_references(tmp_path, "hopper-medium", ds, 1000)
    assert pq.read_schema(path).names == REFERENCES_SCHEMA.names
    rows = {r["reference"]: r for r in read_table(tmp_path, "references").to_pylist()}
    assert set(rows) == {"random", "stand_still", "no_progress", "dataset"}
    lines = ds.metadata["reference_lines"]
    for kind in ("random", "stand_still"):
        r = rows[kind]
        assert r["return_mean"] == lines[kind]["return_mean"] and r["episodes"] == lines[kind]["episodes"]
        assert r["seed"] == lines["seed"] and r["max_episode_steps"] == 1000 and r["source"].startswith("stored")
    d4rl = D4RL_BULLET_REF_SCORES["HopperBulletEnv-v0"]
    for r in rows.values():
        assert r["task"] == "hopper-medium" and r["env_id"] == "HopperBulletEnv-v0"
        assert r["normalized_score"] == pytest.approx(float(ds.normalized_score(r["return_mean"])))
        assert r["normalized_score_d4rl"] == pytest.approx(100 * (r["return_mean"] - d4rl[0]) / (d4rl[1] - d4rl[0]))
    assert rows["dataset"]["return_mean"] == pytest.approx(ds.metadata["return_mean"])
    assert rows["random"]["normalized_score"] == pytest.approx(0.0, abs=5.0)  # the random policy is mdpt's 0
    npr = rows["no_progress"]
    assert (npr["return_mean"], npr["return_std"], npr["length_mean"], npr["episodes"], npr["seed"]) == \
        (1000.0, 0.0, 1000.0, 0, -1)
    assert npr["source"].startswith("computed") and npr["max_episode_steps"] == 1000
    # a short cap: return = the cap, scored with the dataset's ref_min / ref_max
    short = tmp_path / "short"
    record_references(short, "hopper-medium", ds, 50)
    rows = {r["reference"]: r for r in read_table(short, "references").to_pylist()}
    npr = rows["no_progress"]
    assert (npr["return_mean"], npr["length_mean"], npr["max_episode_steps"]) == (50.0, 50.0, 50)
    lo, hi = ds.ref_min_score, ds.ref_max_score
    assert npr["normalized_score"] == pytest.approx(100 * (50 - lo) / (hi - lo))
    assert rows["stand_still"]["max_episode_steps"] == 50 and rows["stand_still"]["length_mean"] <= 50
