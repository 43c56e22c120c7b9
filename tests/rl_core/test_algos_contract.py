"""The shared algorithm contract (tests/rl_core/algo_tester.py) on every algorithm x training-guidance
mode, and checks specific to DQL / IDQL / EDP (mode semantics, plug-and-play critics, errors, defaults).
SWG-specific checks live in test_swg.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl_core.algos import get_algorithm
from rl_core.buffer import make_normalizer
from rl_core.config import TRAIN_GUIDANCE_MODES
from rl_core.errors import ConfigError
from rl_core.errors import GuidanceCapabilityError
from rl_core.inference import InferenceConfig
from rl_core.snapshot import load_snapshot, make_actor, save_snapshot
from tests.rl_core.algo_tester import ACT_DIM, CASES, OBS_DIM, algo_tester, make_algo, tiny_buffer, tiny_guidance


def _params(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name,mode", CASES)
def test_algorithm_contract(name, mode, tmp_path):
    algo_tester(name, mode, tmp_path)


# ----- DQL / IDQL / EDP specifics -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["dql", "edp"])
def test_frozen_critic_gradient_reaches_the_actor(name):
    """GFDT: ∇ flows through the frozen Q into the actor (frozen ≠ bc), never into Q."""
    buf, _ = tiny_buffer()
    batch = buf.sample(8, torch.Generator().manual_seed(1))
    frozen, bc = make_algo(name, "frozen"), make_algo(name, "bc")
    m = frozen.update(batch, torch.Generator().manual_seed(0))
    bc.update(batch, torch.Generator().manual_seed(0))  # the same BC draws come first: only the Q term differs
    assert "loss/q_policy" in m and m["loss/actor"] != m["loss/bc"]
    assert any(not torch.equal(a, b) for a, b in zip(_params(frozen.net), _params(bc.net)))
    assert all(p.grad is None for p in frozen.guidance.parameters())


def test_idql_actor_is_the_same_in_every_mode():
    """IDQL's actor never uses the critic in training: the modes only change the critic."""
    buf, _ = tiny_buffer()
    batch = buf.sample(8, torch.Generator().manual_seed(1))
    nets = []
    for mode in TRAIN_GUIDANCE_MODES:
        algo, g = make_algo("idql", mode), torch.Generator().manual_seed(0)
        for _ in range(2):
            algo.update(batch, g)
        nets.append(_params(algo.net))
    assert all(torch.equal(a, b) for other in nets[1:] for a, b in zip(nets[0], other))


@pytest.mark.parametrize("name", ["dql", "edp"])
def test_idql_critic_guides_dql_and_edp_diffusion(name, tmp_path):
    """Cross-algorithm plug-and-play: an IQL critic (with V) resamples DQL / EDP candidates."""
    buf, ds = tiny_buffer()
    algo = make_algo(name, "bc")
    path = save_snapshot(tmp_path / "s.pt", algo, step=0, config={}, normalizer=make_normalizer(ds),
                         dataset_meta={}, guidance_meta=None)
    snap, iql = load_snapshot(path), tiny_guidance("iql", 7)
    for method in ("softmax", "argmax"):
        actions = make_actor(snap, InferenceConfig(method=method, n_candidates=8), guidance=iql).act(
            ds.observations[:4], torch.Generator().manual_seed(0))
        assert actions.shape == (4, ACT_DIM) and np.all(np.abs(actions) <= 1)
    # softmax over Q - V (the default with V) selects exactly like softmax over Q: V(s) shifts all candidates
    adv, q_only = (make_actor(snap, InferenceConfig(n_candidates=8, use_advantage=u), guidance=iql).act(
        ds.observations[:4], torch.Generator().manual_seed(0)) for u in (True, False))
    assert np.array_equal(adv, q_only)


def test_dql_critic_guides_idql_diffusion_and_needs_no_v(tmp_path):
    buf, ds = tiny_buffer()
    algo = make_algo("idql", "bc")
    path = save_snapshot(tmp_path / "s.pt", algo, step=0, config={}, normalizer=make_normalizer(ds),
                         dataset_meta={}, guidance_meta=None)
    snap, td = load_snapshot(path), tiny_guidance("td", 8)
    actions = make_actor(snap, InferenceConfig(n_candidates=8), guidance=td).act(
        ds.observations[:4], torch.Generator().manual_seed(0))
    assert actions.shape == (4, ACT_DIM)
    with pytest.raises(GuidanceCapabilityError, match=r"expected=\['q', 'v'\], actual=\['q'\]"):
        make_actor(snap, InferenceConfig(use_advantage=True), guidance=td)


def test_q_methods_on_a_snapshot_without_critic_raise(tmp_path):
    _, ds = tiny_buffer()
    algo = make_algo("dql", "bc")
    snap = load_snapshot(save_snapshot(tmp_path / "s.pt", algo, step=0, config={}, normalizer=make_normalizer(ds),
                                       dataset_meta={}, guidance_meta=None))
    for method in ("softmax", "argmax", "gradient"):
        with pytest.raises(GuidanceCapabilityError, match="snapshot has no critic"):
            make_actor(snap, InferenceConfig(method=method))
    for method in ("none", "softmax", "argmax"):  # one candidate: nothing to select, no critic needed
        actor = make_actor(snap, InferenceConfig(method=method, n_candidates=1))
        assert actor.act(ds.observations[:2], torch.Generator()).shape == (2, ACT_DIM)


def test_mode_and_guidance_mismatches_raise_clear_errors():
    with pytest.raises(ConfigError, match="train_guidance='frozen' needs a pretrained guidance artifact"):
        get_algorithm("dql")(get_algorithm("dql").Config(), OBS_DIM, ACT_DIM, guidance=None, guidance_mode="frozen",
                             seed=0)
    with pytest.raises(ConfigError, match="expected a random critic, actual kind='td'"):
        make_algo("dql", "noise", guidance_kind="td")
    with pytest.raises(ConfigError, match=r"guidance_mode='gfdt'.*allowed values"):
        make_algo("edp", "bc").__class__(get_algorithm("edp").Config(), OBS_DIM, ACT_DIM, guidance=None,
                                           guidance_mode="gfdt", seed=0)
    with pytest.raises(GuidanceCapabilityError, match=r"expected=\['q'\], actual=\[\]"):
        get_algorithm("dql")(get_algorithm("dql").Config(), OBS_DIM, ACT_DIM, guidance=_NoQ(), guidance_mode="joint",
                             seed=0)


class _NoQ:
    """A guidance object that provides nothing (a user plug-in lacking q)."""

    kind, provides, obs_dim, act_dim = "custom", frozenset(), OBS_DIM, ACT_DIM


def test_defaults_follow_cleandiffuser_main():
    dql, idql, edp = (get_algorithm(n).Config() for n in ("dql", "idql", "edp"))
    assert (dql.T, dql.solver, dql.predict, dql.ema_rate, dql.ema_every, dql.ema_start, dql.n_candidates) == \
        (5, "ddpm", "eps", 0.995, 5, 1000, 50)
    assert (idql.ema_rate, idql.ema_every, idql.ema_start, idql.n_candidates, idql.critic_every) == (0.9999, 1, 0, 256, 2)
    assert (edp.T, edp.solver, edp.sampling_steps, edp.predict) == (50, "dpm_solver_2m", 15, "x0")
    assert all(c.lr == 3e-4 and c.weight_decay == 0.01 and c.eval_temperature == 0.5 and c.schedule == "cosine"
               for c in (dql, idql, edp))
