"""The training-guidance mode table (rl_core/modes.py) by value: what `none` and `bc` do in training,
in the snapshot and at inference, and that every consumer reads the one table."""

from __future__ import annotations

import copy

import pytest
import torch

from rl_core.config import TRAIN_GUIDANCE_MODES
from rl_core.errors import ConfigError
from rl_core.inference import InferenceConfig
from rl_core.modes import MODES, PRETRAINED_MODES, get_mode
from rl_core.snapshot import load_snapshot, make_actor, save_snapshot
from rl_core.types import Normalizer
from tests.rl_core.algo_tester import OBS_DIM, gen, make_algo, tiny_buffer


def test_the_table_is_the_vocabulary_and_says_what_each_mode_means():
    assert tuple(MODES) == TRAIN_GUIDANCE_MODES
    assert PRETRAINED_MODES == ("frozen", "unfrozen")
    none, bc = MODES["none"], MODES["bc"]
    assert (none.critic, none.trained, none.guides_actor) == ("fresh", True, False)  # the paper's arm
    assert (bc.critic, bc.trained, bc.guides_actor, bc.has_critic) == ("none", False, False, False)
    assert MODES["noise"].frozen and MODES["frozen"].frozen and not MODES["unfrozen"].frozen
    with pytest.raises(ConfigError, match=r"train_guidance='sometimes'.*'bc'"):
        get_mode("sometimes")


def test_inference_and_guidance_seed_follow_the_table():
    softmax = InferenceConfig(n_candidates=8).to_dict()
    assert get_mode("none").inference(softmax)["method"] == "softmax"  # selection with the critic trained alongside
    assert get_mode("bc").inference(softmax)["method"] == "none"  # nothing to select with
    assert get_mode("bc").guidance_seed(3) == -1 and get_mode("none").guidance_seed(3) == 3
    assert get_mode("frozen").guidance_seed(3, artifact_seed=7) == 7


@pytest.mark.parametrize("name", ["dql", "edp"])
def test_none_trains_its_critic_and_drops_only_the_q_term(name):
    buf, _ = tiny_buffer()
    algo = make_algo(name, "none")
    critic0 = copy.deepcopy(algo.guidance.state_dict())
    g = gen(0)
    for _ in range(3):
        m = algo.update(buf.sample(8, g), g)
        assert "loss/critic" in m and "loss/q_policy" not in m and m["loss/actor"] == m["loss/bc"]
    moved = [not torch.equal(a, b) for a, b in zip(critic0["nets"].values(), algo.guidance.state_dict()["nets"].values())]
    assert any(moved)


def test_none_snapshot_carries_the_critic_and_inference_resamples_with_it(tmp_path):
    buf, ds = tiny_buffer()
    algo = make_algo("dql", "none")
    g = gen(0)
    for _ in range(2):
        algo.update(buf.sample(8, g), g)
    snap = load_snapshot(save_snapshot(tmp_path / "s.pt", algo, step=2, config={}, normalizer=Normalizer.identity(OBS_DIM),
                                       dataset_meta={}, guidance_meta={"kind": "td"}))
    assert snap.guidance is not None
    inference = InferenceConfig.from_dict(get_mode("none").inference(InferenceConfig(n_candidates=8).to_dict()))
    actor = make_actor(snap, inference)
    assert actor.guidance is snap.guidance and actor.n == 8
    calls = []
    q = snap.guidance.q
    snap.guidance.q = lambda *a, **k: calls.append(1) or q(*a, **k)  # the actor scores candidates with it
    actor.act(ds.observations[:3], torch.Generator().manual_seed(0))
    assert calls


def test_bc_has_no_critic_and_evaluates_one_unselected_sample(tmp_path):
    buf, ds = tiny_buffer()
    algo = make_algo("dql", "bc")
    assert algo.guidance is None
    m = algo.update(buf.sample(8, gen(0)), gen(0))
    assert "loss/critic" not in m and m["loss/actor"] == m["loss/bc"]
    snap = load_snapshot(save_snapshot(tmp_path / "s.pt", algo, step=1, config={}, normalizer=Normalizer.identity(OBS_DIM),
                                       dataset_meta={}, guidance_meta=None))
    inference = InferenceConfig.from_dict(get_mode("bc").inference(InferenceConfig(n_candidates=8).to_dict()))
    actor = make_actor(snap, inference)
    assert snap.guidance is None and inference.method == "none" and actor.n == 1
    with pytest.raises(ConfigError, match="trains without a critic"):
        make_algo("dql", "bc", guidance_kind="td")


def test_without_a_critic_one_unguided_sample_except_swg_self_guidance():
    from rl_core.modes import without_critic

    assert without_critic(InferenceConfig(n_candidates=8).to_dict())["method"] == "none"
    swg = InferenceConfig(method="swg", n_candidates=1).to_dict()
    assert without_critic(swg) == swg  # self-guidance needs no critic
    assert without_critic(dict(swg, n_candidates=4))["method"] == "none"  # SWG-R by Q needs one
    assert without_critic(dict(swg, n_candidates=4, swg_select="weight"))["method"] == "swg"
    assert get_mode("bc").inference(swg) == swg


def test_guidance_search_skips_only_groups_without_a_critic():
    from sweeps.guidance_search import SearchConfig, method_for

    cfg = SearchConfig(method="softmax")
    assert method_for(cfg, "dql", "none") == "softmax"  # none trains a critic: searchable
    assert method_for(cfg, "dql", "bc") is None
    assert method_for(SearchConfig(method="swg"), "swg", "bc") == "swg"
