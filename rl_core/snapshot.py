"""Eval snapshots: everything needed to act, in one compact file.

A snapshot holds the EMA denoiser weights, the critic's network weights (online and target; no
optimiser moments), the critic config and meta, the observation normaliser, the algorithm config
(to rebuild the denoiser with ``build_denoiser``), the caller's run config, the step and the
dataset meta (fingerprint, env_id, task, reference scores). Training state (online denoiser,
optimisers) belongs to checkpoints, not here. Files are ``torch.save`` dicts written atomically
(temp file + ``os.replace``) and read with ``weights_only=True``.

``make_actor`` turns a snapshot into an ``rl_core.inference.Actor``, optionally with a critic from
another artifact (double guidance, cross-algorithm plug-and-play) and that artifact's normaliser.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rl_core import guidance as G
from rl_core.algos import get_algorithm
from rl_core.errors import SnapshotError
from rl_core.fsutil import atomic_write
from rl_core.inference import Actor, InferenceConfig
from rl_core.types import Normalizer

FORMAT_VERSION = 1


@dataclass
class Snapshot:
    """A loaded snapshot; ``denoiser`` is in eval mode with gradients off, ``guidance`` frozen."""

    algo: str
    step: int
    config: dict  # the caller's run config (e.g. TrainConfig.to_dict())
    algo_config: dict  # the algorithm config (``<Name>Config.to_dict()``)
    normalizer: Normalizer
    dataset_meta: dict
    denoiser: nn.Module
    guidance: Any | None
    guidance_meta: dict | None
    obs_dim: int
    act_dim: int


def _plain(x: Any) -> Any:
    """JSON-plain copy of metadata (numpy scalars / arrays → Python), so weights_only loading works."""
    return json.loads(json.dumps(x, default=lambda o: o.tolist() if isinstance(o, (np.ndarray, np.generic)) else str(o)))


def save_snapshot(path: str | Path, algo: Any, *, step: int, config: dict, normalizer: Normalizer, dataset_meta: dict,
                  guidance_meta: dict | None) -> Path:
    """Write the acting state of ``algo`` (a DiffusionAlgorithm) to ``path`` atomically; returns the path."""
    guidance = None
    if algo.guidance is not None:
        state = algo.guidance.state_dict()
        guidance = {"config": algo.guidance.cfg.to_dict(), "nets": state["nets"], "steps": state["steps"]}
    payload = {"format_version": FORMAT_VERSION, "algo": algo.name, "step": int(step), "config": _plain(config),
               "algo_config": _plain(algo.cfg.to_dict()), "normalizer": normalizer.to_dict(),
               "dataset_meta": _plain(dataset_meta), "obs_dim": algo.obs_dim, "act_dim": algo.act_dim,
               "denoiser": algo.denoiser(ema=True).state_dict(), "guidance": guidance,
               "guidance_meta": _plain(guidance_meta) if guidance_meta is not None else None}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_snapshot(path: str | Path, device: str | torch.device = "cpu") -> Snapshot:
    """Read a snapshot and rebuild its denoiser (and critic). SnapshotError on a missing / corrupt file."""
    from rl_core.filekind import SNAPSHOT, load_expected

    path = Path(path)
    if not path.exists():
        raise SnapshotError(f"snapshot not found: {path}")
    d = load_expected(path, SNAPSHOT, SnapshotError, "snapshot")
    if "format_version" not in d:  # a torch file of unknown content
        raise SnapshotError(f"snapshot {path} is corrupt or not a snapshot (no 'format_version')")
    version = d["format_version"]
    if version != FORMAT_VERSION:
        raise SnapshotError(f"snapshot {path} has format_version {version}; this mdpt reads {FORMAT_VERSION}")
    cls = get_algorithm(d["algo"])
    cfg = cls.Config.from_dict(d["algo_config"])
    denoiser = cls.build_denoiser(cfg, d["obs_dim"], d["act_dim"])
    denoiser.load_state_dict(d["denoiser"])
    denoiser.requires_grad_(False).eval().to(device)
    guidance = None
    if d["guidance"] is not None:
        g = d["guidance"]
        guidance = G.make_guidance(G.GuidanceConfig.from_dict(g["config"]), d["obs_dim"], d["act_dim"], 0)
        guidance.load_state_dict({**guidance.state_dict(), "nets": g["nets"], "steps": g["steps"]})
        guidance.freeze()
        guidance = guidance.to(device)
    return Snapshot(d["algo"], d["step"], d["config"], d["algo_config"], Normalizer.from_dict(d["normalizer"]),
                    d["dataset_meta"], denoiser, guidance, d["guidance_meta"], d["obs_dim"], d["act_dim"])


def make_actor(snapshot: Snapshot, inference: InferenceConfig, guidance: Any | None = None,
               guidance_normalizer: Normalizer | None = None) -> Actor:
    """An Actor for ``snapshot``: its own critic (guidance=None) or another artifact's, frozen.

    ``guidance_normalizer`` normalises the observations seen by a plugged-in critic (default: the
    snapshot's normaliser). Capability mismatches raise GuidanceCapabilityError (see Actor).
    """
    cls = get_algorithm(snapshot.algo)
    device = next(snapshot.denoiser.parameters()).device
    if guidance is not None:
        guidance.freeze()
        guidance = guidance.to(device)
    return Actor(cls, cls.Config.from_dict(snapshot.algo_config), snapshot.denoiser, snapshot.normalizer, inference,
                 guidance if guidance is not None else snapshot.guidance,
                 guidance_normalizer if guidance is not None else None, device)
