"""Generation on the tiny budget in the real PyBullet envs: D4RL-v2 semantics, levels, metadata, atomicity."""

import json

import numpy as np
import pytest

from rl_core.data.dataset import FIELDS, compute_fingerprint
from rl_core.data.envs import make_env
from rl_core.data.gen import budgets
from rl_core.data.gen.budgets import BUDGETS, Budget
from rl_core.data.gen.make import ensure_dataset, make_dataset
from rl_core.data.gen.policies import load_2017_expert
from rl_core.data.io import load_dataset
from rl_core.errors import DatasetError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for task in ("hopper-medium", "hopper-medium-replay", "hopper-expert", "hopper-medium-expert", "hopper-random"):
        make_dataset(task, budget="tiny", root=root, progress=None)
    return root


def test_2017_expert_is_a_real_expert():
    env, pol = make_env("hopper"), load_2017_expert("HopperBulletEnv-v0")
    obs, _ = env.reset(seed=0)
    ret = 0.0
    for _ in range(300):
        obs, r, term, trunc, _ = env.step(pol(obs))
        ret += r
        assert not term
    assert ret > 500  # still hopping after 300 steps; random actions fall within ~20
    with pytest.raises(DatasetError, match="no 2017 pybullet expert"):
        load_2017_expert("Walker2DBulletEnv-v0")


def test_rewards_and_terminals_replay_in_a_seeded_env(root):
    ds = load_dataset("hopper-medium", root=root)
    base = ds.metadata["behaviour"]["reset_seed_base"]
    ends = ds.episode_ends()
    env = make_env(ds.env_id)
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
    assert medium.n_transitions >= BUDGETS["tiny"].transitions and 0 < replay.n_transitions
    m = medium.metadata
    assert m["env_id"] == "HopperBulletEnv-v0" and m["task"] == "hopper-medium"
    assert m["budget"]["name"] == "tiny" and Budget.from_dict(m["budget"]["values"]) == BUDGETS["tiny"]
    assert m["fingerprint"] == compute_fingerprint(medium) and m["mdpt_version"]
    assert m["n_episodes"] == len(medium.episode_returns())
    assert m["return_mean"] == pytest.approx(medium.episode_returns().mean())
    assert m["behaviour"]["process"] == "dagger" and "2017" in m["behaviour"]["expert"]["source"]
    assert "random" in m["ref_min_source"] and "episodes" in m["ref_max_source"]
    for ds in (expert, replay, rand, mixed):  # one set of reference scores per env
        assert (ds.ref_min_score, ds.ref_max_score) == (medium.ref_min_score, medium.ref_max_score)
    assert expert.normalized_score(expert.episode_returns().mean()) > 50
    # medium-replay = the learner's own rollouts up to the medium snapshot
    proc = json.loads((root / "_policies" / "HopperBulletEnv-v0" / "tiny-seed0" / "process.json").read_text())
    snaps = proc["snapshots"][: proc["medium_index"] + 1]
    assert replay.metadata["n_episodes"] == sum(s["eval_episodes"] for s in snaps)


def test_regeneration_is_deterministic_and_reuses_policies(root, tmp_path):
    lines = []
    out = make_dataset("hopper-medium", budget="tiny", root=root, progress=lines.append)
    assert any("reusing" in line for line in lines) and not any("[dagger]" in line for line in lines)
    fresh = make_dataset("hopper-medium", budget="tiny", root=tmp_path, progress=None)
    assert load_dataset(str(fresh)).fingerprint == load_dataset(str(out)).fingerprint


def test_interrupted_generation_leaves_no_complete_looking_dataset(root, tmp_path):
    def stop_at_save(msg: str) -> None:
        if msg.startswith("[save]"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_dataset("hopper-random", budget="tiny", root=tmp_path, progress=stop_at_save)
    assert not (tmp_path / "hopper-random").exists()
    with pytest.raises(DatasetError, match="mdpt data make hopper-random"):
        load_dataset("hopper-random", root=tmp_path)

    def stop_in_training(msg: str) -> None:
        if msg.startswith("  round"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_dataset("hopper-expert", budget="tiny", root=tmp_path / "b", progress=stop_in_training)
    assert not list((tmp_path / "b" / "_policies" / "HopperBulletEnv-v0").iterdir())  # no half-trained process


def test_ensure_dataset_generates_once(tmp_path, monkeypatch):
    monkeypatch.setattr(budgets, "BUDGETS", {**BUDGETS, "quick": BUDGETS["tiny"]})
    ds = ensure_dataset("hopper-random", root=tmp_path)
    stamp = (tmp_path / "hopper-random" / "metadata.json").stat().st_mtime_ns
    assert ensure_dataset("hopper-random", root=tmp_path).fingerprint == ds.fingerprint
    assert (tmp_path / "hopper-random" / "metadata.json").stat().st_mtime_ns == stamp
    with pytest.raises(DatasetError, match="unknown task"):
        ensure_dataset("hopper-median", root=tmp_path)
    with pytest.raises(DatasetError, match="unknown budget 'huge'; allowed: tiny, quick"):
        make_dataset("hopper-random", budget="huge", root=tmp_path)


def test_sac_behaviour_process_for_envs_without_a_2017_expert(tmp_path):
    out = make_dataset("walker2d-medium", budget="tiny", root=tmp_path, progress=None)
    ds = load_dataset(str(out))
    b = ds.metadata["behaviour"]
    assert b["process"] == "sac" and b["snapshots"] == 2 and "SAC" in b["algorithm"]
    assert "gSDE" in b["actions"] and ds.obs_dim == 22 and ds.act_dim == 6
    replay = load_dataset(str(make_dataset("walker2d-medium-replay", budget="tiny", root=tmp_path, progress=None)))
    assert replay.n_transitions == b["medium_snapshot"]["step"]  # every SAC training step up to the snapshot
    flagged = np.flatnonzero(replay.terminals | replay.timeouts)
    inner = np.setdiff1d(np.arange(replay.n_transitions - 1), flagged)
    assert len(flagged) and len(inner) > 100  # the recorder's obs / next_obs line up within episodes
    np.testing.assert_array_equal(replay.next_observations[inner], replay.observations[inner + 1])
    assert not np.array_equal(replay.observations[flagged[0] + 1], replay.next_observations[flagged[0]])


@pytest.mark.parametrize("name", list(BUDGETS))
def test_budget_json_round_trip(name):
    b = BUDGETS[name]
    assert Budget.from_dict(json.loads(json.dumps(b.to_dict()))) == b
    with pytest.raises(DatasetError, match="fraction must be in"):
        Budget.from_dict({**b.to_dict(), "fraction": 1.5})
