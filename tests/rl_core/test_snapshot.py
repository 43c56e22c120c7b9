"""Snapshots: compact contents, exact round trip, atomic writes, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl_core.buffer import make_normalizer
from rl_core.errors import SnapshotError
from rl_core.snapshot import load_snapshot, save_snapshot
from tests.rl_core.algo_tester import OBS_DIM, make_algo, tiny_buffer

META = {"fingerprint": "abc123", "env_id": "HopperBulletEnv-v0", "task": "hopper-medium",
        "ref_min_score": np.float64(-20.0), "ref_max_score": 3234.3, "counts": np.array([3, 4])}


def _trained(name: str, mode: str, steps: int = 3):
    buf, ds = tiny_buffer()
    algo, g = make_algo(name, mode), torch.Generator().manual_seed(0)
    for _ in range(steps):
        algo.update(buf.sample(8, g), g)
    return algo, ds


@pytest.mark.parametrize("name,mode", [("dql", "joint"), ("idql", "joint"), ("edp", "noise"), ("dql", "none"), ("dql", "bc")])
def test_round_trip_restores_every_field_the_ema_denoiser_and_the_critic(name, mode, tmp_path):
    algo, ds = _trained(name, mode)
    norm = make_normalizer(ds)
    gmeta = None if algo.guidance is None else {"kind": algo.guidance.kind, "seed": 100}
    path = save_snapshot(tmp_path / "step_00000003.pt", algo, step=3, config={"algo": name, "seed": 0},
                         normalizer=norm, dataset_meta=META, guidance_meta=gmeta)
    snap = load_snapshot(path)
    assert (snap.algo, snap.step, snap.config, snap.obs_dim, snap.act_dim) == (name, 3, {"algo": name, "seed": 0},
                                                                               algo.obs_dim, algo.act_dim)
    assert snap.algo_config == algo.cfg.to_dict() and snap.normalizer == norm and snap.guidance_meta == gmeta
    assert snap.dataset_meta == {**META, "ref_min_score": -20.0, "counts": [3, 4]}
    ema, online, loaded = algo.ema.state_dict(), algo.net.state_dict(), snap.denoiser.state_dict()
    assert all(torch.equal(ema[k], loaded[k]) for k in ema)
    assert any(not torch.equal(online[k], loaded[k]) for k in online)  # the EMA, not the online net
    assert not snap.denoiser.training and not any(p.requires_grad for p in snap.denoiser.parameters())
    if algo.guidance is None:
        assert snap.guidance is None
        return
    obs, act = torch.randn(5, OBS_DIM), torch.rand(5, algo.act_dim) * 2 - 1
    for target in (False, True):
        assert torch.equal(snap.guidance.q(obs, act, target=target), algo.guidance.q(obs, act, target=target))
    assert snap.guidance.frozen


def test_snapshot_is_compact_and_written_atomically(tmp_path):
    algo, ds = _trained("dql", "joint")
    path = tmp_path / "s.pt"
    for step in (3, 4):  # overwriting an existing snapshot is fine
        save_snapshot(path, algo, step=step, config={}, normalizer=make_normalizer(ds), dataset_meta={},
                      guidance_meta=None)
    assert [p.name for p in tmp_path.iterdir()] == ["s.pt"]
    raw = torch.load(path, weights_only=True)
    assert raw["step"] == 4 and "optimizer" not in raw and set(raw["guidance"]) == {"config", "nets", "steps"}
    full = tmp_path / "full.pt"
    torch.save(algo.state_dict(), full)
    assert path.stat().st_size < 0.6 * full.stat().st_size


def test_missing_corrupt_and_foreign_files_raise_snapshot_error(tmp_path):
    with pytest.raises(SnapshotError, match="snapshot not found: .*nope.pt"):
        load_snapshot(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(SnapshotError, match="corrupt or not a snapshot"):
        load_snapshot(bad)
    torch.save({"format_version": 99}, bad)
    with pytest.raises(SnapshotError, match="format_version 99"):
        load_snapshot(bad)
