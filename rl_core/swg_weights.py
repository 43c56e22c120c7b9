"""SWG weight functions: the advantage of a frozen IQL critic mapped to a weight w(s, a) in (0, 1].

SWG (Tagle et al., arXiv 2505.18345) samples from pi(a|s) ∝ w(s, a) mu(a|s). The weight is a fixed
function of the advantage A(s, a) = min_i Q'_i(s, a) - V(s) of an IQL critic (target twin Q heads,
as SWG-J). Functions (algorithms.md §7.4):

- ``expectile`` (hard):   w = tau if A > 0 else 1 - tau
- ``smooth_expectile``:   sig = sigmoid(k A);  w = sig tau + (1 - sig)(1 - tau)          (SWG-J, k = 3)
- ``exponential``:        w = clip(exp(beta clip(A, a_lo, a_hi)), e_lo, e_hi) / e_hi      (SWG-P, AWR-style)
- ``linex``:              f(A) = |exp(tau A) - 1| / |A| (f(0) = tau), A clipped to [a_lo, a_hi];
                          w = f(A) / f(a_hi)                                              (SWG-P)

Every weight is finally floored at ``w_min`` (NaN -> ``w_min``), so log w is finite and the data
weights lie inside the sampler's clip range [w_min, 1].

Deviations from the reference implementations: ``exponential`` and ``linex`` are divided by their
fixed upper bound (e_hi, f(a_hi)) instead of the dataset min-max normalisation (``norm: True``) of
SWG-J/SWG-P. A fixed constant keeps w a per-sample function of A, so a weight computed on a
minibatch equals the precomputed dataset column, and it keeps w in (0, 1] as the sampler requires.

The whole weight column of a dataset is computed once with ``weight_column`` and stored beside the
run with ``save_weight_column`` (``swg_weights.npy`` + ``swg_weights.json``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from rl_core.errors import ArtifactMismatchError, ConfigError
from rl_core.errors import GuidanceCapabilityError

WeightFnName = Literal["expectile", "smooth_expectile", "exponential", "linex"]
WEIGHT_FNS = ("expectile", "smooth_expectile", "exponential", "linex")
WEIGHT_FILE = "swg_weights.npy"


@dataclass(frozen=True)
class WeightConfig:
    """How the advantage becomes the SWG weight (algorithms.md §7.4)."""

    fn: WeightFnName = "smooth_expectile"  # weight function; SWG-J default
    tau: float = 0.7  # expectile tau (expectile, smooth_expectile) and linex tau
    smooth_k: float = 3.0  # slope k of the sigmoid in smooth_expectile
    beta: float = 1.0  # inverse temperature of exponential
    adv_clip: tuple[float, float] = (-6.0, 4.0)  # clip of A in exponential and linex (SWG-P)
    exp_clip: tuple[float, float] = (1e-3, 10.0)  # clip of exp(beta A); w = clipped / exp_clip[1]
    w_min: float = 1e-4  # floor of every weight = lower clip of the sampler

    def __post_init__(self) -> None:
        if self.fn not in WEIGHT_FNS:
            raise ConfigError(f"swg.weights.fn: '{self.fn}' is not one of {list(WEIGHT_FNS)}")
        if not 0.0 < self.tau < 1.0:
            raise ConfigError(f"swg.weights.tau: must be in (0, 1), got {self.tau}")
        if self.adv_clip[0] >= self.adv_clip[1] or not 0.0 < self.exp_clip[0] < self.exp_clip[1]:
            raise ConfigError(f"swg.weights: need adv_clip lo < hi and 0 < exp_clip lo < hi, got "
                              f"adv_clip={self.adv_clip}, exp_clip={self.exp_clip}")
        if not 0.0 < self.w_min < 1.0:
            raise ConfigError(f"swg.weights.w_min: must be in (0, 1), got {self.w_min}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "WeightConfig":
        d = dict(d)
        for key in ("adv_clip", "exp_clip"):
            if key in d:
                d[key] = tuple(float(x) for x in d[key])
        return cls(**d)


def expectile_weight(adv: Tensor, tau: float) -> Tensor:
    """Hard expectile weight: tau where A > 0, else 1 - tau. adv (N,) -> (N,)."""
    return torch.where(adv > 0, torch.full_like(adv, tau), torch.full_like(adv, 1.0 - tau))


def smooth_expectile_weight(adv: Tensor, tau: float, k: float) -> Tensor:
    """sigmoid(k A) tau + (1 - sigmoid(k A)) (1 - tau), in (1 - tau, tau). adv (N,) -> (N,)."""
    sig = torch.sigmoid(k * adv)
    return sig * tau + (1.0 - sig) * (1.0 - tau)


def exponential_weight(adv: Tensor, beta: float, adv_clip: tuple[float, float],
                       exp_clip: tuple[float, float]) -> Tensor:
    """clip(exp(beta clip(A)), e_lo, e_hi) / e_hi, in [e_lo / e_hi, 1]. adv (N,) -> (N,)."""
    raw = torch.exp(beta * adv.clamp(*adv_clip)).clamp(*exp_clip)
    return raw / exp_clip[1]


def _linex(adv: Tensor, tau: float) -> Tensor:
    small = adv.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(adv), adv)
    return torch.where(small, torch.full_like(adv, tau), torch.expm1(tau * safe) / safe)


def linex_weight(adv: Tensor, tau: float, adv_clip: tuple[float, float]) -> Tensor:
    """|exp(tau A) - 1| / |A| on clipped A, divided by its value at adv_clip[1] (it increases in A).

    adv (N,) -> (N,) in (0, 1].
    """
    top = _linex(torch.tensor([adv_clip[1]], dtype=adv.dtype, device=adv.device), tau)
    return _linex(adv.clamp(*adv_clip), tau) / top


def compute_weights(adv: Tensor, cfg: WeightConfig) -> Tensor:
    """The SWG weight of each advantage, floored at cfg.w_min (NaN -> w_min). adv (N,) -> (N,)."""
    if cfg.fn == "expectile":
        w = expectile_weight(adv, cfg.tau)
    elif cfg.fn == "smooth_expectile":
        w = smooth_expectile_weight(adv, cfg.tau, cfg.smooth_k)
    elif cfg.fn == "exponential":
        w = exponential_weight(adv, cfg.beta, cfg.adv_clip, cfg.exp_clip)
    else:
        w = linex_weight(adv, cfg.tau, cfg.adv_clip)
    return torch.nan_to_num(w, nan=cfg.w_min).clamp(cfg.w_min, 1.0)


@torch.no_grad()
def critic_weights(guidance, obs_n: Tensor, act: Tensor, cfg: WeightConfig) -> Tensor:
    """Weights from an IQL critic: compute_weights(min_i Q'_i(s, a) - V(s)), target Q as SWG-J.

    obs_n (B, obs_dim), act (B, act_dim) -> (B,). Deterministic given the critic, so a minibatch
    gives exactly the rows of ``weight_column``.
    """
    if "v" not in guidance.provides:
        raise GuidanceCapabilityError(
            f"SWG weights need a critic with V (an IQL artifact, kind 'iql'); got kind "
            f"'{guidance.kind}' providing {sorted(guidance.provides)}. Pretrain with kind 'iql'.")
    return compute_weights(guidance.q(obs_n, act, target=True) - guidance.v(obs_n), cfg)


def weight_column(guidance, obs_n: np.ndarray | Tensor, act: np.ndarray | Tensor, cfg: WeightConfig,
                  batch_size: int = 8192) -> np.ndarray:
    """The weight of every (s, a) of a dataset, computed once. obs_n (N, obs_dim), act (N, act_dim) -> (N,) float32."""
    obs_n, act = (x.float() if isinstance(x, Tensor) else torch.from_numpy(np.array(x, dtype=np.float32))
                  for x in (obs_n, act))
    if len(obs_n) != len(act):
        raise ArtifactMismatchError(f"weight_column: {len(obs_n)} observations but {len(act)} actions")
    parts = [critic_weights(guidance, obs_n[i:i + batch_size], act[i:i + batch_size], cfg)
             for i in range(0, len(obs_n), batch_size)]
    return torch.cat(parts).cpu().numpy().astype(np.float32)


def save_weight_column(directory: str | Path, weights: np.ndarray, meta: dict) -> Path:
    """Write ``swg_weights.npy`` and ``swg_weights.json`` (meta + summary) into ``directory``.

    meta should name the dataset fingerprint, the guidance artifact and the WeightConfig dict.
    Returns the path of the .npy file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / WEIGHT_FILE
    np.save(path, np.asarray(weights, dtype=np.float32))
    summary = {"n": int(len(weights)), "mean": float(np.mean(weights)), "min": float(np.min(weights)),
               "max": float(np.max(weights))}
    path.with_suffix(".json").write_text(json.dumps({**meta, "summary": summary}, indent=1, default=str))
    return path


def load_weight_column(path: str | Path, expect_fingerprint: str | None = None) -> tuple[np.ndarray, dict]:
    """Read a column written by ``save_weight_column``; refuses one made for another dataset."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHT_FILE
    meta = json.loads(path.with_suffix(".json").read_text())
    found = meta.get("dataset_fingerprint")
    if expect_fingerprint is not None and found != expect_fingerprint:
        raise ArtifactMismatchError(f"{path}: weight column made for dataset fingerprint {found}, "
                                    f"expected {expect_fingerprint}; recompute it with weight_column()")
    return np.load(path), meta
