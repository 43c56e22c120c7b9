"""How the critic enters DQL / EDP training, by value: the normalised Q term, the actor loss
L = L_bc + η L_q per mode, its direction (a known critic's Q rises), the noise mode's random
critic, and the artifact weights of the frozen / unfrozen modes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from rl_core.algos.base import q_policy_loss
from rl_core.buffer import make_normalizer
from rl_core.guidance import Guidance, GuidanceConfig, load_artifact, save_artifact
from rl_core.types import Batch
from tests.rl_core.algo_tester import ACT_DIM, OBS_DIM, gen, make_algo, tiny_buffer, tiny_guidance


pytestmark = pytest.mark.usefixtures("one_thread")


def _params(module: nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in module.parameters()]


# ----- the Q term -----------------------------------------------------------------------------------
def test_q_policy_loss_matches_the_hand_computed_value_and_gradient():
    # Q_0 = (1, -3, 2, -4): mean -1, |.| mean 2.5;  Q_1 = (-2, 4, 0.5, -1.5): mean 0.25, |.| mean 2
    q = torch.tensor([[1.0, -3.0, 2.0, -4.0], [-2.0, 4.0, 0.5, -1.5]], requires_grad=True)
    loss = q_policy_loss(q, 0, 1)
    assert loss.item() == pytest.approx(-(-1.0) / 2.0)
    loss.backward()  # d/dQ_0 = -1 / (B |Q_1|.mean()) = -1/8; the normaliser is a constant (stopgrad)
    torch.testing.assert_close(q.grad, torch.tensor([[-0.125] * 4, [0.0] * 4]))
    q.grad = None
    same = q_policy_loss(q, 1, 1)  # official EDP: the same head normalises
    assert same.item() == pytest.approx(-0.25 / 2.0)
    same.backward()
    torch.testing.assert_close(q.grad, torch.tensor([[0.0] * 4, [-0.125] * 4]))


@pytest.mark.parametrize("name", ["dql", "edp"])
@pytest.mark.parametrize("mode", ["joint", "frozen", "noise", "unfrozen"])
def test_actor_loss_is_bc_plus_eta_times_q_policy(name, mode):
    buf, _ = tiny_buffer()
    algo, g = make_algo(name, mode, eta=2.5), gen(0)
    for _ in range(2):
        m = algo.update(buf.sample(8, g), g)
        assert m["loss/q_policy"] != 0.0
        assert m["loss/actor"] == pytest.approx(m["loss/bc"] + 2.5 * m["loss/q_policy"], rel=1e-5, abs=1e-6)


# ----- direction: a known critic's Q rises -------------------------------------------------------------
C = (0.8, -0.8)  # the known critic's maximiser, away from the dataset's actions (mean ~ 0)


class QuadraticGuidance:
    """A known critic with no parameters: Q_1(s, a) = −‖a − c‖², Q_2 = 2 Q_1 (both maximal at c).
    Satisfies the Guidance protocol; it cannot be trained."""

    kind, provides = "quadratic", frozenset({"q"})
    obs_dim, act_dim = OBS_DIM, ACT_DIM

    def __init__(self, c: tuple[float, float] = C) -> None:
        self.c, self.frozen, self.cfg = torch.tensor(c), False, GuidanceConfig(kind="td")

    def q_heads(self, obs_n: Tensor, act: Tensor, *, target: bool = False) -> Tensor:
        q = -((act - self.c) ** 2).sum(-1)
        return torch.stack([q, 2 * q])

    def q(self, obs_n: Tensor, act: Tensor, *, target: bool = False) -> Tensor:
        return self.q_heads(obs_n, act).min(0).values

    def v(self, obs_n: Tensor) -> Tensor:
        raise NotImplementedError

    def update(self, batch: Batch, next_act: Tensor | None = None) -> dict[str, float]:
        raise AssertionError("the known critic is never trained")

    def freeze(self) -> None:
        self.frozen = True

    def unfreeze(self) -> None:
        self.frozen = False

    def parameters(self) -> Iterator[nn.Parameter]:
        return iter(())

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, d: dict) -> None:
        pass

    def to(self, device) -> QuadraticGuidance:
        return self


@pytest.mark.parametrize("name", ["dql", "edp"])
def test_frozen_known_critic_raises_q_of_the_policy_actions(name):
    """A few frozen-mode updates with η > 0 move π(s) towards argmax Q: E_s Q(s, π(s)) rises relative to
    the same seeds with η = 0. Fails if the sign of the Q term is flipped (checked by a local flip)."""
    buf, _ = tiny_buffer()
    critic = QuadraticGuidance()
    assert isinstance(critic, Guidance)
    obs = buf.obs.repeat(4, 1)  # 480 states
    q_of_policy = {}
    for eta in (0.0, 1.0):
        algo, g, sg = make_algo(name, "frozen", guidance=critic, eta=eta, lr=1e-2), gen(0), gen(1)
        for _ in range(10):
            algo.update(buf.sample(32, sg), g)
        with torch.no_grad():
            act = algo.sample(obs, gen(2), temperature=1.0, ema=False)[:, 0]
        q_of_policy[eta] = critic.q(obs, act).mean().item()
    assert q_of_policy[1.0] > q_of_policy[0.0] + 1.0, q_of_policy


# ----- noise mode ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["dql", "edp"])
def test_noise_mode_trains_the_actor_through_its_random_critic(name):
    """Same seeds: η > 0 gives other weights than η = 0, and two random critics give two different
    actors (identical RNG draws, so only the critic's gradient differs), while at η = 0 the critic
    does not matter; the random critics never move. Fails if noise mode ignored its critic (checked)."""
    buf, _ = tiny_buffer()
    nets = {}
    for eta in (0.0, 1.0):
        for critic_seed in (7, 8):
            critic = tiny_guidance("random", critic_seed)
            critic0 = _params(critic.nets)
            algo, g, sg = make_algo(name, "noise", guidance=critic, eta=eta), gen(0), gen(1)
            ms = [algo.update(buf.sample(8, sg), g) for _ in range(3)]
            nets[eta, critic_seed] = _params(algo.net)
            assert all(torch.equal(a, b) for a, b in zip(critic0, _params(critic.nets))), "random critic moved"
            assert ("loss/q_policy" in ms[-1]) == (eta > 0)

    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(nets[a], nets[b]))

    assert same((0.0, 7), (0.0, 8))
    assert not same((1.0, 7), (0.0, 7))
    assert not same((1.0, 7), (1.0, 8))


# ----- artifacts: unfrozen starts from them and trains, frozen never moves ---------------------------
def _artifact(tmp_path):
    buf, ds = tiny_buffer()
    critic, g = tiny_guidance("iql", 5), gen(3)
    for _ in range(3):  # a trained artifact (its target differs from its online net)
        critic.update(buf.sample(8, g))
    meta = {"algo": "pretrain", "seed": 5, "steps": 3, "dataset_fingerprint": ds.fingerprint, "task": "toy-medium",
            "normalizer": make_normalizer(ds)}
    path = save_artifact(tmp_path / "g.pt", critic, meta)
    return path, torch.load(path, weights_only=True)["state_dict"]["nets"]


@pytest.mark.parametrize("name", ["dql", "edp"])
def test_unfrozen_starts_from_the_artifact_and_trains_it_and_frozen_never_moves_it(name, tmp_path):
    path, saved = _artifact(tmp_path)
    buf, _ = tiny_buffer()
    for mode in ("unfrozen", "frozen"):
        algo, g = make_algo(name, mode, guidance=load_artifact(path)[0]), gen(0)
        nets0 = algo.guidance.state_dict()["nets"]
        assert nets0.keys() == saved.keys() and all(torch.equal(nets0[k], saved[k]) for k in saved)
        for _ in range(3):
            algo.update(buf.sample(8, g), g)
        nets = algo.guidance.state_dict()["nets"]
        if mode == "frozen":
            assert all(torch.equal(nets[k], saved[k]) for k in saved), "frozen critic moved"
        else:
            online = [k for k in saved if not k.startswith("q_target")]
            assert online and all(not torch.equal(nets[k], saved[k]) for k in online), "unfrozen critic did not train"
