"""The shared algorithm tester (d3rlpy ``tests/algos/qlearning/algo_test.py`` style).

``algo_tester(name, mode, tmp_path)`` runs every contract check on one algorithm in one
training-guidance mode; ``tests/rl_core/test_algos_contract.py`` parametrises it over
DQL, IDQL, EDP and SWG x their modes. Each check is also a plain function of ``(name, mode)``:

- ``check_metrics``: every update returns finite floats under the agreed slash keys (exact sets,
  ``expected_metric_keys``);
- ``check_parameter_updates``: after one large-lr step every trainable parameter has moved (the
  online denoiser, its EMA and, where the mode trains it, every online critic parameter; d3rlpy
  ``check_parameter_updates``);
- ``check_frozen_guidance``: a frozen critic (modes whose critic is not trained, SWG joint after its
  critic phase) is bit-identical after updates, optimiser state and step counter included;
- ``check_determinism``: same seed -> identical metrics and actions; another seed -> other weights;
- ``check_state_dict_round_trip``: state_dict -> load_state_dict into a differently seeded object
  continues bit-identically;
- ``check_snapshot_round_trip``: save_snapshot -> load_snapshot -> make_actor acts exactly as an
  Actor on the live EMA denoiser and critic;
- ``check_config_round_trip``: config JSON round trip and one-line field errors;
- ``check_learns``: the denoising loss on a fixed batch falls.

What each mode means (critic source, trained, in the actor loss) is read from the mode table
``rl_core.modes.MODES``: the checks hold every algorithm to that table.

Tiny configs (hidden 32, T 5, batch 8) on synthetic data built in code; no PyBullet. The helpers
(``tiny_dataset``, ``tiny_buffer``, ``tiny_guidance``, ``make_algo``) are shared by other tests.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from rl_core import diffusion as D
from rl_core.algos import get_algorithm
from rl_core.algos.base import bc_loss
from rl_core.buffer import TensorBuffer, make_normalizer
from rl_core.data.dataset import OfflineDataset
from rl_core.errors import ConfigError
from rl_core.guidance import GuidanceConfig, make_guidance
from rl_core.inference import Actor, InferenceConfig
from rl_core.modes import MODES
from rl_core.snapshot import load_snapshot, make_actor, save_snapshot
from rl_core.types import Batch

OBS_DIM, ACT_DIM, BATCH = 4, 2, 8
_SHARED = dict(lr=3e-3, T=5, sampling_steps=5, ema_start=0, ema_every=1, ema_rate=0.9, lr_anneal_steps=None)
TINY_CONFIGS: dict[str, dict] = {
    "dql": dict(_SHARED, hidden=32, n_layers=2, emb_dim=16),
    "idql": dict(_SHARED, hidden=32, n_blocks=2, emb_dim=16),  # critic_every = 2 (default)
    "edp": dict(_SHARED, hidden=32, n_layers=2, emb_dim=16),
    "swg": dict(_SHARED, hidden=32, n_blocks=2, emb_dim=16, critic_steps=2),
}
ALGOS = tuple(TINY_CONFIGS)


def modes(name: str) -> tuple[str, ...]:
    """The training-guidance modes ``name`` accepts (SWG refuses noise: the random critic has no V)."""
    return get_algorithm(name).modes


CASES = [(a, m) for a in ALGOS for m in modes(a)]


# ----- data, critics, algorithms ------------------------------------------------------------------
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


def mode_guidance_kind(name: str, mode: str) -> str | None:
    """The kind of critic the training loop passes in ``mode`` (rl_core/modes.py): fresh = the
    algorithm's own kind, random, an artifact (here: a fresh IQL critic), or none."""
    return {"fresh": get_algorithm(name).default_guidance_kind, "random": "random", "artifact": "iql",
            "none": None}[MODES[mode].critic]


