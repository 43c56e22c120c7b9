"""Guidance modules and artifacts: learning, freezing, target updates, exact resume, artifact checks."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
from torch import nn

from rl_core.errors import ArtifactMismatchError, ConfigError
from rl_core.guidance import (ArtifactError, GuidanceCapabilityError, GuidanceConfig, GuidanceError,
                              load_artifact, make_guidance, save_artifact, soft_update, value_loss)
from rl_core.types import Batch, Normalizer

OBS, ACT = 3, 2


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny nets: intra-op threading only adds overhead (and contention on shared CI cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(kind: str, **kw) -> GuidanceConfig:
    return GuidanceConfig(kind=kind, hidden=16, **kw)


def make_batch(n: int = 32, seed: int = 0, terminal: float = 0.0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs, act = torch.randn(n, OBS, generator=g), torch.rand(n, ACT, generator=g) * 2 - 1
    rew = obs[:, 0] + act.sum(-1)  # learnable function of (s, a)
    return Batch(obs, act, rew, torch.randn(n, OBS, generator=g), torch.full((n,), terminal))


def next_act(n: int = 32) -> torch.Tensor:
    return torch.rand(n, ACT, generator=torch.Generator().manual_seed(9)) * 2 - 1


def meta(**kw) -> dict:
    base = {"algo": "idql", "seed": 1, "steps": 10, "dataset_fingerprint": "fp-abc", "task": "hopper-medium",
            "normalizer": Normalizer((0.0, 1.0, 2.0), (1.0, 2.0, 3.0), 0.5)}
    return {**base, **kw}


# ----- config, shared utility, pure losses -------------------------------------------------------

def test_config_json_round_trip_and_errors_name_the_field() -> None:
    cfg = GuidanceConfig(kind="td", target_update="cd_swapped", grad_clip=1.0)
    assert GuidanceConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.resolved().target_every == 5 and cfg.resolved().n_layers == 3 and cfg.resolved().variant == "dql"
    assert GuidanceConfig(kind="iql").resolved().n_layers == 2
    with pytest.raises(ConfigError, match=r"guidance.kind = 'sarsa'.*td, iql, random"):
        GuidanceConfig(kind="sarsa")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"guidance.expectile .*\(0, 1\)"):
        GuidanceConfig(expectile=1.5)
    with pytest.raises(ConfigError, match="unknown field"):
        GuidanceConfig.from_dict({"kind": "iql", "taus": 0.1})


def test_soft_update_matches_hand_computed() -> None:
    target, source = nn.Linear(2, 1), nn.Linear(2, 1)
    nn.init.constant_(target.weight, 1.0), nn.init.constant_(target.bias, -1.0)
    nn.init.constant_(source.weight, 3.0), nn.init.constant_(source.bias, 1.0)
    soft_update(target, source, 0.25)
    assert torch.allclose(target.weight, torch.full((1, 2), 1.5))  # 0.25*3 + 0.75*1
    assert torch.allclose(target.bias, torch.tensor([-0.5]))  # 0.25*1 + 0.75*(-1)


def test_value_losses_match_hand_computed_values() -> None:
    u = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    assert torch.allclose(value_loss(u, "expectile", 0.7, 1.0), torch.tensor([0.3, 0.175, 2.8]))
    assert torch.allclose(value_loss(u, "quantile", 0.7, 1.0), torch.tensor([0.3, 0.35, 1.4]))
    expo = value_loss(u, "exponential", 0.7, 1.0)  # (exp(min(u, log 6)) - 1) * u
    hand = torch.tensor([(math.exp(-1) - 1) * -1, (math.exp(0.5) - 1) * 0.5, (6 - 1) * 2.0])
    assert torch.allclose(expo, hand)
    expo.sum().backward()  # the exp weight is stop-gradient: d/du = exp(min(u, log 6)) - 1
    assert torch.allclose(u.grad, torch.tensor([math.exp(-1) - 1, math.exp(0.5) - 1, 5.0]))


# ----- learning ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["td", "iql"])
def test_critic_loss_falls_on_a_fixed_batch(kind: str) -> None:
    critic, batch = make_guidance(tiny(kind, lr=3e-3), OBS, ACT, 0), make_batch()
    losses = [critic.update(batch, next_act())["loss/critic"] for _ in range(80)]
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-5:]) < 0.3 * sum(losses[:5])


def test_iql_value_approaches_the_expectile_of_q_targets() -> None:
    """One state, actions a ~ U[-1, 1], terminal rewards r = a: Q → a, so V → the 0.7-expectile of a."""
    n, tau = 256, 0.7
    act = torch.linspace(-1, 1, n).unsqueeze(-1)
    batch = Batch(torch.zeros(n, 1), act, act[:, 0].clone(), torch.zeros(n, 1), torch.ones(n))
    critic = make_guidance(tiny("iql", lr=3e-3, tau=0.05, expectile=tau), 1, 1, 0)
    for _ in range(250):
        critic.update(batch)
    lo, hi = -1.0, 1.0  # expectile m solves tau*E[(a-m)+] = (1-tau)*E[(m-a)+]
    for _ in range(50):
        m = (lo + hi) / 2
        gap = tau * (act - m).clamp(min=0).mean() - (1 - tau) * (m - act).clamp(min=0).mean()
        lo, hi = (m, hi) if gap > 0 else (lo, m)
    v = critic.v(torch.zeros(1, 1)).item()
    assert abs(v - m) < 0.05, (v, m)
    assert m > 0.15  # the expectile is well above the mean 0: the test distinguishes it from plain regression


# ----- TD targets by hand ------------------------------------------------------------------------

GAMMA = 0.9  # != 1 and != the default 0.99: a target that ignores gamma differs


def _td_batch(n: int = 8) -> Batch:
    """Non-terminal and terminal rows mixed; next states differ from states."""
    b = make_batch(n, seed=4)
    return Batch(b.obs, b.act, b.rew, b.next_obs, torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0])[:n])


def _perturbed_target(critic) -> None:
    """Make the target twin differ from the online one (as after training), so reading the wrong
    net changes the target."""
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in critic.nets["q_target"].parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))


def _assert_only(reported: float, right: float, wrong: dict[str, float]) -> None:
    """``reported`` equals the hand value and none of the plausible wrong variants (so the data
    distinguishes them: the test can fail)."""
    assert reported == pytest.approx(right, rel=1e-5, abs=1e-7)
    for name, value in wrong.items():
        assert value != pytest.approx(right, rel=1e-3), f"test data does not separate the variant {name!r}"


def test_td_update_regresses_to_the_hand_computed_target() -> None:
    """y = r + γ(1 − d)·min_j Q'_j(s', a') from the TARGET twin at the caller's a';
    L = Σ_j mean (Q_j(s, a) − y)²."""
    critic, batch, a2 = make_guidance(tiny("td", gamma=GAMMA), OBS, ACT, 0), _td_batch(), next_act(8)
    _perturbed_target(critic)
    with torch.no_grad():
        t1, t2 = critic.nets["q_target"](batch.next_obs, a2)
        o1, o2 = critic.nets["q"](batch.next_obs, a2)
        q1, q2 = critic.nets["q"](batch.obs, batch.act)
    r, d = batch.rew, batch.terminal

    def loss(y: torch.Tensor) -> float:
        return (((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()).item()

    right = loss(r + GAMMA * (1 - d) * torch.minimum(t1, t2))
    wrong = {"no (1 - d)": loss(r + GAMMA * torch.minimum(t1, t2)),
             "gamma 0.99": loss(r + 0.99 * (1 - d) * torch.minimum(t1, t2)),
             "max head": loss(r + GAMMA * (1 - d) * torch.maximum(t1, t2)),
             "online net": loss(r + GAMMA * (1 - d) * torch.minimum(o1, o2)),
             "heads averaged": loss(r + GAMMA * (1 - d) * torch.minimum(t1, t2)) / 2}
    m = critic.update(batch, a2)
    _assert_only(m["loss/critic"], right, wrong)
    assert m["q/mean"] == pytest.approx(torch.stack([q1, q2]).mean().item(), rel=1e-5)


def test_iql_update_hand_computed_value_and_q_targets() -> None:
    """L_V = mean |τ − 1[u<0]| u², u = min_j Q'_j(s, a) − V(s) (target twin, dataset action); then
    y = r + γ(1 − d)·V(s') with the V just stepped (IDQL order); L_Q = Σ_j mean (Q_j(s, a) − y)²."""
    critic, batch = make_guidance(tiny("iql", gamma=GAMMA, lr=1e-2), OBS, ACT, 0), _td_batch()
    _perturbed_target(critic)
    with torch.no_grad():
        qt = torch.minimum(*critic.nets["q_target"](batch.obs, batch.act))
        qo = torch.minimum(*critic.nets["q"](batch.obs, batch.act))
        v0, v0_next = critic.v(batch.obs), critic.v(batch.next_obs)
        q1, q2 = critic.nets["q"](batch.obs, batch.act)
    r, d = batch.rew, batch.terminal

    def v_loss(u: torch.Tensor) -> float:
        return (torch.where(u > 0, 0.7, 0.3) * u ** 2).mean().item()

    def q_loss(y: torch.Tensor) -> float:
        return (((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()).item()

    m = critic.update(batch)
    with torch.no_grad():
        v1_next = critic.v(batch.next_obs)  # V after its step (the Q step does not touch V)
    _assert_only(m["loss/value"], v_loss(qt - v0),
                 {"online Q": v_loss(qo - v0), "tau 0.5": (0.5 * (qt - v0) ** 2).mean().item()})
    _assert_only(m["loss/critic"], q_loss(r + GAMMA * (1 - d) * v1_next),
                 {"no (1 - d)": q_loss(r + GAMMA * v1_next), "gamma 0.99": q_loss(r + 0.99 * (1 - d) * v1_next),
                  "V before its step": q_loss(r + GAMMA * (1 - d) * v0_next)})


# ----- freezing and capabilities ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["td", "iql", "random"])
def test_frozen_critic_does_not_move_but_passes_action_gradients(kind: str) -> None:
    critic = make_guidance(tiny(kind), OBS, ACT, 0)
    critic.freeze()
    before = {k: v.clone() for k, v in critic.state_dict()["nets"].items()}
    obs = torch.randn(8, OBS)
    act = torch.zeros(8, ACT, requires_grad=True)
    opt = torch.optim.SGD([act], lr=0.1)
    loss = -critic.q(obs, act).mean()  # the algorithm-side actor loss
    loss.backward()
    opt.step()
    assert critic.frozen and act.grad is not None and act.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())
    after = critic.state_dict()["nets"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(GuidanceError):
        critic.update(make_batch(), next_act())


def test_unfreeze_allows_training_again() -> None:
    critic = make_guidance(tiny("iql"), OBS, ACT, 0)
    critic.freeze()
    critic.unfreeze()
    w0 = next(critic.parameters()).clone()
    critic.update(make_batch())
    assert not critic.frozen and not torch.equal(w0, next(critic.parameters()))
    with pytest.raises(GuidanceError, match="always frozen"):
        make_guidance(tiny("random"), OBS, ACT, 0).unfreeze()


def test_td_update_without_next_actions_points_to_iql() -> None:
    with pytest.raises(GuidanceError, match="next_act.*kind 'iql'"):
        make_guidance(tiny("td"), OBS, ACT, 0).update(make_batch())


def test_v_on_td_critic_raises_capability_error() -> None:
    td = make_guidance(tiny("td"), OBS, ACT, 0)
    assert td.provides == frozenset({"q"})
    with pytest.raises(GuidanceCapabilityError, match=r"kind 'td' has no V.*softmax over Q − V.*'iql'"):
        td.v(torch.zeros(2, OBS))
    iql = make_guidance(tiny("iql"), OBS, ACT, 0)
    obs, act = torch.randn(4, OBS), torch.randn(4, ACT)
    assert iql.v(obs).shape == (4,) and torch.allclose(iql.advantage(obs, act), iql.q(obs, act) - iql.v(obs))


# ----- target updates ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode,every,coef", [("polyak", 1, 0.005), ("cd_swapped", 5, 0.995)])
def test_target_update_matches_hand_computed(mode: str, every: int, coef: float) -> None:
    """polyak: target ← 0.005·online + 0.995·target each step; cd_swapped: 0.995·online + 0.005·target
    at steps 0, 5, 10, … (CleanDiffuser's swapped coefficients)."""
    critic = make_guidance(tiny("td", target_update=mode), OBS, ACT, 0)
    batch, a2 = make_batch(), next_act()
    for step in range(7):
        old = [p.clone() for p in critic.nets["q_target"].parameters()]
        critic.update(batch, a2)
        online = list(critic.nets["q"].parameters())
        for t, o, s in zip(critic.nets["q_target"].parameters(), old, online):
            want = coef * s + (1 - coef) * o if step % every == 0 else o
            assert torch.allclose(t, want, atol=1e-7), (mode, step)


# ----- seeding and exact resume -------------------------------------------------------------------

def test_seed_controls_initial_weights() -> None:
    def flat(g) -> torch.Tensor:
        return torch.cat([p.flatten() for p in g.parameters()])

    a, b, c = (make_guidance(tiny("iql"), OBS, ACT, s) for s in (3, 3, 4))
    assert torch.equal(flat(a), flat(b)) and not torch.equal(flat(a), flat(c))
    g1, g2 = (make_guidance(tiny("td"), OBS, ACT, torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(flat(g1), flat(g2))


@pytest.mark.parametrize("kind,mode", [("td", "cd_swapped"), ("iql", "polyak")])
def test_state_dict_resume_is_bit_identical(kind: str, mode: str) -> None:
    cfg, batches = tiny(kind, target_update=mode), [make_batch(seed=i) for i in range(6)]
    straight = make_guidance(cfg, OBS, ACT, 0)
    ref = [straight.update(b, next_act()) for b in batches]
    first = make_guidance(cfg, OBS, ACT, 0)
    got = [first.update(b, next_act()) for b in batches[:3]]
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    resumed = make_guidance(cfg, OBS, ACT, 99)  # different init: everything must come from the state
    resumed.load_state_dict(torch.load(io.BytesIO(buf.getvalue())))
    got += [resumed.update(b, next_act()) for b in batches[3:]]
    assert got == ref
    s1, s2 = straight.state_dict()["nets"], resumed.state_dict()["nets"]
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


# ----- artifacts --------------------------------------------------------------------------------

def test_save_load_gives_identical_q_and_two_loads_agree(tmp_path) -> None:
    critic = make_guidance(tiny("iql"), OBS, ACT, 0)
    for i in range(3):
        critic.update(make_batch(seed=i))
    path = save_artifact(tmp_path / "g" / "final.pt", critic, meta())
    obs, act = torch.randn(16, OBS), torch.randn(16, ACT)
    for_dql, m = load_artifact(path, expect_fingerprint="fp-abc", obs_dim=OBS, act_dim=ACT,
                               normalizer=Normalizer((0.0, 1.0, 2.0), (1.0, 2.0, 3.0), 0.5))
    for_idql, _ = load_artifact(path)
    assert m["kind"] == "iql" and m["reward_scale"] == 0.5 and m["steps"] == 10 and m["obs_dim"] == OBS
    assert not for_dql.frozen  # the caller decides
    with torch.no_grad():
        assert torch.equal(for_dql.q(obs, act), critic.q(obs, act))
        assert torch.equal(for_dql.q(obs, act), for_idql.q(obs, act))
        assert torch.equal(for_idql.v(obs), critic.v(obs))
    for_dql.update(make_batch(seed=5))  # the two loads are independent objects
    assert torch.equal(for_idql.q(obs, act), critic.q(obs, act).detach())
    assert sorted(p.name for p in tmp_path.joinpath("g").iterdir()) == ["final.pt"]  # no temp file left


@pytest.mark.parametrize("kw,field", [
    ({"expect_fingerprint": "fp-other"}, "dataset_fingerprint"),
    ({"obs_dim": 5}, "obs_dim"),
    ({"act_dim": 1}, "act_dim"),
    ({"normalizer": Normalizer((0.0, 1.0, 2.5), (1.0, 2.0, 3.0), 0.5)}, "normalizer.obs_mean"),
    ({"normalizer": Normalizer((0.0, 1.0, 2.0), (1.0, 2.0, 3.0), 1.0)}, "normalizer.reward_scale"),
])
def test_artifact_mismatch_names_the_field(tmp_path, kw: dict, field: str) -> None:
    path = save_artifact(tmp_path / "a.pt", make_guidance(tiny("td"), OBS, ACT, 0), meta())
    with pytest.raises(ArtifactMismatchError) as e:
        load_artifact(path, **kw)
    msg = str(e.value)
    assert f"{field} differs" in msg and "expected" in msg and "mdpt pretrain-guidance --task" in msg


def test_missing_or_corrupt_artifact_names_the_path(tmp_path) -> None:
    with pytest.raises(ArtifactError, match="not found.*nope.pt"):
        load_artifact(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ArtifactError, match="bad.pt is corrupt"):
        load_artifact(bad)
    with pytest.raises(GuidanceError, match="lacks.*dataset_fingerprint"):
        save_artifact(tmp_path / "x.pt", make_guidance(tiny("td"), OBS, ACT, 0),
                      {k: v for k, v in meta().items() if k != "dataset_fingerprint"})
