"""The training-guidance mode table (rl_core/modes.py) by value: every row, the derived properties, the
default inference, the guidance_seed column, and the critic ``build_critic`` makes for each mode."""

from __future__ import annotations

import pytest
import torch

import rl_core.modes as modes_module
from rl_core.buffer import make_normalizer
from rl_core.errors import ArtifactMismatchError, ConfigError
from rl_core.guidance import GuidanceConfig, make_guidance, save_artifact
from rl_core.modes import MODES, PRETRAINED_MODES, build_critic, get_mode
from rl_core.types import Normalizer
from tests.rl_core.algo_tester import ACT_DIM, OBS_DIM, tiny_buffer, tiny_guidance

# mode -> (critic source, trained while the policy trains, in the actor's loss): the module docstring's table
TABLE = {
    "joint": ("fresh", True, True),
    "none": ("fresh", True, False),
    "bc": ("none", False, False),
    "noise": ("random", False, True),
    "frozen": ("artifact", False, True),
    "unfrozen": ("artifact", True, True),
}


def test_every_row_of_the_table():
    assert {m.name: (m.critic, m.trained, m.guides_actor) for m in MODES.values()} == TABLE
    assert all(name == m.name for name, m in MODES.items())
    assert PRETRAINED_MODES == ("frozen", "unfrozen")


def test_the_docstring_table_says_the_same():
    rows = {}
    for line in modes_module.__doc__.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in MODES:
            rows[cells[0]] = cells[1:]
    assert rows.keys() == MODES.keys()
    for name, (source, trained, loss) in rows.items():
        mode = MODES[name]
        assert source.split(",")[0].split()[-1] == mode.critic  # "fresh, ...", "fresh random, ...", "pretrained artifact"
        assert (trained == "yes") == mode.trained and (trained == "-") == (not mode.has_critic)
        assert loss.startswith("yes") == mode.guides_actor


@pytest.mark.parametrize("name,has_critic,needs_artifact,frozen", [
    ("joint", True, False, False), ("none", True, False, False), ("bc", False, False, False),
    ("noise", True, False, True), ("frozen", True, True, True), ("unfrozen", True, True, False),
])
def test_derived_properties(name, has_critic, needs_artifact, frozen):
    m = MODES[name]
    assert (m.has_critic, m.needs_artifact, m.frozen) == (has_critic, needs_artifact, frozen)


def test_default_inference_is_one_unguided_sample_without_a_critic():
    inf = {"method": "softmax", "scale": 100.0, "n_candidates": 50}
    for name, m in MODES.items():
        out = m.inference(inf)
        assert out == (dict(inf, method="none") if name == "bc" else inf), name
    assert inf["method"] == "softmax"  # never modified in place


@pytest.mark.parametrize("name,artifact_seed,expected", [
    ("joint", None, 3), ("joint", 9, 3), ("none", 9, 3), ("noise", 9, 3), ("bc", None, -1), ("bc", 9, -1),
    ("frozen", 9, 9), ("unfrozen", 9, 9), ("frozen", None, 3), ("frozen", 0, 0),
])
def test_guidance_seed_column(name, artifact_seed, expected):
    assert MODES[name].guidance_seed(3, artifact_seed) == expected


def test_get_mode_names_the_field_and_the_allowed_modes():
    assert get_mode("frozen") is MODES["frozen"]
    with pytest.raises(ConfigError) as e:
        get_mode("gfdt")
    assert str(e.value) == ("train_guidance='gfdt' is not allowed; allowed values: "
                            "['joint', 'none', 'bc', 'noise', 'frozen', 'unfrozen']")
    with pytest.raises(ConfigError, match=r"^TrainConfig\.train_guidance"):
        get_mode("gfdt", "TrainConfig.train_guidance")


def _weights(critic) -> list[torch.Tensor]:
    return [p.detach().clone() for p in critic.nets.parameters()]


