"""Shared algorithm contract: every algorithm × training-guidance mode, tiny configs, real torch.

The parametrisation below covers dql, idql, edp. To run the contract on another algorithm, register
its tiny config and call the contract functions (plain functions of ``name, mode``) from its own
test module::

    import tests.rl_core.test_algos_contract as C
    C.TINY_CONFIGS["swg"] = {...}

    @pytest.mark.parametrize("mode", ["joint", "none", "frozen", "unfrozen"])
    def test_swg_contract(mode):
        C.test_same_seed_gives_identical_losses_and_actions("swg", mode)
        C.test_state_dict_round_trip_continues_identically("swg", mode)
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from rl_core.algos import get_algorithm
from rl_core.config import TRAIN_GUIDANCE_MODES
from rl_core.algos.base import bc_loss
from rl_core.buffer import TensorBuffer, make_normalizer
from rl_core.data.dataset import OfflineDataset
from rl_core.errors import ConfigError
from rl_core.guidance import GuidanceCapabilityError, GuidanceConfig, make_guidance
from rl_core.inference import Actor, InferenceConfig
from rl_core.snapshot import load_snapshot, make_actor, save_snapshot
from rl_core.types import Batch

OBS_DIM, ACT_DIM = 4, 2
_SHARED = dict(lr=3e-3, T=5, sampling_steps=5, ema_start=0, ema_every=1, ema_rate=0.9, lr_anneal_steps=None)
TINY_CONFIGS: dict[str, dict] = {
    "dql": dict(_SHARED, hidden=32, n_layers=2, emb_dim=16),
    "idql": dict(_SHARED, hidden=32, n_blocks=2, emb_dim=16),
    "edp": dict(_SHARED, hidden=32, n_layers=2, emb_dim=16),
}
ALGOS = ("dql", "idql", "edp")
CASES = [(a, m) for a in ALGOS for m in TRAIN_GUIDANCE_MODES]


# ----- helpers (importable by other algorithms' tests) -------------------------------------------
def tiny_dataset(n: int = 120, seed: int = 0) -> OfflineDataset:
    """A learnable synthetic dataset: a = tanh(0.8 s[:2]) + small noise, r = s[0], 20-step episodes."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
    act = np.clip(np.tanh(0.8 * obs[:, :ACT_DIM]) + 0.05 * rng.normal(size=(n, ACT_DIM)), -1, 1).astype(np.float32)
    timeouts = (np.arange(n) % 20 == 19)
    return OfflineDataset(obs, act, obs[:, 0].copy(), (obs + 0.1 * rng.normal(size=obs.shape)).astype(np.float32),
                          np.zeros(n, dtype=bool), timeouts,
                          {"env_id": "Toy-v0", "task": "toy-medium", "ref_min_score": 0.0, "ref_max_score": 1.0})


def tiny_buffer(seed: int = 0) -> tuple[TensorBuffer, OfflineDataset]:
    ds = tiny_dataset(seed=seed)
    return TensorBuffer.from_dataset(ds, make_normalizer(ds)), ds


def tiny_guidance(kind: str, seed: int = 0):
    return make_guidance(GuidanceConfig(kind=kind, hidden=32, n_layers=2), OBS_DIM, ACT_DIM, seed)


def make_algo(name: str, mode: str, seed: int = 0, guidance_kind: str | None = None, **overrides):
    """The algorithm with its tiny config; the critic the training loop would pass for ``mode``."""
    cls = get_algorithm(name)
    kind = guidance_kind or {"joint": cls.default_guidance_kind, "noise": "random", "none": cls.default_guidance_kind, "bc": None,
                             "frozen": "iql", "unfrozen": "iql"}[mode]
    guidance = tiny_guidance(kind, seed + 100) if kind else None
    cfg = cls.Config.from_dict({**TINY_CONFIGS[name], **overrides})
    return cls(cfg, OBS_DIM, ACT_DIM, guidance=guidance, guidance_mode=mode, seed=seed)


def _params(module_or_list) -> list[torch.Tensor]:
    ps = module_or_list.parameters() if hasattr(module_or_list, "parameters") else module_or_list
    return [p.detach().clone() for p in ps]


