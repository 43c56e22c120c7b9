"""2-D toy check of exact guidance: energy distance, target sampling, and SWG at s = 1 vs s = 0."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rl_core.errors import ConfigError


def _load(path: Path):
    """Import a module from its file: benchmarks/ is a folder of scripts, not an installed package.
    Registered in sys.modules before it runs, as dataclasses look their module up there."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


toy = _load(Path(__file__).resolve().parents[2] / "benchmarks" / "swg_toy.py")


pytestmark = pytest.mark.usefixtures("one_thread")


def test_energy_distance_hand_computed_and_sensitive():
    # x = {0, 1}, y = {2, 3}: 2 E|X-Y| = 2 * 2, U-statistics E|X-X'| = E|Y-Y'| = 1 -> 4 - 1 - 1 = 2
    assert toy.energy_distance(np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])) == pytest.approx(2.0)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((400, 2)), rng.standard_normal((400, 2))
    assert abs(toy.energy_distance(a, b)) < 0.05
    assert toy.energy_distance(a, b + [0.5, 0.0]) > 0.1


@pytest.mark.parametrize("task", ["8gaussians", "spiral"])
def test_target_is_the_behaviour_tilted_toward_high_energy(task):
    rng = np.random.default_rng(1)
    x = toy.behaviour_samples(task, 5000, rng)
    assert x.shape == (5000, 2) and np.abs(x).max() < 7
    w = toy.toy_weights(x, 2.0)
    assert w.min() >= np.exp(-4.0) - 1e-12 and w.max() <= 1.0
    proj = lambda s: float((s @ toy.ENERGY_DIR).mean())  # noqa: E731
    assert proj(toy.target_samples(task, 2.0, 5000, rng)) > proj(x) + 0.5
    assert abs(proj(toy.target_samples(task, 0.0, 5000, rng)) - proj(x)) < 0.2  # beta = 0: the behaviour itself


def test_noise_floor_is_small_against_the_behaviour_target_gap():
    rng = np.random.default_rng(2)
    mean, q95 = toy.noise_floor("8gaussians", 2.0, 300, rng, n_boot=8)
    assert q95 >= mean and q95 < 0.1
    gap = toy.energy_distance(toy.behaviour_samples("8gaussians", 300, rng),
                              toy.target_samples("8gaussians", 2.0, 300, rng))
    assert gap > 10 * q95


def test_toy_config_rejects_unknown_task():
    with pytest.raises(ConfigError, match="task"):
        toy.ToyConfig(task="moons")


def test_swg_at_scale_one_is_closer_to_the_exact_target_than_unguided():
    r = toy.run_toy(toy.ToyConfig(task="8gaussians", beta=2.0, steps=300, hidden=48, batch_size=128, n_data=3000,
                                  n_eval=300, n_boot=10, seed=0))
    assert r.guided.shape == r.target.shape == (300, 2)
    assert r.d_unguided - r.d_guided > r.floor_q95
    assert r.d_guided < 0.5 * r.d_unguided
    assert r.d_unguided > 10 * r.floor_q95  # unguided samples the behaviour, far from the target