@pytest.mark.parametrize("name,kind", [("joint", "td"), ("none", "iql"), ("noise", "random")])
def test_build_critic_fresh_and_random(name, kind):
    cfg = {"hidden": 32, "n_layers": 2}
    default = "iql" if kind == "iql" else "td"
    critic, meta = build_critic(MODES[name], default_kind=default, obs_dim=OBS_DIM, act_dim=ACT_DIM, seed=4,
                                guidance_config=cfg)
    assert meta is None and critic.kind == kind and critic.cfg.hidden == 32
    same = make_guidance(GuidanceConfig.from_dict({**cfg, "kind": kind}), OBS_DIM, ACT_DIM, 4)
    assert all(torch.equal(a, b) for a, b in zip(_weights(critic), _weights(same), strict=True))  # seeded by `seed`
    other, _ = build_critic(MODES[name], default_kind=default, obs_dim=OBS_DIM, act_dim=ACT_DIM, seed=5,
                            guidance_config=cfg)
    assert not all(torch.equal(a, b) for a, b in zip(_weights(critic), _weights(other)))
    assert critic.frozen == (kind == "random")


def test_build_critic_without_a_critic():
    assert build_critic(MODES["bc"], default_kind="td", obs_dim=OBS_DIM, act_dim=ACT_DIM, seed=0) == (None, None)


@pytest.mark.parametrize("name", ["frozen", "unfrozen"])
def test_build_critic_loads_the_artifact_and_refuses_none(name, tmp_path):
    with pytest.raises(ConfigError) as refused:
        build_critic(MODES[name], default_kind="td", obs_dim=OBS_DIM, act_dim=ACT_DIM, seed=0)
    assert str(refused.value) == (f"train_guidance={name!r} needs a pretrained guidance artifact "
                                  "(TrainConfig.guidance_artifact); got none")
    _, ds = tiny_buffer()
    norm, saved = make_normalizer(ds), tiny_guidance("iql", 6)
    path = save_artifact(tmp_path / "g.pt", saved, {"algo": "pretrain", "seed": 6, "steps": 1, "task": "toy-medium",
                                                     "dataset_fingerprint": ds.fingerprint, "normalizer": norm})
    critic, meta = build_critic(MODES[name], default_kind="td", obs_dim=OBS_DIM, act_dim=ACT_DIM, seed=0,
                                artifact=path, expect_fingerprint=ds.fingerprint, normalizer=norm)
    assert critic.kind == "iql" and meta["seed"] == 6  # the artifact's kind and seed, not the algorithm's
    assert all(torch.equal(a, b) for a, b in zip(_weights(critic), _weights(saved), strict=True))
    # every expectation is checked against the artifact: dataset, shapes, normaliser
    mismatches = {"dataset_fingerprint": dict(expect_fingerprint="another"), "obs_dim": dict(obs_dim=OBS_DIM + 1),
                  "act_dim": dict(act_dim=ACT_DIM + 1),
                  "normalizer.obs_mean": dict(normalizer=Normalizer(tuple(m + 1.0 for m in norm.obs_mean), norm.obs_std,
                                                                 norm.reward_scale))}
    for field, change in mismatches.items():
        kw = dict(obs_dim=OBS_DIM, act_dim=ACT_DIM, expect_fingerprint=ds.fingerprint, normalizer=norm) | change
        with pytest.raises(ArtifactMismatchError, match=f"{field} differs"):
            build_critic(MODES[name], default_kind="td", seed=0, artifact=path, **kw)
    on_meta, _ = build_critic(MODES[name], default_kind="td", obs_dim=OBS_DIM, act_dim=ACT_DIM, seed=0, artifact=path,
                              device="meta")
    assert {p.device.type for p in on_meta.nets.parameters()} == {"meta"}  # placed on the requested device


@pytest.mark.parametrize("name", ["joint", "noise"])
def test_build_critic_places_a_fresh_critic_on_the_requested_device(name):
    critic, _ = build_critic(MODES[name], default_kind="td", obs_dim=OBS_DIM, act_dim=ACT_DIM, seed=0, device="meta")
    assert {p.device.type for p in critic.nets.parameters()} == {"meta"}


def test_the_table_and_the_vocabulary_agree():
    from rl_core.config import TRAIN_GUIDANCE_MODES

    assert tuple(MODES) == TRAIN_GUIDANCE_MODES
