"""The Ray-free training loops: diffusion policies (``run_training``) and guidance alone (``run_pretraining``).

The Ray trainables (``trainables/train.py``) and ``mdpt train`` wrap these functions; tests pass a
list-appending ``report``. One loop, CleanRL-readable::

    for step in 1..steps:
        batch   = buffer.sample(batch_size, sample_gen)
        metrics = algo.update(batch, update_gen)          # raises DivergenceError on NaN / inf
        every log_every:        report(window means + time/steps_per_s + mem/peak_mb)
        every eval_every:       snapshot -> on_snapshot(step, path)        (and at the end)
        every checkpoint_every: checkpoint -> on_checkpoint(step, dir)     (and at the end)

Seeding happens once, at entry: the global torch / numpy / python RNGs are seeded from
``cfg.seed`` (for any library code that draws from them) and two explicit ``torch.Generator`` are
derived from it: one for minibatch sampling, one passed to ``update`` (diffusion noise, steps,
dropout, head picks). A checkpoint holds the full algorithm state (nets, EMA, optimisers, LR
schedules, guidance with its target and optimiser), the step, the metric window and every RNG
state, so a resumed run continues bit-identically to an uninterrupted one.

Files under ``workdir`` (the trial's output directory, e.g. ``RUN_DIR/snapshots/<trial_id>`` or
``RUN_DIR/guidance/<trial_id>``)::

    workdir/step_XXXXXXXX.pt            eval snapshots (run_training) or guidance artifacts (run_pretraining)
    workdir/final.pt                    run_pretraining: the final artifact (copy of the last step file)
    workdir/checkpoints/step_XXXXXXXX/state.pt   the latest full-state checkpoint (older ones removed)

``on_checkpoint`` must copy the directory before returning (``tune.report`` does so synchronously).

Guidance pretraining (GFDT stage 1) is policy-free, from the dataset alone (algorithms.md §8.2):
``kind="iql"`` trains expectile V and Q to V(s'); ``kind="td"`` is SARSA: Q(s, a) to
r + γ (1 − d) min Q'(s', a') with a' = the dataset's next action. Transitions whose next action the
dataset does not contain (the last transition of a time-limited or cut episode) are left out of
the TD sample set; terminal transitions stay (their target ignores a').
"""

from __future__ import annotations

import logging
import math
import random
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rl_core.algos import get_algorithm
from rl_core.config import ALGORITHMS, DEVICES, GUIDANCE_KINDS, PRECISIONS, ConfigMixin, check_choice, check_int
from rl_core.data.dataset import FIELDS, OfflineDataset
from rl_core.errors import ArtifactMismatchError, ConfigError, DivergenceError
from rl_core.fsutil import atomic_dir
from rl_core.modes import PRETRAINED_MODES, build_critic, get_mode
from rl_core.types import Batch, Normalizer

log = logging.getLogger(__name__)

# Fields that may differ between a checkpoint and the config resuming it (they change no result).
RESUMABLE_CHANGES = ("steps", "threads", "log_every", "checkpoint_every")


# ----- configs ------------------------------------------------------------------------------------
def _check_loop_fields(cfg: Any) -> None:
    name = type(cfg).__name__
    for f in ("steps", "batch_size", "log_every"):
        check_int(f"{name}.{f}", getattr(cfg, f), 1)
    for f in ("checkpoint_every", "threads"):
        check_int(f"{name}.{f}", getattr(cfg, f), 1, allow_none=True)
    check_int(f"{name}.seed", cfg.seed, 0)
    check_choice(f"{name}.device", cfg.device.split(":")[0], DEVICES)


