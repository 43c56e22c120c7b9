"""The Ray-free training loops with real algorithms, critics and a tiny real-Hopper dataset."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rl_core.datasets import OfflineDataset
from rl_core.envs import make_env
from rl_core.errors import ArtifactMismatchError, ConfigError, DivergenceError
from rl_core.guidance import load_artifact
from rl_core.train import PretrainConfig, TrainConfig, load_checkpoint, run_pretraining, run_training, sarsa_next_actions

TINY_ALGO = {
    "dql": {"hidden": 32, "n_layers": 2, "emb_dim": 16, "T": 3, "sampling_steps": 3, "ema_start": 0},
    "idql": {"hidden": 32, "n_blocks": 1, "emb_dim": 16, "T": 3, "sampling_steps": 3, "ema_start": 0},
    "edp": {"hidden": 32, "n_layers": 2, "emb_dim": 16, "T": 5, "sampling_steps": 3, "ema_start": 0},
}
TINY_GUIDANCE = {"hidden": 32, "n_layers": 2}


def tiny_hopper_dataset(n_episodes: int = 12, cap: int = 15, seed: int = 0) -> OfflineDataset:
    """Random-policy Hopper episodes cut at ``cap`` steps (cut = timeout), D4RL-v2 semantics."""
    rng = np.random.default_rng(seed)
    env = make_env("HopperBulletEnv-v0")
    cols = {k: [] for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")}
    for ep in range(n_episodes):
        obs, _ = env.reset(seed=seed + ep)
        for t in range(cap):
            act = rng.uniform(-1, 1, 3).astype(np.float32)
            nxt, r, terminated, truncated, _ = env.step(act)
            for k, v in zip(cols, (obs, act, r, nxt, terminated, (truncated or t == cap - 1) and not terminated)):
                cols[k].append(v)
            obs = nxt
            if terminated or truncated:
                break
    env.close()
    arrays = {k: np.asarray(v, dtype=bool if k in ("terminals", "timeouts") else np.float32) for k, v in cols.items()}
    return OfflineDataset(**arrays, metadata={"env_id": "HopperBulletEnv-v0", "task": "hopper-tiny",
                                              "ref_min_score": -20.0, "ref_max_score": 2600.0})


@pytest.fixture(scope="module")
def dataset() -> OfflineDataset:
    return tiny_hopper_dataset()


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """The tiny configs run single-threaded (fast on a busy machine); give the process its setting back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def tiny_cfg(algo: str = "dql", **kw) -> TrainConfig:
    base = dict(task="hopper-tiny", algo=algo, algo_config=TINY_ALGO[algo], guidance_config=TINY_GUIDANCE,
                seed=3, steps=10, batch_size=16, eval_every=4, log_every=3, threads=1)
    return TrainConfig(**(base | kw))


def comparable(reports: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if not k.startswith(("time/", "mem/"))} for m in reports]


