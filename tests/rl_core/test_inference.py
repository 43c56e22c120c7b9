"""Inference: normalisation, one batched sampler call, selection methods, critic plug-in, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rl_core.algos import get_algorithm
from rl_core.errors import ConfigError
from rl_core.errors import GuidanceCapabilityError
from rl_core.inference import Actor, InferenceConfig
from rl_core.types import Normalizer
from tests.rl_core.algo_tester import ACT_DIM, OBS_DIM, TINY_CONFIGS, make_algo

NORM = Normalizer((1.0, -1.0, 0.5, 0.0), (2.0, 0.5, 1.0, 3.0), 1.0)
OBS = np.random.default_rng(0).normal(size=(3, OBS_DIM)).astype(np.float32)


class QuadCritic:
    """Q(s, a) = −‖a − c‖² (maximised at c); records the observations it is shown."""

    kind, provides, obs_dim, act_dim = "quad", frozenset({"q"}), OBS_DIM, ACT_DIM

    def __init__(self, c=(0.8, -0.8)) -> None:
        self.c, self.seen = torch.tensor(c), []

    def q(self, obs_n, act, *, target=False):
        self.seen.append(obs_n.detach().clone())
        return -((act - self.c) ** 2).sum(-1)


def _actor(method: str, critic=None, algo_name: str = "dql", **kw) -> tuple[Actor, object]:
    algo = make_algo(algo_name, "bc")
    return Actor(type(algo), algo.cfg, algo.ema, NORM, InferenceConfig(method=method, **kw), critic), algo


def test_actor_normalises_samples_in_one_batched_call_and_picks_argmax_q():
    critic = QuadCritic()
    actor, algo = _actor("argmax", critic, n_candidates=10, scale=1.0)
    batches = []
    hook = algo.ema.register_forward_hook(lambda m, inp, out: batches.append(inp[0].shape[0]))
    actions = actor.act(OBS, torch.Generator().manual_seed(0))
    hook.remove()
    assert batches == [3 * 10] * algo.cfg.sampling_steps  # every denoising step: all 30 chains at once
    obs_n = torch.as_tensor((OBS - np.array(NORM.obs_mean, np.float32)) / np.array(NORM.obs_std, np.float32))
    cand = type(algo).sample_with(algo.cfg, algo.ema, obs_n, torch.Generator().manual_seed(0), n=10,
                                  temperature=0.5)
    best = cand[torch.arange(3), (-((cand - critic.c) ** 2).sum(-1)).argmax(1)]
    np.testing.assert_array_equal(actions, best.numpy())


def test_softmax_at_large_scale_is_argmax_and_at_zero_scale_is_not():
    argmax = _actor("argmax", QuadCritic(), n_candidates=16)[0].act(OBS, torch.Generator().manual_seed(1))
    sharp = _actor("softmax", QuadCritic(), n_candidates=16, scale=1e6)[0].act(OBS, torch.Generator().manual_seed(1))
    np.testing.assert_array_equal(argmax, sharp)
    many = np.repeat(OBS, 20, axis=0)
    flat = _actor("softmax", QuadCritic(), n_candidates=16, scale=0.0)[0].act(many, torch.Generator().manual_seed(1))
    best = _actor("argmax", QuadCritic(), n_candidates=16)[0].act(many, torch.Generator().manual_seed(1))
    assert not np.array_equal(flat, best)


def test_gradient_guidance_moves_samples_toward_higher_q():
    c = torch.tensor((0.8, -0.8))
    many = np.repeat(OBS, 30, axis=0)
    q = {}
    for method, scale in (("none", 0.0), ("gradient", 2.0)):
        a = _actor(method, QuadCritic(), n_candidates=1, scale=scale)[0].act(many, torch.Generator().manual_seed(2))
        q[method] = -((torch.as_tensor(a) - c) ** 2).sum(-1).mean().item()
    assert q["gradient"] > q["none"] + 0.1


def test_none_is_one_unguided_sample_and_deterministic_per_generator():
    actor, algo = _actor("none")
    a1, a2 = (actor.act(OBS, torch.Generator().manual_seed(3)) for _ in range(2))
    np.testing.assert_array_equal(a1, a2)
    obs_n = NORM.normalize_obs(torch.as_tensor(OBS))
    ref = type(algo).sample_with(algo.cfg, algo.ema, obs_n, torch.Generator().manual_seed(3), n=1, temperature=0.5)
    np.testing.assert_array_equal(a1, ref[:, 0].numpy())
    assert not np.array_equal(a1, actor.act(OBS, torch.Generator().manual_seed(4)))


def test_plugged_in_critic_sees_observations_normalised_with_its_own_normaliser():
    critic, other = QuadCritic(), Normalizer((0.0,) * OBS_DIM, (10.0,) * OBS_DIM, 1.0)
    algo = make_algo("dql", "bc")
    actor = Actor(type(algo), algo.cfg, algo.ema, NORM, InferenceConfig(method="argmax", n_candidates=4), critic,
                  guidance_normalizer=other)
    actor.act(OBS, torch.Generator().manual_seed(0))
    expected = torch.as_tensor(OBS / 10.0).repeat_interleave(4, dim=0)
    torch.testing.assert_close(critic.seen[-1], expected)


def test_swg_method_delegates_to_self_guided_sample_and_refuses_other_algorithms():
    with pytest.raises(ConfigError, match="needs an SWG snapshot"):
        _actor("swg", n_candidates=1)
    swg = get_algorithm("swg")
    cfg = swg.Config.from_dict({"hidden": 32, "n_blocks": 2, "emb_dim": 16, "T": 5, "sampling_steps": 5})
    net = swg.build_denoiser(cfg, OBS_DIM, ACT_DIM).eval()
    actor = Actor(swg, cfg, net, NORM, InferenceConfig(method="swg", n_candidates=1, scale=1.0, temperature=0.5))
    a = actor.act(OBS, torch.Generator().manual_seed(5))
    ref = swg.self_guided_sample(cfg, net, NORM.normalize_obs(torch.as_tensor(OBS)), torch.Generator().manual_seed(5),
                                 n=1, temperature=0.5, scale=1.0)
    np.testing.assert_array_equal(a, ref[:, 0].numpy())


def test_methods_needing_a_critic_or_v_raise_with_expected_and_actual():
    with pytest.raises(GuidanceCapabilityError, match=r"expected=\['q'\], actual=\[\]"):
        _actor("gradient")
    with pytest.raises(GuidanceCapabilityError, match=r"expected=\['q', 'v'\], actual=\['q'\].*kind 'quad'"):
        _actor("softmax", QuadCritic(), use_advantage=True)
    with pytest.raises(GuidanceCapabilityError, match="needs a critic"):
        _actor("swg", n_candidates=4, algo_name="dql")


def test_inference_config_round_trip_validation_and_algorithm_defaults():
    cfg = InferenceConfig(method="gradient", scale=3.0, n_candidates=7, use_advantage=False)
    assert InferenceConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match=r"method='beam'.*allowed values"):
        InferenceConfig(method="beam")
    with pytest.raises(ConfigError, match="n_candidates"):
        InferenceConfig(n_candidates=0)
    with pytest.raises(ConfigError, match="unknown field"):
        InferenceConfig.from_dict({"candidates": 3})
    idql = get_algorithm("idql").Config.from_dict({**TINY_CONFIGS["idql"], "select": "argmax"})
    d = InferenceConfig.for_algorithm(idql, scale=5.0)
    assert (d.method, d.n_candidates, d.temperature, d.scale) == ("argmax", 256, 0.5, 5.0)