def _critic_nets(algo) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in algo.guidance.state_dict()["nets"].items()}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny nets run fastest on one thread (and the test machine is shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----- contract -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,mode", CASES)
def test_updates_lower_the_loss_on_a_fixed_batch(name, mode):
    buf, _ = tiny_buffer()
    batch = buf.sample(8, torch.Generator().manual_seed(1))
    algo = make_algo(name, mode, lr=1e-2)
    big = Batch(*(t.repeat(16, *[1] * (t.dim() - 1)) for t in (batch.obs, batch.act, batch.rew, batch.next_obs,
                                                                batch.terminal)))

    def fixed_loss() -> float:  # the same 128 draws of (k, noise) before and after training
        algo.net.eval()
        with torch.no_grad():
            loss = bc_loss(algo.net, big, algo.cfg, torch.Generator().manual_seed(7)).item()
        algo.net.train()
        return loss

    before = fixed_loss()
    g = torch.Generator().manual_seed(0)
    metrics = [algo.update(batch, g) for _ in range(30)]
    assert all(np.isfinite(v) for m in metrics for v in m.values())
    assert {"loss/bc", "loss/actor", "actor/grad_norm", "actor/lr"} <= set(metrics[-1])
    assert fixed_loss() < 0.7 * before


@pytest.mark.parametrize("name,mode", CASES)
def test_every_trainable_parameter_moves_and_frozen_guidance_does_not(name, mode):
    buf, _ = tiny_buffer()
    algo = make_algo(name, mode, lr=0.1)
    net0, ema0 = _params(algo.net), _params(algo.ema)
    critic0 = _critic_nets(algo) if algo.guidance is not None else None
    algo.update(buf.sample(8, torch.Generator().manual_seed(1)), torch.Generator().manual_seed(0))
    assert all(not torch.equal(a, b) for a, b in zip(net0, _params(algo.net)))
    assert all(not torch.equal(a, b) for a, b in zip(ema0, _params(algo.ema)))
    if critic0 is None:
        return
    after = _critic_nets(algo)
    if mode in ("frozen", "noise"):
        assert all(torch.equal(critic0[k], after[k]) for k in critic0), "frozen guidance changed"
        assert all(not p.requires_grad for p in algo.guidance.parameters())
    else:
        online = [k for k in critic0 if not k.startswith("q_target")]
        assert all(not torch.equal(critic0[k], after[k]) for k in online), "trained critic did not move"


@pytest.mark.parametrize("name", ["dql", "edp"])
def test_frozen_critic_gradient_reaches_the_actor(name):
    """GFDT: ∇ flows through the frozen Q into the actor (frozen ≠ none), never into Q."""
    buf, _ = tiny_buffer()
    batch = buf.sample(8, torch.Generator().manual_seed(1))
    frozen, none = make_algo(name, "frozen"), make_algo(name, "none")
    m = frozen.update(batch, torch.Generator().manual_seed(0))
    none.update(batch, torch.Generator().manual_seed(0))
    assert "loss/q_policy" in m and m["loss/actor"] != m["loss/bc"]
    assert any(not torch.equal(a, b) for a, b in zip(_params(frozen.net), _params(none.net)))
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


@pytest.mark.parametrize("name,mode", CASES)
def test_same_seed_gives_identical_losses_and_actions(name, mode):
    buf, _ = tiny_buffer()
    runs = []
    for _ in range(2):
        algo, g, sg = make_algo(name, mode, seed=3), torch.Generator().manual_seed(0), torch.Generator().manual_seed(5)
        metrics = [algo.update(buf.sample(8, sg), g) for _ in range(3)]
        actions = algo.sample(buf.obs[:4], torch.Generator().manual_seed(9), n=3, temperature=0.5)
        runs.append((metrics, actions))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])
    other = make_algo(name, mode, seed=4)
    assert any(not torch.equal(a, b) for a, b in zip(_params(other.net), _params(algo.net)))


@pytest.mark.parametrize("name,mode", CASES)
def test_state_dict_round_trip_continues_identically(name, mode):
    buf, _ = tiny_buffer()
    a, g, sg = make_algo(name, mode), torch.Generator().manual_seed(0), torch.Generator().manual_seed(5)
    for _ in range(2):
        a.update(buf.sample(8, sg), g)
    state, g_state, sg_state = copy.deepcopy(a.state_dict()), g.get_state(), sg.get_state()
    expected = [a.update(buf.sample(8, sg), g) for _ in range(2)]
    b = make_algo(name, mode, seed=11)
    b.load_state_dict(state)
    g.set_state(g_state), sg.set_state(sg_state)
    assert [b.update(buf.sample(8, sg), g) for _ in range(2)] == expected
    assert all(torch.equal(x, y) for x, y in zip(_params(a.net), _params(b.net)))


@pytest.mark.parametrize("name", ALGOS)
def test_snapshot_round_trip_gives_identical_actions(name, tmp_path):
    buf, ds = tiny_buffer()
    algo, g = make_algo(name, "joint"), torch.Generator().manual_seed(0)
    for _ in range(3):
        algo.update(buf.sample(8, g), g)
    norm = make_normalizer(ds)
    path = save_snapshot(tmp_path / "s.pt", algo, step=3, config={"algo": name}, normalizer=norm,
                         dataset_meta={"fingerprint": ds.fingerprint}, guidance_meta={"kind": algo.guidance.kind})
    inf = InferenceConfig(method="softmax", n_candidates=6, scale=3.0)
    live = Actor(type(algo), algo.cfg, algo.ema, norm, inf, algo.guidance)
    loaded = make_actor(load_snapshot(path), inf)
    obs = ds.observations[:5]
    a1, a2 = (x.act(obs, torch.Generator().manual_seed(4)) for x in (live, loaded))
    assert a1.shape == (5, ACT_DIM) and np.array_equal(a1, a2)


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


@pytest.mark.parametrize("name", ALGOS)
def test_config_json_round_trip_and_field_errors(name):
    cls = get_algorithm(name)
    cfg = cls.Config.from_dict(TINY_CONFIGS[name])
    assert cls.Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="unknown field"):
        cls.Config.from_dict({"learning_rate": 1.0})
    with pytest.raises(ConfigError, match=r"solver='rk4'.*allowed values: \['ddpm', 'dpm_solver_1', 'dpm_solver_2m'\]"):
        cls.Config(solver="rk4")
    with pytest.raises(ConfigError, match="sampling_steps"):
        cls.Config(T=5, sampling_steps=6)


def test_defaults_follow_cleandiffuser_main():
    dql, idql, edp = (get_algorithm(n).Config() for n in ALGOS)
    assert (dql.T, dql.solver, dql.predict, dql.ema_rate, dql.ema_every, dql.ema_start, dql.n_candidates) == \
        (5, "ddpm", "eps", 0.995, 5, 1000, 50)
    assert (idql.ema_rate, idql.ema_every, idql.ema_start, idql.n_candidates, idql.critic_every) == (0.9999, 1, 0, 256, 2)
    assert (edp.T, edp.solver, edp.sampling_steps, edp.predict) == (50, "dpm_solver_2m", 15, "x0")
    assert all(c.lr == 3e-4 and c.weight_decay == 0.01 and c.eval_temperature == 0.5 and c.schedule == "cosine"
               for c in (dql, idql, edp))
