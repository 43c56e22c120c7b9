"""Training buffer: normalisation, reward scale by hand, deterministic sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl_core.buffer import TensorBuffer, make_normalizer
from rl_core.data.dataset import OfflineDataset
from rl_core.errors import DatasetError, MdptError


def tiny_dataset(rewards=(1.0, 2.0, 3.0, 0.5, 0.5)) -> OfflineDataset:
    """Two episodes: s0..s3 (3 transitions, ends terminal, return 6) and s4..s6 (2 transitions, timeout, return 1).

    Observation dim 0 = state index, dim 1 = constant 5 (std 0).
    """
    states = np.array([[i, 5.0] for i in range(7)], dtype=np.float32)
    cur, nxt = [0, 1, 2, 4, 5], [1, 2, 3, 5, 6]
    return OfflineDataset(
        observations=states[cur],
        actions=np.linspace(-1, 1, 10, dtype=np.float32).reshape(5, 2),
        rewards=np.asarray(rewards, dtype=np.float32),
        next_observations=states[nxt],
        terminals=np.array([0, 0, 1, 0, 0], dtype=bool),
        timeouts=np.array([0, 0, 0, 0, 1], dtype=bool),
        metadata={"task": "tiny"},
    )


def test_normalizer_by_hand():
    ds = tiny_dataset()
    norm = make_normalizer(ds)
    idx = np.array([0, 1, 2, 4, 5], dtype=np.float64)
    assert norm.obs_mean == pytest.approx((idx.mean(), 5.0))
    assert norm.obs_std == pytest.approx((idx.std(), 1.0))  # constant dimension: std 0 -> 1
    assert norm.reward_scale == pytest.approx(1000 / (6.0 - 1.0))
    ident = make_normalizer(ds, normalize_obs=False, normalize_reward=False)
    assert ident == type(norm).identity(2)


def test_equal_returns_raise_a_clear_error():
    with pytest.raises(DatasetError, match="normalize_reward=False"):
        make_normalizer(tiny_dataset(rewards=(1.0, 1.0, 1.0, 1.5, 1.5)))


def test_buffer_holds_normalised_float32_tensors():
    ds = tiny_dataset()
    norm = make_normalizer(ds)
    buf = TensorBuffer.from_dataset(ds, norm)
    assert len(buf) == 5
    for t in (buf.obs, buf.act, buf.rew, buf.next_obs, buf.terminal):
        assert t.dtype == torch.float32
    assert torch.allclose(buf.obs.mean(0), torch.zeros(2), atol=1e-6) and torch.allclose(buf.obs[:, 0].std(unbiased=False), torch.tensor(1.0))
    assert torch.allclose(buf.rew, torch.tensor([200.0, 400.0, 600.0, 100.0, 100.0]))
    assert torch.equal(buf.terminal, torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0]))  # the timeout is not terminal
    assert torch.equal(buf.act, torch.from_numpy(ds.actions))
    assert torch.allclose(buf.next_obs[0], buf.obs[1])
    with pytest.raises(MdptError, match="obs_dim"):
        TensorBuffer.from_dataset(ds, type(norm).identity(3))


def test_sampling_is_deterministic_given_the_generator_and_uniform():
    buf = TensorBuffer.from_dataset(tiny_dataset(), make_normalizer(tiny_dataset()))
    a = buf.sample(64, torch.Generator().manual_seed(3))
    b = buf.sample(64, torch.Generator().manual_seed(3))
    c = buf.sample(64, torch.Generator().manual_seed(4))
    assert all(torch.equal(x, y) for x, y in zip(vars(a).values(), vars(b).values()))
    assert not torch.equal(a.obs, c.obs)
    assert a.obs.shape == (64, 2) and a.act.shape == (64, 2) and a.rew.shape == (64,) and a.terminal.shape == (64,)
    # rows stay aligned: a sampled obs row determines its reward
    row = {tuple(o.tolist()): r.item() for o, r in zip(buf.obs, buf.rew)}
    assert all(row[tuple(o.tolist())] == r.item() for o, r in zip(a.obs, a.rew))
    big = buf.sample(20000, torch.Generator().manual_seed(5))  # each of the 5 rows with probability 1/5
    for value in (200.0, 400.0, 600.0):
        assert (big.rew == value).float().mean().item() == pytest.approx(0.2, abs=0.02)
