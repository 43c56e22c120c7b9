"""The shipped behaviour policies: provenance, pinned short-rollout fingerprints (any change in generation shows
here), the medium band, and retraining a policy set (tiny settings)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rl_core.data.dataset import OfflineDataset, compute_fingerprint, normalized_score
from rl_core.data.envs import ENV_DIMS, TASK_ENVS, make_env
from rl_core.data.gen.collect import rollout
from rl_core.data.gen.dagger import DaggerConfig
from rl_core.data.gen.make import make_dataset
from rl_core.data.gen.policyset import SHIPPED, SelectionConfig, load_policy_set, train_policies
from rl_core.data.io import load_dataset
from rl_core.errors import DatasetError

ENVS = tuple(TASK_ENVS)
# sha256[:16] of 2 episodes (25-step limit, 2 envs in lockstep, seed 0) of each policy with the datasets' noise.
# A change here means `mdpt data make` makes other data: update the pins only on purpose, and say so.
PINNED: dict[str, dict[str, str]] = {
    "hopper": {"random": "0fbcf7442ec90dde", "expert": "0d1ed314aef2027b", "medium": "041aefef79a7d5af",
               "replay0": "677498dd764cdb9e"},
    "halfcheetah": {"random": "eb7e3f16eef82286", "expert": "e438e99d434b8947", "medium": "11689c7b4824fb2d",
                    "replay0": "9331abfb7745249b"},
    "walker2d": {"random": "c8e54aa7588f4706", "expert": "7feaa1edbe23031d", "medium": "5b51acea3df7b7ad",
                 "replay0": "98b0b6314ef65003"},
    "ant": {"random": "0476f1d408e9b71b", "expert": "bae47be80e7be8a1", "medium": "e420a546f481a20c",
            "replay0": "065ebf00e179c9c5"},
}


def short_rollouts(env: str) -> dict[str, str]:
    pset = load_policy_set(env)
    out = {}
    for name, stream, pol in (("random", "random", None), ("expert", "expert", pset.policy("expert")),
                              ("medium", "medium", pset.policy("medium")),
                              ("replay0", "replay", pset.policy(pset.replay_rounds[0]))):
        ro = rollout(pset.env_id, pol, seed=0, stream=stream, noise=pset.action_noise, episodes=2, max_episode_steps=25,
                     n_envs=2)
        out[name] = compute_fingerprint(OfflineDataset(**ro.arrays))
    return out


@pytest.mark.parametrize("env", ENVS)
def test_short_rollouts_have_pinned_fingerprints(env):
    assert short_rollouts(env) == PINNED[env]


@pytest.mark.parametrize("env", ENVS)
def test_shipped_policy_sets_are_small_and_documented(env):
    pset = load_policy_set(env)
    info = pset.info
    assert pset.source == "shipped" and pset.directory == SHIPPED / env and info["env_id"] == TASK_ENVS[env]
    sizes = [p.stat().st_size for p in pset.files()]
    assert max(sizes) < 600_000 and sum(sizes) < 3_000_000
    expert = pset.policy("expert")
    assert (expert.obs_dim, expert.act_dim) == ENV_DIMS[pset.env_id] == (info["obs_dim"], info["act_dim"])
    assert info["mdpt_version"] and info["seed"] == 0 and info["action_noise"] == 0.1
    assert info["expert"]["source"] and info["expert"]["architecture"]
    if env in ("halfcheetah", "walker2d"):  # trained here: the SAC settings, steps, seed and every evaluation
        training = info["expert"]["training"]
        assert "SAC" in training["algorithm"] and training["settings"]["steps"] >= training["expert_step"] > 0
        assert training["seed"] == 0 and len(training["snapshots"]) >= 2
    def strings(x):
        if isinstance(x, dict):
            return [s for v in x.values() for s in strings(v)]
        return [s for v in x for s in strings(v)] if isinstance(x, list) else [x] if isinstance(x, str) else []

    assert not [s for s in strings(info) if s.startswith(("/", "~")) or ":\\" in s]  # no path of one machine
    refs = info["references"]
    assert refs["ref_min_episodes"] == 100 and refs["ref_max_episodes"] == 20
    assert refs["ref_max_score"] > refs["ref_min_score"] + 500
    dagger = info["dagger"]
    assert dagger["settings"] == json.loads(json.dumps(DaggerConfig().to_dict())) and dagger["rounds"][0]["round"] == 0
    medium = info["medium"]
    assert [r["round"] for r in dagger["rounds"]][: medium["round"] + 1] == list(range(medium["round"] + 1))
    assert pset.replay_rounds[0] == 0 and pset.replay_rounds[-1] == medium["round"]
    assert len(pset.replay_rounds) <= info["selection"]["replay_snapshots"]


@pytest.mark.parametrize("env", ENVS)
def test_medium_policy_lies_in_its_band(env):
    """The band estimate behind the choice (>= 30k transitions) and, in seconds, the first 10 episodes of the
    medium dataset itself: the medium policy scores about a third of the expert on mdpt's scale."""
    pset = load_policy_set(env)
    lo, hi = pset.info["medium"]["band"]
    assert (lo, hi) == (30.0, 45.0)
    est = pset.info["medium"]["estimate"]
    assert lo <= est["normalized_score"] <= hi and est["transitions"] >= 30_000
    refs = pset.references
    ro = rollout(pset.env_id, pset.policy("medium"), seed=0, stream="medium", noise=pset.action_noise,
                 episodes=10)
    scores = normalized_score(ro.returns, refs["ref_min_score"], refs["ref_max_score"])
    se = float(np.std(scores, ddof=1) / np.sqrt(len(scores))) if len(scores) > 1 else 50.0
    # the first 10 episodes of the medium dataset scatter around its estimate by their standard error (HalfCheetah's
    # medium episodes are bimodal: ~63 when it runs, ~0 when it flips)
    assert abs(float(scores.mean()) - est["normalized_score"]) <= 4 * se + 2, (scores, est)