def make_algo(name: str, mode: str, seed: int = 0, guidance_kind: str | None = None, guidance=None, **overrides):
    """The algorithm with its tiny config (plus ``overrides``) and the given critic, else a fresh tiny
    one of ``guidance_kind`` or of the kind the loop passes in ``mode``."""
    cls = get_algorithm(name)
    kind = guidance_kind or mode_guidance_kind(name, mode)
    if guidance is None and kind:
        guidance = tiny_guidance(kind, seed + 100)
    cfg = cls.Config.from_dict({**TINY_CONFIGS[name], **overrides})
    return cls(cfg, OBS_DIM, ACT_DIM, guidance=guidance, guidance_mode=mode, seed=seed)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def flat_state(d, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(path, leaf) pairs of a nested state dict, in a fixed order (tensors, numbers, ...)."""
    if isinstance(d, dict):
        for k in sorted(d, key=str):
            yield from flat_state(d[k], f"{prefix}/{k}")
    elif isinstance(d, (list, tuple)):
        for i, v in enumerate(d):
            yield from flat_state(v, f"{prefix}/{i}")
    else:
        yield prefix, d


def assert_states_equal(a: dict, b: dict, what: str) -> None:
    fa, fb = dict(flat_state(a)), dict(flat_state(b))
    assert fa.keys() == fb.keys(), f"{what}: state keys differ"
    for k, x in fa.items():
        y = fb[k]
        same = torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
        assert same, f"{what}: {k} differs"


def _named(module_or_params) -> dict[str, torch.Tensor]:
    if hasattr(module_or_params, "named_parameters"):
        return {k: p.detach().clone() for k, p in module_or_params.named_parameters()}
    return {str(i): p.detach().clone() for i, p in enumerate(module_or_params)}


# ----- the agreed metric keys -----------------------------------------------------------------------
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(/[a-z0-9_]+)+$")  # slash-namespaced, lower case
CRITIC_KEYS = {"td": {"loss/critic", "q/mean", "q/max", "grad_norm/critic"}}
CRITIC_KEYS["iql"] = CRITIC_KEYS["td"] | {"loss/value", "v/mean", "grad_norm/value"}
ACTOR_KEYS = {"dql": {"loss/bc", "loss/actor", "actor/grad_norm", "actor/lr"},
              "swg": {"loss/actor", "loss/action", "loss/weight", "actor/grad_norm", "actor/lr",
                      "swg/w_mean", "swg/w_std"}}
ACTOR_KEYS["idql"] = ACTOR_KEYS["edp"] = ACTOR_KEYS["dql"]
Q_TERM_KEYS = {"loss/q_policy", "actor/q_mean"}  # DQL / EDP whenever the critic enters the actor loss


def expected_metric_keys(name: str, mode: str, n: int = 4) -> list[set[str]]:
    """The exact key sets of the first ``n`` updates with the tiny configs.

    Critic steps: a mode whose critic is trained (rl_core/modes.py ``Mode.trained``) trains it every
    update; IDQL only on steps 0, 2, ... (critic_every = 2); SWG joint trains only the critic for
    the training loop's critic phase (rl_core/train.py), never by update(). DQL / EDP report the Q term whenever the mode's
    critic guides the actor.
    """
    kind, spec = mode_guidance_kind(name, mode), MODES[mode]
    critic = [spec.trained] * n
    actor = [True] * n
    if name == "idql":
        critic = [c and i % 2 == 0 for i, c in enumerate(critic)]
    if name == "swg" and mode == "joint":  # the training loop's critic phase trains it, then update() never does
        critic = [False] * n
    out = []
    for c, a in zip(critic, actor):
        keys = set(CRITIC_KEYS[kind]) if c else set()
        if a:
            keys |= ACTOR_KEYS[name] | (Q_TERM_KEYS if name in ("dql", "edp") and spec.guides_actor else set())
        out.append(keys)
    return out


def check_metrics(name: str, mode: str) -> None:
    buf, _ = tiny_buffer()
    algo, g = make_algo(name, mode), gen(0)
    metrics = [algo.update(buf.sample(BATCH, g), g) for _ in range(4)]
    for i, (m, keys) in enumerate(zip(metrics, expected_metric_keys(name, mode))):
        assert set(m) == keys, f"update {i}: keys {sorted(m)} != expected {sorted(keys)}"
        bad = [k for k in m if not KEY_PATTERN.match(k)]
        assert not bad, f"metric keys not slash-namespaced: {bad}"
        assert all(type(v) is float and math.isfinite(v) for v in m.values()), f"update {i}: {m}"


# ----- parameters ---------------------------------------------------------------------------------
def warmup_updates(name: str, mode: str) -> int:
    """Updates before the denoiser trains: none (SWG joint's critic phase runs in the training loop)."""
    return 0


def critic_trains(name: str, mode: str) -> bool:
    """Whether the update after the warm-up trains the critic (IDQL: step 0 is a critic step)."""
    return MODES[mode].trained and (name, mode) != ("swg", "joint")


def check_parameter_updates(name: str, mode: str) -> None:
    """d3rlpy check_parameter_updates: one large-lr step moves every trainable parameter."""
    buf, _ = tiny_buffer()
    algo, g = make_algo(name, mode, lr=0.1), gen(0)
    for _ in range(warmup_updates(name, mode)):
        algo.update(buf.sample(BATCH, g), g)
    before = {"net": _named(algo.net), "ema": _named(algo.ema)}
    if critic_trains(name, mode):
        before["critic"] = _named(list(algo.guidance.parameters()))
        assert before["critic"], "a trained critic without parameters"
    algo.update(buf.sample(BATCH, g), g)
    after = {"net": _named(algo.net), "ema": _named(algo.ema)}
    if "critic" in before:
        after["critic"] = _named(list(algo.guidance.parameters()))
    for part, params in before.items():
        still = [k for k, p in params.items() if torch.equal(p, after[part][k])]
        assert not still, f"{part} parameters did not move: {still}"


def check_frozen_guidance(name: str, mode: str) -> None:
    """A frozen critic is bit-identical after updates (weights, targets, optimisers, step counter)."""
    frozen = MODES[mode].frozen or (name, mode) == ("swg", "joint")
    if not frozen:
        return
    buf, _ = tiny_buffer()
    algo, g = make_algo(name, mode, lr=0.1), gen(0)
    for _ in range(warmup_updates(name, mode)):
        algo.update(buf.sample(BATCH, g), g)
    state0 = copy.deepcopy(algo.guidance.state_dict())
    grads0 = [None if p.grad is None else p.grad.clone() for p in algo.guidance.parameters()]
    for _ in range(3):
        algo.update(buf.sample(BATCH, g), g)
    assert_states_equal(state0, algo.guidance.state_dict(), "frozen guidance")
    assert algo.guidance.frozen and all(not p.requires_grad for p in algo.guidance.parameters())
    # no gradient reaches the critic (SWG joint keeps the .grad of its last critic-phase step)
    grads = [p.grad for p in algo.guidance.parameters()]
    assert all((a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
               for a, b in zip(grads0, grads)), "a gradient reached the frozen critic"


# ----- determinism and state ----------------------------------------------------------------------
def check_determinism(name: str, mode: str) -> None:
    buf, _ = tiny_buffer()
    runs = []
    for _ in range(2):
        algo, g, sg = make_algo(name, mode, seed=3), gen(0), gen(5)
        metrics = [algo.update(buf.sample(BATCH, sg), g) for _ in range(3)]
        actions = algo.sample(buf.obs[:4], gen(9), n=3, temperature=0.5)
        runs.append((metrics, actions, algo))
    assert runs[0][0] == runs[1][0], "same seed, different metrics"
    assert torch.equal(runs[0][1], runs[1][1]), "same seed, different actions"
    other = make_algo(name, mode, seed=4)
    assert any(not torch.equal(a, b) for a, b in zip(other.net.parameters(), runs[0][2].net.parameters())), \
        "another seed gave the same initial weights"


def check_state_dict_round_trip(name: str, mode: str) -> None:
    buf, _ = tiny_buffer()
    a, g, sg = make_algo(name, mode), gen(0), gen(5)
    for _ in range(2):
        a.update(buf.sample(BATCH, sg), g)
    state, g_state, sg_state = copy.deepcopy(a.state_dict()), g.get_state(), sg.get_state()
    expected = [a.update(buf.sample(BATCH, sg), g) for _ in range(2)]
    b = make_algo(name, mode, seed=11)
    b.load_state_dict(state)
    g.set_state(g_state), sg.set_state(sg_state)
    assert [b.update(buf.sample(BATCH, sg), g) for _ in range(2)] == expected, "resumed metrics differ"
    assert_states_equal(a.state_dict(), b.state_dict(), "state after resumed updates")


def check_snapshot_round_trip(name: str, mode: str, tmp_path: Path) -> None:
    """The loaded snapshot acts exactly as an Actor on the live EMA denoiser and critic."""
    buf, ds = tiny_buffer()
    algo, g = make_algo(name, mode), gen(0)
    for _ in range(3):
        algo.update(buf.sample(BATCH, g), g)
    norm = make_normalizer(ds)
    gmeta = None if algo.guidance is None else {"kind": algo.guidance.kind}
    path = save_snapshot(tmp_path / f"{name}_{mode}.pt", algo, step=3, config={"algo": name}, normalizer=norm,
                         dataset_meta={"fingerprint": ds.fingerprint}, guidance_meta=gmeta)
    n = 6 if algo.guidance is not None else 1  # without a critic there is nothing to select by
    inf = InferenceConfig.for_algorithm(algo.cfg, n_candidates=n, scale=2.0 if name == "swg" else 3.0)
    live = Actor(type(algo), algo.cfg, algo.ema, norm, inf, algo.guidance)
    loaded = make_actor(load_snapshot(path), inf)
    obs = ds.observations[:5]
    a1, a2 = (x.act(obs, gen(4)) for x in (live, loaded))
    assert a1.shape == (5, ACT_DIM) and np.all(np.abs(a1) <= 1)
    assert np.array_equal(a1, a2), "snapshot actor acts differently"


def check_config_round_trip(name: str) -> None:
    cls = get_algorithm(name)
    cfg = cls.Config.from_dict(TINY_CONFIGS[name])
    assert cls.Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="unknown field"):
        cls.Config.from_dict({"learning_rate": 1.0})
    with pytest.raises(ConfigError, match=r"solver='rk4'.*allowed values: \['ddpm', 'dpm_solver_1', 'dpm_solver_2m'\]"):
        cls.Config(solver="rk4")
    with pytest.raises(ConfigError, match="sampling_steps"):
        cls.Config(T=5, sampling_steps=6)


# ----- learning -----------------------------------------------------------------------------------
def fixed_denoising_loss(algo, batch: Batch) -> float:
    """The denoising loss on ``batch`` with fixed draws of (k, noise), dropout off: the BC loss
    (DQL / IDQL / EDP) or SWG's action part of eq. (2) at the current weights."""
    was = algo.net.training
    algo.net.eval()
    with torch.no_grad():
        if algo.name == "swg":
            from rl_core.algos.swg import swg_loss

            sched = D.make_schedule("vp", algo.cfg.T)
            loss = swg_loss(algo.net, batch.obs, batch.act, algo.batch_weights(batch), sched, gen(7))[1]["loss/action"]
        else:
            loss = bc_loss(algo.net, batch, algo.cfg, gen(7)).item()
    algo.net.train(was)
    return loss


def check_learns(name: str, mode: str, updates: int = 30) -> None:
    buf, _ = tiny_buffer()
    batch = buf.sample(BATCH, gen(1))
    algo = make_algo(name, mode, lr=1e-2)
    big = Batch(*(t.repeat(16, *[1] * (t.dim() - 1)) for t in (batch.obs, batch.act, batch.rew, batch.next_obs,
                                                                batch.terminal)))
    before, g = fixed_denoising_loss(algo, big), gen(0)
    for _ in range(updates):
        algo.update(batch, g)
    after = fixed_denoising_loss(algo, big)
    assert after < 0.7 * before, f"denoising loss {before:.4f} -> {after:.4f}"


# ----- the tester ---------------------------------------------------------------------------------
def algo_tester(name: str, mode: str, tmp_path: Path) -> None:
    """Every shared check on algorithm ``name`` in training-guidance ``mode``."""
    check_metrics(name, mode)
    check_parameter_updates(name, mode)
    check_frozen_guidance(name, mode)
    check_determinism(name, mode)
    check_state_dict_round_trip(name, mode)
    check_snapshot_round_trip(name, mode, tmp_path)
    check_config_round_trip(name)
    check_learns(name, mode)