def test_report_and_snapshot_cadence(dataset, tmp_path):
    reports, snaps, ckpts = [], [], []
    out = run_training(tiny_cfg(), dataset, workdir=tmp_path, report=reports.append,
                       on_snapshot=lambda s, p: snaps.append((s, p)), on_checkpoint=lambda s, p: ckpts.append(s))
    assert [m["step"] for m in reports] == [3, 6, 9, 10]
    assert [s for s, _ in snaps] == [4, 8, 10] and all(p.exists() for _, p in snaps)
    assert ckpts == [4, 8, 10] and [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_00000010"]
    for m in reports:
        assert {"loss/bc", "loss/critic", "time/steps_per_s", "mem/peak_mb"} <= set(m)
        assert all(np.isfinite(v) for v in m.values())
    assert out["step"] == 10 and out["restored_from"] == -1


@pytest.mark.parametrize("algo", ["dql", "idql"])
def test_resume_from_checkpoint_equals_uninterrupted_run(dataset, tmp_path, algo):
    cfg = tiny_cfg(algo, steps=12, eval_every=6, log_every=2)
    saved = tmp_path / "saved_ckpt"

    def keep_step6(step: int, path: Path) -> None:  # what Ray does: copy the checkpoint away
        if step == 6:
            shutil.copytree(path, saved)

    full: list[dict] = []
    run_training(cfg, dataset, workdir=tmp_path / "a", report=full.append, on_checkpoint=keep_step6)
    resumed: list[dict] = []
    out = run_training(cfg, dataset, workdir=tmp_path / "b", report=resumed.append, resume_from=saved)
    assert out["restored_from"] == 6
    assert comparable(resumed) == comparable(full)[3:]  # reports at steps 8, 10, 12, bit-identical
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_00000012")["algo"]
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_00000012")["algo"]
    for key in ("net", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert torch.equal(torch.cat([t.flatten() for t in a["net"].values()]),
                       torch.cat([t.flatten() for t in b["net"].values()]))


def test_resume_refuses_a_different_config(dataset, tmp_path):
    run_training(tiny_cfg(steps=4), dataset, workdir=tmp_path)
    with pytest.raises(ConfigError, match="batch_size"):
        run_training(tiny_cfg(steps=8, batch_size=8), dataset, workdir=tmp_path / "b",
                     resume_from=tmp_path / "checkpoints" / "step_00000004")


def test_divergence_names_metric_and_step(dataset, tmp_path):
    cfg = tiny_cfg(guidance_config={**TINY_GUIDANCE, "lr": 1e30}, steps=50)
    with pytest.raises(DivergenceError, match=r"at step \d+: \S+ = (nan|inf)"):
        run_training(cfg, dataset, workdir=tmp_path)


def test_pretraining_writes_step_matched_artifacts_with_meta(dataset, tmp_path):
    artifacts = []
    cfg = PretrainConfig(task="hopper-tiny", kind="iql", guidance_config=TINY_GUIDANCE, seed=7, steps=6,
                         batch_size=16, save_every=3, log_every=2, threads=1)
    final = run_pretraining(cfg, dataset, workdir=tmp_path, on_artifact=lambda s, p: artifacts.append((s, p.name)))
    assert artifacts == [(3, "step_00000003.pt"), (6, "step_00000006.pt")] and final == tmp_path / "final.pt"
    g3, meta3 = load_artifact(tmp_path / "step_00000003.pt", expect_fingerprint=dataset.fingerprint, obs_dim=15, act_dim=3)
    g6, meta6 = load_artifact(final, expect_fingerprint=dataset.fingerprint, obs_dim=15, act_dim=3)
    assert (meta3["steps"], meta6["steps"]) == (3, 6)
    assert meta6["kind"] == "iql" and meta6["seed"] == 7 and meta6["task"] == "hopper-tiny"
    assert meta6["normalizer"]["reward_scale"] > 0 and meta6["config"]["hidden"] == 32
    obs, act = torch.zeros(4, 15), torch.zeros(4, 3)
    assert not torch.equal(g3.q(obs, act), g6.q(obs, act))  # the critic kept training between saves


def test_sarsa_next_actions_follow_the_episode(dataset):
    keep, next_act = sarsa_next_actions(dataset)
    cont = ~dataset.terminals[keep]
    i = keep[cont]
    assert np.array_equal(next_act[cont], dataset.actions[i + 1])
    assert np.array_equal(dataset.next_observations[i], dataset.observations[i + 1])
    cut = np.flatnonzero(dataset.timeouts)
    assert len(cut) and not np.isin(cut, keep).any()  # next action unknown: left out
    assert np.isin(np.flatnonzero(dataset.terminals), keep).all()


def test_frozen_training_keeps_the_pretrained_critic(dataset, tmp_path):
    pre = PretrainConfig(task="hopper-tiny", kind="td", guidance_config=TINY_GUIDANCE, seed=1, steps=4, batch_size=16, threads=1)
    artifact = run_pretraining(pre, dataset, workdir=tmp_path / "g")
    cfg = tiny_cfg(train_guidance="frozen", guidance_artifact=str(artifact), guidance_config=None, steps=6)
    reports = []
    run_training(cfg, dataset, workdir=tmp_path / "t", report=reports.append)
    before = load_artifact(artifact)[0].state_dict()
    after = load_checkpoint(tmp_path / "t" / "checkpoints" / "step_00000006")["algo"]["guidance"]
    flat = lambda d: torch.cat([v.flatten().float() for v in _tensors(d)])  # noqa: E731
    assert torch.equal(flat(before), flat(after))
    assert "loss/critic" not in reports[-1] and "loss/q_policy" in reports[-1]
    other = tiny_hopper_dataset(n_episodes=3, seed=99)
    with pytest.raises(ArtifactMismatchError, match="fingerprint"):
        run_training(cfg, other, workdir=tmp_path / "x")


def _tensors(d):
    if isinstance(d, torch.Tensor):
        yield d
    elif isinstance(d, dict):
        for k in sorted(d, key=str):
            if k not in ("optimizer", "optimizers", "q_opt", "v_opt"):
                yield from _tensors(d[k])


def test_config_round_trip_and_errors():
    cfg = tiny_cfg(train_guidance="none", guidance_config=None)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match=r"train_guidance.*allowed values: \['joint', 'none', 'bc', 'noise', 'frozen', 'unfrozen'\]"):
        tiny_cfg(train_guidance="sometimes")
    with pytest.raises(ConfigError, match="guidance_artifact"):
        tiny_cfg(train_guidance="frozen")
    with pytest.raises(ConfigError, match="unknown field"):
        TrainConfig.from_dict({**cfg.to_dict(), "lr": 1.0})
    with pytest.raises(ConfigError, match="kind"):
        PretrainConfig(task="t", kind="random", steps=1)


def test_swg_frozen_run_stores_its_weight_column(dataset, tmp_path):
    """SWG with a frozen IQL critic: the weight of every dataset row is computed once and saved with
    the run, equal to the weights training sees (critic_weights of the frozen critic)."""
    from rl_core.buffer import TensorBuffer, make_normalizer
    from rl_core.swg_weights import WeightConfig, critic_weights, load_weight_column

    pre = PretrainConfig(task="hopper-tiny", kind="iql", guidance_config=TINY_GUIDANCE, seed=2, steps=4,
                         batch_size=16, threads=1)
    artifact = run_pretraining(pre, dataset, workdir=tmp_path / "g")
    swg = {"hidden": 32, "n_blocks": 2, "emb_dim": 16, "T": 3, "sampling_steps": 3}
    cfg = TrainConfig(task="hopper-tiny", algo="swg", algo_config=swg, train_guidance="frozen",
                      guidance_artifact=str(artifact), seed=3, steps=4, batch_size=16, eval_every=4, threads=1)
    run_training(cfg, dataset, workdir=tmp_path / "t")
    weights, meta = load_weight_column(tmp_path / "t", expect_fingerprint=dataset.fingerprint)
    critic = load_artifact(artifact)[0]
    buf = TensorBuffer.from_dataset(dataset, make_normalizer(dataset))
    expected = critic_weights(critic, buf.obs, buf.act, WeightConfig()).numpy()
    assert weights.shape == (dataset.n_transitions,) and meta["guidance_artifact"] == str(artifact)
    np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-6)
    assert weights.min() > 0 and weights.max() <= 1
