"""Guidance pretraining resumed from a checkpoint equals the uninterrupted run, bit for bit
(rl_core.train.run_pretraining; the diffusion loop's resume test is in test_train.py)."""

from __future__ import annotations

import pytest
import torch

from rl_core.train import PretrainConfig, load_checkpoint, run_pretraining
from tests.rl_core.algo_tester import flat_state
from tests.rl_core.test_train import TINY_GUIDANCE, comparable, tiny_hopper_dataset


class Interrupted(Exception):
    """Stands for the process dying right after a checkpoint was written."""


@pytest.fixture(scope="module")
def dataset():
    return tiny_hopper_dataset()


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _states_equal(a: dict, b: dict) -> bool:
    fa, fb = dict(flat_state(a)), dict(flat_state(b))
    assert fa.keys() == fb.keys()
    return all(torch.equal(x, fb[k]) if isinstance(x, torch.Tensor) else x == fb[k] for k, x in fa.items())


@pytest.mark.parametrize("kind", ["td", "iql"])
def test_pretraining_interrupted_then_resumed_equals_the_uninterrupted_run(kind, dataset, tmp_path):
    cfg = PretrainConfig(task="hopper-tiny", kind=kind, guidance_config=TINY_GUIDANCE, seed=4, steps=12,
                         batch_size=16, save_every=4, log_every=2, threads=1)
    full: list[dict] = []
    run_pretraining(cfg, dataset, workdir=tmp_path / "a", report=full.append)

    def die_at_8(step, path):
        if step == 8:
            raise Interrupted

    first: list[dict] = []
    with pytest.raises(Interrupted):
        run_pretraining(cfg, dataset, workdir=tmp_path / "b", report=first.append, on_checkpoint=die_at_8)
    assert not (tmp_path / "b" / "final.pt").exists()
    ckpt = tmp_path / "b" / "checkpoints" / "step_00000008"
    mid = load_checkpoint(ckpt)  # the resumed run replaces it by its own later checkpoints
    resumed: list[dict] = []
    final = run_pretraining(cfg, dataset, workdir=tmp_path / "b", report=resumed.append, resume_from=ckpt)

    assert [m["step"] for m in first] == [2, 4, 6, 8] and [m["step"] for m in resumed] == [10, 12]
    assert comparable(first + resumed) == comparable(full)  # every logged metric, bit-identical
    for name in ("step_00000012.pt", "final.pt"):
        a, b = (torch.load(d / name, weights_only=True) for d in (tmp_path / "a", final.parent))
        assert a["meta"] == b["meta"] and _states_equal(a["state_dict"], b["state_dict"]), name
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_00000012")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_00000012")
    assert _states_equal(a["guidance"], b["guidance"])  # nets, target nets, optimiser moments, step counters
    assert all(torch.equal(x, y) for x, y in zip(a["rng"]["generators"], b["rng"]["generators"], strict=True))
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    # the run really resumed: it trained between the checkpoint and the end
    assert not _states_equal(mid["guidance"], b["guidance"])


def test_resuming_pretraining_refuses_another_kind_or_seed(dataset, tmp_path):
    from rl_core.errors import ConfigError

    cfg = PretrainConfig(task="hopper-tiny", kind="iql", guidance_config=TINY_GUIDANCE, seed=4, steps=4,
                         batch_size=16, log_every=2, threads=1)
    run_pretraining(cfg, dataset, workdir=tmp_path)
    for change in ({"seed": 5}, {"batch_size": 8}):
        other = PretrainConfig.from_dict({**cfg.to_dict(), **change, "steps": 8})
        with pytest.raises(ConfigError, match=f"config field\\(s\\) \\['{next(iter(change))}'\\] differ"):
            run_pretraining(other, dataset, workdir=tmp_path / "b", resume_from=tmp_path / "checkpoints" / "step_00000004")
