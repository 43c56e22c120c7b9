"""Evaluation in the real PyBullet Hopper: lockstep batching, seeding, lengths and terminations."""

import numpy as np
import pytest
import torch

from rl_core.data.envs import make_env
from rl_core.evaluation import evaluate

ENV = "HopperBulletEnv-v0"
REF = dict(ref_min=-20.0, ref_max=2600.0)


class LinearActor:
    """Deterministic, row-independent policy a = tanh(W obs); records the batch size of every call."""

    def __init__(self, seed: int = 0, gain: float = 0.5):
        self.w = np.random.default_rng(seed).normal(size=(15, 3)).astype(np.float32) * gain
        self.batch_sizes: list[int] = []

    def act(self, obs: np.ndarray, generator: torch.Generator) -> np.ndarray:
        self.batch_sizes.append(len(obs))
        return np.tanh(obs @ self.w)


class NoisyActor:
    """Stochastic policy: actions drawn from the generator it is given."""

    def act(self, obs: np.ndarray, generator: torch.Generator) -> np.ndarray:
        return torch.rand(len(obs), 3, generator=generator).mul(2).sub(1).numpy()


def manual_rollout(actor: LinearActor, seed: int) -> tuple[float, int, bool]:
    """Independent reference: one env, build the scene, seeded reset, step until done."""
    env = make_env(ENV)
    env.reset()
    obs, _ = env.reset(seed=seed)
    ret, n = 0.0, 0
    while True:
        obs, r, terminated, truncated, _ = env.step(actor.act(obs[None], None)[0])
        ret, n = ret + r, n + 1
        if terminated or truncated:
            env.close()
            return ret, n, terminated


def test_vectorized_equals_one_at_a_time_and_a_manual_rollout():
    actor = LinearActor()
    vec = evaluate(actor, ENV, episodes=4, seed=10, **REF)
    seq = evaluate(LinearActor(), ENV, episodes=4, seed=10, vectorized=False, **REF)
    assert [(r.ret, r.length) for r in vec] == [(r.ret, r.length) for r in seq]
    assert [r.eval_seed for r in vec] == [10, 11, 12, 13] and [r.episode for r in vec] == [0, 1, 2, 3]
    ret, n, terminated = manual_rollout(LinearActor(), seed=12)
    assert vec[2].ret == pytest.approx(ret, abs=1e-9) and vec[2].length == n
    assert terminated and n < 1000  # this policy falls: a true termination ends the episode early
    assert len({r.ret for r in vec}) > 1  # different seeds give different episodes


def test_one_batched_act_call_per_step_over_running_envs():
    actor = LinearActor()
    res = evaluate(actor, ENV, episodes=3, seed=0, **REF)
    lengths = sorted(r.length for r in res)
    assert len(actor.batch_sizes) == lengths[-1]  # one call per lockstep env step
    expected = [sum(n > t for n in lengths) for t in range(lengths[-1])]
    assert actor.batch_sizes == expected  # batch shrinks as episodes finish


def test_deterministic_given_seed_and_normalized_score():
    a = evaluate(NoisyActor(), ENV, episodes=3, seed=5, max_steps=50, **REF)
    b = evaluate(NoisyActor(), ENV, episodes=3, seed=5, max_steps=50, **REF)
    c = evaluate(NoisyActor(), ENV, episodes=3, seed=6, max_steps=50, **REF)
    assert a == b and a != c
    for r in a:
        assert r.normalized_score == pytest.approx(100 * (r.ret + 20.0) / 2620.0)


def test_max_steps_caps_episode_length():
    res = evaluate(LinearActor(gain=0.0), ENV, episodes=2, seed=0, max_steps=7, **REF)
    assert [r.length for r in res] == [7, 7] and all(np.isfinite(r.ret) for r in res)