@dataclass(frozen=True, kw_only=True)
class TrainConfig(ConfigMixin):
    """One diffusion-policy training trial (the Ray trainable's ``param_space`` is ``to_dict()``)."""

    task: str  # dataset task name or path (recorded; the caller passes the loaded dataset)
    algo: str  # dql | idql | edp | swg
    algo_config: dict = field(default_factory=dict)  # <Algo>Config fields (specs record all of them, resolved)
    train_guidance: str = "joint"  # a training-guidance mode (rl_core/modes.py)
    guidance_artifact: str | None = None  # pretrained guidance (frozen / unfrozen only)
    guidance_config: dict | None = None  # overrides of GuidanceConfig for a fresh critic (joint / noise)
    seed: int = 0  # diffusion (and fresh-guidance) seed
    steps: int  # gradient steps
    batch_size: int = 256
    eval_every: int = 400  # snapshot interval (the evaluation grid), in gradient steps
    log_every: int = 100  # metric report interval
    checkpoint_every: int | None = None  # full-state checkpoint interval; None = eval_every
    normalize_obs: bool = True  # Gaussian observation normalisation with dataset statistics
    normalize_reward: bool = True  # r * 1000 / (max episode return - min episode return)
    device: str = "cpu"
    threads: int | None = None  # torch.set_num_threads; None = torch's default
    # fp32 | bf16: autocast of the forward passes (optimiser state, EMA, critic targets stay float32). fp32 by
    # default: the fidelity check (README "Precision") did not show bf16 training to be equivalent.
    precision: str = "fp32"
    compile: bool = False  # torch.compile the networks (not bit-identical to eager; compile time in the first step)

    def __post_init__(self) -> None:
        check_choice("TrainConfig.algo", self.algo, ALGORITHMS)
        check_choice("TrainConfig.precision", self.precision, PRECISIONS)
        check_choice("TrainConfig.compile", self.compile, (False, True))
        mode = get_mode(self.train_guidance, "TrainConfig.train_guidance")
        if mode.needs_artifact != (self.guidance_artifact is not None):
            raise ConfigError(f"TrainConfig.guidance_artifact={self.guidance_artifact!r} is not allowed; allowed: a path "
                              f"for train_guidance {' | '.join(PRETRAINED_MODES)}, None otherwise")
        if self.guidance_config is not None and mode.critic not in ("fresh", "random"):
            raise ConfigError(f"TrainConfig.guidance_config={self.guidance_config!r} is not allowed; allowed: None "
                              f"when train_guidance={self.train_guidance!r} builds no fresh critic")
        check_int("TrainConfig.eval_every", self.eval_every, 1)
        _check_loop_fields(self)


@dataclass(frozen=True, kw_only=True)
class PretrainConfig(ConfigMixin):
    """Guidance pretraining from the dataset alone (GFDT stage 1)."""

    task: str  # dataset task name or path (recorded)
    kind: str  # td (SARSA with the dataset's next actions) | iql (expectile V, Q to V(s'))
    guidance_config: dict | None = None  # overrides of GuidanceConfig(kind=kind)
    seed: int = 0
    steps: int
    batch_size: int = 256
    save_every: int | None = None  # step-matched artifacts every K steps (double guidance); None = final only
    log_every: int = 100
    checkpoint_every: int | None = None  # None = save_every, or steps when save_every is None
    normalize_obs: bool = True
    normalize_reward: bool = True
    device: str = "cpu"
    threads: int | None = None

    def __post_init__(self) -> None:
        check_choice("PretrainConfig.kind", self.kind, GUIDANCE_KINDS)
        check_int("PretrainConfig.save_every", self.save_every, 1, allow_none=True)
        _check_loop_fields(self)