def test_retrain_a_policy_set_and_make_data_with_it(tmp_path):
    """`train_policies` end to end on tiny settings (the 2017 Hopper expert, 3 DAgger rounds, any band)."""
    lines: list[str] = []
    pset = train_policies("hopper", tmp_path / "sets" / "hopper", dagger=DaggerConfig(
        demo_steps=200, rollout_steps=200, max_rounds=3, stop_score=1000.0),
        select=SelectionConfig(band=(0.0, 100.0), screen_steps=100, select_steps=200, ref_random_episodes=3,
                                ref_expert_episodes=1),
        progress=lines.append)
    assert pset.source == str(tmp_path / "sets" / "hopper") and pset.replay_rounds[0] == 0
    assert len(pset.info["dagger"]["rounds"]) == 3 and not (tmp_path / "sets" / ".hopper.tmp").exists()
    assert json.loads((pset.directory / "provenance.json").read_text())["medium"]["band"] == [0.0, 100.0]
    out = make_dataset("hopper-medium", budget="tiny", root=tmp_path / "data", policies=tmp_path / "sets",
                       progress=None)
    ds = load_dataset(str(out))
    b = ds.metadata["behaviour"]
    assert b["policies"] == str(pset.directory) and b["policies_fingerprint"] == pset.fingerprint
    assert ds.ref_max_score == pset.references["ref_max_score"]
    with pytest.raises(DatasetError, match="policies are for HopperBulletEnv-v0, not AntBulletEnv-v0"):
        load_policy_set("ant", pset.directory)


def test_sac_actor_converts_to_the_same_numpy_policy(tmp_path):
    import torch

    from rl_core.data.gen.sac import SACConfig, _make_sac, actor_to_numpy, train_sac_expert

    cfg = SACConfig(steps=200, learning_starts=100, snapshot_every=100, net_arch=(16, 16), batch_size=32,
                    eval_episodes=1)
    model = _make_sac(make_env("walker2d"), cfg, "Walker2DBulletEnv-v0", 0)
    model.learn(150)
    pol = actor_to_numpy(model.actor)
    obs = np.random.default_rng(0).uniform(-3, 3, (32, 22)).astype(np.float32)
    with torch.no_grad():
        want = model.actor(torch.as_tensor(obs), deterministic=True).numpy()
    np.testing.assert_allclose(pol(obs), want, atol=1e-5)

    def stop_after_first_snapshot(msg: str) -> None:
        if msg.startswith("  step 100"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_sac_expert("Walker2DBulletEnv-v0", cfg, 0, tmp_path, progress=stop_after_first_snapshot)
    lines: list[str] = []
    rec = train_sac_expert("Walker2DBulletEnv-v0", cfg, 0, tmp_path, progress=lines.append)  # continues
    assert any("continuing the run" in line and "from step 100" in line for line in lines)
    assert [s["step"] for s in rec["snapshots"]] == [100, 200] and (tmp_path / "expert.npz").exists()
    assert rec["expert_step"] in (100, 200) and json.loads((tmp_path / "sac_progress.json").read_text())["cpu_s"] > 0
    longer = train_sac_expert("Walker2DBulletEnv-v0", SACConfig(**{**cfg.to_dict(), "steps": 300}), 0, tmp_path,
                              progress=lines.append)  # a longer run continues and says so
    assert [s["step"] for s in longer["snapshots"]] == [100, 200, 300]
    assert longer["extended_from"] == [{"steps": 200, "at_step": 200}]
    with pytest.raises(ValueError, match="other settings or seed"):
        train_sac_expert("Walker2DBulletEnv-v0", SACConfig(**{**cfg.to_dict(), "batch_size": 16}), 0, tmp_path,
                         progress=lines.append)