# ----- seeding, metrics, checkpoints --------------------------------------------------------------
def _seed_everything(seed: int, device: str) -> tuple[torch.Generator, torch.Generator]:
    """Seed the global RNGs and return (sample_gen, update_gen), independent streams derived from seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    s_sample, s_update = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint64)
    dev = torch.device(device)
    return (torch.Generator(dev).manual_seed(int(s_sample)), torch.Generator(dev).manual_seed(int(s_update)))


def _rng_state(gens: tuple[torch.Generator, ...]) -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "generators": [g.get_state() for g in gens]}


def _set_rng_state(state: dict, gens: tuple[torch.Generator, ...]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for g, s in zip(gens, state["generators"]):
        g.set_state(s)


class _Window:
    """Running sums of the update metrics between two reports."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.t0 = time.perf_counter()

    def add(self, metrics: dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            if not math.isfinite(v):
                raise DivergenceError(f"training diverged at step {step}: {k} = {v}; lower the learning rate "
                                      "or set grad_clip in the algorithm / guidance config")
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1

    def flush(self, step: int, device: str) -> dict[str, float]:
        """Window means plus time/steps_per_s and mem/peak_mb; starts a new window."""
        dt = time.perf_counter() - self.t0
        out = {"step": float(step), **{k: v / self.count for k, v in self.sums.items()},
               "time/steps_per_s": self.count / dt if dt > 0 else math.inf, "mem/peak_mb": _peak_mb(device)}
        self.sums, self.count, self.t0 = {}, 0, time.perf_counter()
        return out

    def state(self) -> dict:
        return {"sums": dict(self.sums), "count": self.count}

    def load(self, d: dict) -> None:
        self.sums, self.count = dict(d["sums"]), int(d["count"])


def _peak_mb(device: str) -> float:
    """Peak CUDA allocation on a GPU, else the process's peak resident set size (Linux: KiB)."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _due(step: int, every: int, last: int) -> bool:
    return step % every == 0 or step == last


def _save_checkpoint(workdir: Path, step: int, state: dict) -> Path:
    """Write workdir/checkpoints/step_XXXXXXXX/state.pt atomically; remove older checkpoints."""
    root = workdir / "checkpoints"
    final = root / f"step_{step:08d}"
    with atomic_dir(final) as tmp:
        torch.save(state, tmp / "state.pt")
    for old in root.glob("step_*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: str | Path) -> dict:
    """The state saved by a checkpoint: a ``checkpoints/step_X`` directory, any directory holding
    ``state.pt``, or the file itself."""
    path = Path(path)
    file = path / "state.pt" if path.is_dir() else path
    if not file.exists():
        raise ConfigError(f"resume_from={str(path)!r}: no checkpoint state.pt there")
    return torch.load(file, map_location="cpu", weights_only=False)


def _check_resume(state: dict, cfg: Any, fingerprint: str) -> None:
    old, new = state["config"], cfg.to_dict()
    old = {**{k: v for k, v in {"precision": "fp32", "compile": False}.items() if k in new}, **old}  # fields added later
    differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
    if differ:
        raise ConfigError(f"cannot resume: config field(s) {differ} differ from the checkpoint's; "
                          f"only {list(RESUMABLE_CHANGES)} may change")
    if state["fingerprint"] != fingerprint:
        raise ArtifactMismatchError(f"cannot resume: checkpoint dataset fingerprint {state['fingerprint']} "
                                    f"!= dataset fingerprint {fingerprint}")
    if state["step"] > cfg.steps:
        raise ConfigError(f"cannot resume: checkpoint is at step {state['step']} > steps={cfg.steps}")


def _dataset_meta(dataset: OfflineDataset) -> dict:
    return {**dataset.metadata, "fingerprint": dataset.fingerprint, "obs_dim": dataset.obs_dim, "act_dim": dataset.act_dim}


# ----- diffusion-policy training -------------------------------------------------------------------
def _training_guidance(cfg: TrainConfig, algo_cls: type, dataset: OfflineDataset, normalizer: Normalizer) -> tuple[Any, dict | None]:
    """(guidance module or None, guidance meta for the snapshot) for ``cfg.train_guidance`` (rl_core/modes.py)."""
    mode = get_mode(cfg.train_guidance)
    guidance, meta = build_critic(mode, default_kind=algo_cls.default_guidance_kind, obs_dim=dataset.obs_dim,
                                  act_dim=dataset.act_dim, seed=cfg.seed, guidance_config=cfg.guidance_config,
                                  artifact=cfg.guidance_artifact, expect_fingerprint=dataset.fingerprint,
                                  normalizer=normalizer, device=cfg.device)
    if guidance is None:
        return None, None
    if mode.needs_artifact:
        return guidance, {**meta, "train_guidance": mode.name, "artifact": str(cfg.guidance_artifact)}
    return guidance, {"kind": guidance.kind, "algo": cfg.algo, "seed": cfg.seed, "train_guidance": mode.name,
                      "config": guidance.cfg.to_dict(), "dataset_fingerprint": dataset.fingerprint,
                      "normalizer": normalizer.to_dict()}


def _save_swg_weight_column(algo: Any, buffer: Any, workdir: Path, dataset: OfflineDataset, cfg: TrainConfig) -> None:
    """SWG with a frozen critic: the weight of every dataset row is fixed for the whole run, so it is
    computed once and stored with the run (``swg_weights.npy`` + ``.json`` in the trial's workdir).
    Training uses the identical per-batch weights (``SWG.batch_weights``); other modes change the
    critic during training, so their weights are not a fixed column."""
    from rl_core.swg_weights import save_weight_column, weight_column

    weights = weight_column(algo.guidance, buffer.obs, buffer.act, algo.cfg.weights)
    save_weight_column(workdir, weights, {"dataset_fingerprint": dataset.fingerprint, "task": dataset.task,
                                          "guidance_artifact": str(cfg.guidance_artifact),
                                          "weights": algo.cfg.weights.to_dict()})


def _prepare(cfg: Any, dataset: OfflineDataset, workdir: Path) -> tuple[Path, tuple[torch.Generator, torch.Generator], Normalizer]:
    """Shared start of both loops: the output folder, torch threads, seeds, the dataset normaliser."""
    from rl_core.buffer import make_normalizer

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    gens = _seed_everything(cfg.seed, cfg.device)
    return workdir, gens, make_normalizer(dataset, cfg.normalize_obs, cfg.normalize_reward)


def _resume(resume_from: Path, cfg: Any, dataset: OfflineDataset, gens: tuple[torch.Generator, ...],
            window: "_Window") -> dict:
    """Load a checkpoint of the same config and dataset, restore RNGs and the metric window; returns it."""
    state = load_checkpoint(resume_from)
    _check_resume(state, cfg, dataset.fingerprint)
    _set_rng_state(state["rng"], gens)
    window.load(state["window"])
    return state


def _checkpoint(workdir: Path, step: int, cfg: Any, dataset: OfflineDataset, model_state: dict,
                gens: tuple[torch.Generator, ...], window: "_Window",
                on_checkpoint: Callable[[int, Path], None] | None) -> None:
    """Save the full state (model state + config + dataset fingerprint + all RNGs + metric window)."""
    state = {"step": step, "config": cfg.to_dict(), "fingerprint": dataset.fingerprint, **model_state,
             "rng": _rng_state(gens), "window": window.state()}
    path = _save_checkpoint(workdir, step, state)
    if on_checkpoint is not None:
        on_checkpoint(step, path)


def run_training(cfg: TrainConfig, dataset: OfflineDataset, *, workdir: Path,
                 report: Callable[[dict[str, float]], None] = lambda m: None,
                 on_snapshot: Callable[[int, Path], None] = lambda step, path: None,
                 on_checkpoint: Callable[[int, Path], None] | None = None,
                 resume_from: Path | None = None) -> dict[str, float]:
    """Train ``cfg.algo`` on ``dataset`` for ``cfg.steps`` gradient steps (see module docstring).

    Returns the last reported metrics plus ``restored_from`` (the checkpoint step, -1 if none).
    Raises DivergenceError naming the metric and step on a NaN / inf loss or Q statistic.
    """
    from rl_core.buffer import TensorBuffer
    from rl_core.snapshot import save_snapshot

    workdir, gens, normalizer = _prepare(cfg, dataset, workdir)
    sample_gen, update_gen = gens
    buffer = TensorBuffer.from_dataset(dataset, normalizer, device=cfg.device)
    algo_cls = get_algorithm(cfg.algo)
    algo_cfg = algo_cls.Config.from_dict(cfg.algo_config)  # lr_anneal_steps: the recipe horizon, never the run length
    guidance, guidance_meta = _training_guidance(cfg, algo_cls, dataset, normalizer)
    algo = algo_cls(algo_cfg, dataset.obs_dim, dataset.act_dim, guidance=guidance, guidance_mode=cfg.train_guidance,
                    seed=cfg.seed, device=cfg.device, precision=cfg.precision, compile=cfg.compile)
    window, start, restored_from = _Window(), 0, -1
    if resume_from is not None:
        state = _resume(resume_from, cfg, dataset, gens, window)
        algo.load_state_dict(state["algo"])
        start = restored_from = int(state["step"])
        log.info("resumed %s from step %d", cfg.algo, start)
    if algo.critic_phase_steps and start == 0:  # e.g. SWG joint: the fresh critic is trained first, then frozen
        algo.guidance.unfreeze()
        _critic_phase(algo, dataset, normalizer, cfg, sample_gen, report)
        algo.guidance.freeze()
    ckpt_every = cfg.checkpoint_every or cfg.eval_every
    dataset_meta = _dataset_meta(dataset)
    if cfg.algo == "swg" and algo.mode.frozen and start == 0:
        _save_swg_weight_column(algo, buffer, workdir, dataset, cfg)
    last: dict[str, float] = {}
    for step in range(start + 1, cfg.steps + 1):
        batch = buffer.sample(cfg.batch_size, sample_gen)
        t_step = time.perf_counter()
        window.add(algo.update(batch, update_gen), step)
        if cfg.compile and step == start + 1:
            log.info("torch.compile: first step (compiles the networks) took %.1f s", time.perf_counter() - t_step)
        if _due(step, cfg.log_every, cfg.steps):
            last = window.flush(step, cfg.device)
            report(last)
        if _due(step, cfg.eval_every, cfg.steps):
            path = save_snapshot(workdir / f"step_{step:08d}.pt", algo, step=step, config=cfg.to_dict(),
                                 normalizer=normalizer, dataset_meta=dataset_meta, guidance_meta=guidance_meta)
            on_snapshot(step, Path(path))
        if _due(step, ckpt_every, cfg.steps):
            _checkpoint(workdir, step, cfg, dataset, {"algo": algo.state_dict()}, gens, window, on_checkpoint)
    return {**last, "restored_from": float(restored_from)}


# ----- guidance pretraining -------------------------------------------------------------------------
def sarsa_next_actions(dataset: OfflineDataset) -> tuple[np.ndarray, np.ndarray]:
    """(keep (M,) int indices, next_act (M, act_dim)) for SARSA-style TD pretraining.

    next_act[j] = actions[keep[j] + 1] when transition keep[j] continues into keep[j] + 1; terminal
    transitions are kept with their own action as a placeholder (the target masks a' by 1 − d);
    transitions ending a time-limited or cut episode (next action unknown) are dropped.
    """
    ends = np.zeros(dataset.n_transitions, dtype=bool)
    ends[dataset.episode_ends()] = True
    keep = np.flatnonzero(~ends | dataset.terminals)
    nxt = np.minimum(keep + 1, dataset.n_transitions - 1)
    next_act = np.where(dataset.terminals[keep, None], dataset.actions[keep], dataset.actions[nxt])
    return keep, next_act.astype(np.float32)


class _SarsaSampler:
    """Uniform minibatches of (Batch, next_act (B, act_dim)) over the transitions with a known next action."""

    def __init__(self, dataset: OfflineDataset, normalizer: Normalizer, device: str) -> None:
        from rl_core.buffer import TensorBuffer

        keep, next_act = sarsa_next_actions(dataset)
        if len(keep) == 0:
            raise ConfigError("kind='td' pretraining: the dataset has no transition with a known next action")
        subset = OfflineDataset(**{f: getattr(dataset, f)[keep] for f in FIELDS}, metadata=dict(dataset.metadata))
        self.buffer = TensorBuffer.from_dataset(subset, normalizer, device=device)
        self.next_act = torch.as_tensor(next_act, device=device)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Batch, torch.Tensor]:
        b = self.buffer
        idx = torch.randint(0, len(b), (batch_size,), generator=generator, device=generator.device).to(b.obs.device)
        return Batch(b.obs[idx], b.act[idx], b.rew[idx], b.next_obs[idx], b.terminal[idx]), self.next_act[idx]


def _critic_batches(kind: str, dataset: OfflineDataset, normalizer: Normalizer, device: str, batch_size: int,
                    generator: torch.Generator) -> Callable[[], tuple[Batch, torch.Tensor | None]]:
    """Minibatches for training a critic from the dataset alone: (Batch, next_act) for td (SARSA), (Batch, None)
    for policy-free kinds (iql). Shared by guidance pretraining and a training run's critic phase."""
    from rl_core.buffer import TensorBuffer

    if kind == "td":
        sampler = _SarsaSampler(dataset, normalizer, device)
        return lambda: sampler.sample(batch_size, generator)
    buffer = TensorBuffer.from_dataset(dataset, normalizer, device=device)
    return lambda: (buffer.sample(batch_size, generator), None)


def _critic_phase(algo: Any, dataset: OfflineDataset, normalizer: Normalizer, cfg: TrainConfig,
                  generator: torch.Generator, report: Callable[[dict[str, float]], None]) -> None:
    """Train a training run's fresh critic alone for ``algo.critic_phase_steps`` steps (batch
    ``algo.cfg.critic_batch_size``) before the diffusion model (SWG-J's critic phase), with guidance
    pretraining's batches and update; reported as ``critic_phase/<metric>``."""
    guidance, steps = algo.guidance, algo.critic_phase_steps
    draw = _critic_batches(guidance.kind, dataset, normalizer, cfg.device, algo.cfg.critic_batch_size, generator)
    window = _Window()
    for k in range(1, steps + 1):
        batch, next_act = draw()
        window.add(guidance.update(batch, next_act), k)
        if _due(k, cfg.log_every, steps):
            report({k2 if k2 == "step" else f"critic_phase/{k2}": v for k2, v in window.flush(k, cfg.device).items()})


def run_pretraining(cfg: PretrainConfig, dataset: OfflineDataset, *, workdir: Path,
                    report: Callable[[dict[str, float]], None] = lambda m: None,
                    on_artifact: Callable[[int, Path], None] = lambda step, path: None,
                    on_checkpoint: Callable[[int, Path], None] | None = None,
                    resume_from: Path | None = None) -> Path:
    """Train a guidance module of ``cfg.kind`` from ``dataset`` alone; returns the final artifact path.

    Artifacts ``workdir/step_XXXXXXXX.pt`` every ``save_every`` steps and at the end, the last also
    as ``workdir/final.pt``; each carries the metadata of ``rl_core.guidance.save_artifact``.
    """
    from rl_core import guidance as G

    workdir, gens, normalizer = _prepare(cfg, dataset, workdir)
    sample_gen, _ = gens
    gcfg = G.GuidanceConfig.from_dict({**(cfg.guidance_config or {}), "kind": cfg.kind})
    guidance = G.make_guidance(gcfg, dataset.obs_dim, dataset.act_dim, cfg.seed, device=cfg.device)
    draw = _critic_batches(cfg.kind, dataset, normalizer, cfg.device, cfg.batch_size, sample_gen)
    window, start = _Window(), 0
    if resume_from is not None:
        state = _resume(resume_from, cfg, dataset, gens, window)
        guidance.load_state_dict(state["guidance"])
        start = int(state["step"])
    meta = {"algo": "pretrain", "seed": cfg.seed, "task": cfg.task, "dataset_fingerprint": dataset.fingerprint,
            "normalizer": normalizer.to_dict()}  # save_artifact adds kind, shapes, gamma, reward_scale, config
    ckpt_every = cfg.checkpoint_every or cfg.save_every or cfg.steps
    final = workdir / "final.pt"
    for step in range(start + 1, cfg.steps + 1):
        batch, next_act = draw()
        window.add(guidance.update(batch, next_act), step)
        if _due(step, cfg.log_every, cfg.steps):
            report(window.flush(step, cfg.device))
        if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.steps:
            path = Path(G.save_artifact(workdir / f"step_{step:08d}.pt", guidance, {**meta, "steps": step}))
            if step == cfg.steps:
                shutil.copyfile(path, final)
            on_artifact(step, path)
        if _due(step, ckpt_every, cfg.steps):
            _checkpoint(workdir, step, cfg, dataset, {"guidance": guidance.state_dict()}, gens, window, on_checkpoint)
    return final
