"""Generate D4RL-v2-style datasets from real behaviour policies acting in the real PyBullet envs.

Semantics (D4RL v2, ``scripts/generation/mujoco/collect_data.py``): ``rewards[i] = r(s_i, a_i)``;
``terminals[i]`` only on true termination (the robot fell); ``timeouts[i]`` when the 1000-step
TimeLimit truncated the episode; ``next_observations[i] = s_{i+1}``. Datasets hold whole episodes
(collection stops at the first episode end after ``Budget.transitions`` steps); episode j of a
collection is reset with seed ``reset_seed_base + j`` (recorded in the metadata), so any episode
can be replayed.

Behaviour policies come from one *learning process* per (env, budget, seed), kept on disk under
``<root>/_policies/<env_id>/<budget>-seed<seed>/`` (``process.json``, snapshots, the training
transitions) so datasets can be regenerated or extended without retraining:

- ``sac`` (every env in the ``standard``/``paper`` budgets; HalfCheetah and Walker2D always):
  stable-baselines3 SAC with the RL Zoo PyBullet settings (``SACConfig``, reference ``datasets.md``
  §4.1), an actor snapshot every ``sac_snapshot_every`` steps, each evaluated over
  ``eval_episodes`` stochastic episodes. expert = the final policy.
- ``dagger`` (Hopper and Ant in the ``quick``/``tiny`` budgets): the pybullet wheel ships policies
  trained in 2017 (``pybullet_envs/examples/enjoy_TF_*_2017may.py``; a 128-64 ReLU MLP, its numpy
  arrays parsed with ``ast`` without importing the file). They score ~2500 (Hopper) / ~2100 (Ant)
  here and serve as the expert. The learning process is DAgger (Ross et al., 2011) from that
  expert: a fresh MLP student is fit by MSE to the expert's actions on a small demonstration set;
  each round trains ``dagger_grad_steps`` Adam steps on the aggregate, saves a snapshot, rolls the
  snapshot out (with the dataset's action noise) for ``dagger_rollout_steps`` steps -- these
  episodes are its evaluation -- and adds the visited states, labelled by the expert, to the
  aggregate. Few steps per round make the return climb gradually, in minutes on a laptop.

Levels: medium = the first snapshot whose evaluation return reaches the normalised score
``100 * fraction``, i.e. ``ref_min_score + fraction * (ref_max_score - ref_min_score)`` (on Ant the random
policy already scores ~360 by surviving, so a fraction of the raw expert return would be too low);
medium-replay = the learner's own training transitions up to and including that snapshot's
evaluation rollouts (SAC: every training step up to the snapshot, warm-up included; DAgger: the
learner's rollouts, not the expert demonstrations); expert = the expert policy; random = uniform
actions in [-1, 1]; medium-expert = medium followed by expert. Deterministic policies (the 2017
expert, DAgger students) act with Gaussian noise ``action_noise`` (clipped to [-1, 1]); SAC samples
its stochastic policy, resampling the gSDE exploration matrix every ``gsde_resample_every`` steps
(outside ``learn`` SB3 never does, reference §4.4).

Reference scores (per env, stored with every dataset): ref_min = mean return of the uniform random
policy over ``ref_random_episodes`` episodes; ref_max = mean return of the expert acting
deterministically over ``ref_expert_episodes`` episodes.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib.util
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import rl_core
from rl_core.data_io import data_root, load_dataset, make_temp_dir, save_dataset, split_task
from rl_core.datasets import FIELDS, OfflineDataset, compute_fingerprint
from rl_core.envs import TASK_ENVS, make_env
from rl_core.errors import DatasetError

Progress = Callable[[str], None]
Act = Callable[[np.ndarray], np.ndarray]  # obs (obs_dim,) -> action (act_dim,) in [-1, 1]
EXPERTS_2017 = {"HopperBulletEnv-v0": "enjoy_TF_HopperBulletEnv_v0_2017may.py",
                "AntBulletEnv-v0": "enjoy_TF_AntBulletEnv_v0_2017may.py"}
_STREAMS = {"random": 1, "medium": 2, "expert": 3, "ref-random": 4, "ref-expert": 5, "demo": 6, "train": 7,
            "eval": 8}


# ----- configuration -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SACConfig:
    """RL Zoo SAC settings for the PyBullet envs (``hyperparams/sac.yml``, ``&pybullet-defaults``)."""

    learning_rate: float = 7.3e-4
    linear_lr_envs: tuple[str, ...] = ("HopperBulletEnv-v0", "Walker2DBulletEnv-v0")  # zoo `lin_7.3e-4`
    buffer_size: int = 300_000
    batch_size: int = 256
    gamma: float = 0.98
    tau: float = 0.02
    train_freq: int = 8
    gradient_steps: int = 8
    learning_starts: int = 10_000
    use_sde: bool = True
    log_std_init: float = -3.0
    net_arch: tuple[int, ...] = (400, 300)
    gsde_resample_every: int = 8  # resample the gSDE matrix every k steps when collecting (= train_freq)


@dataclass(frozen=True)
class Budget:
    """Everything that sizes a generation run; one instance per ``--budget`` name."""

    name: str
    transitions: int  # per random / medium / expert dataset (whole episodes; may overshoot by < 1000)
    fraction: float  # medium = first snapshot with eval normalized score >= 100 * fraction
    action_noise: float  # Gaussian std on deterministic behaviour policies (2017 expert, DAgger student)
    ref_random_episodes: int  # episodes behind ref_min_score
    ref_expert_episodes: int  # episodes behind ref_max_score
    eval_episodes: int  # per SAC snapshot
    use_2017_experts: bool  # Hopper/Ant: 2017 expert + DAgger instead of SAC
    dagger_demo_steps: int  # expert demonstration transitions that start the aggregate
    dagger_rollout_steps: int  # learner steps per round (its evaluation and new training states)
    dagger_grad_steps: int  # Adam steps per round
    dagger_max_rounds: int
    dagger_hidden: tuple[int, ...]
    dagger_lr: float
    dagger_batch_size: int
    sac_steps: int  # SAC environment steps
    sac_snapshot_every: int
    sac: SACConfig = field(default_factory=SACConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise DatasetError(f"budget '{self.name}': fraction must be in [0, 1], got {self.fraction}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Budget:
        sac = d.get("sac", {})
        return cls(**{**d, "dagger_hidden": tuple(d["dagger_hidden"]),
                      "sac": SACConfig(**{**sac, "linear_lr_envs": tuple(sac.get("linear_lr_envs", ())),
                                          "net_arch": tuple(sac.get("net_arch", (400, 300)))})})


_DAGGER = dict(dagger_demo_steps=1000, dagger_rollout_steps=5000, dagger_grad_steps=20, dagger_max_rounds=80,
               dagger_hidden=(64, 64), dagger_lr=1e-3, dagger_batch_size=256)
BUDGETS: dict[str, Budget] = {
    # tests only: seconds; medium is the first snapshot (fraction 0)
    "tiny": Budget("tiny", transitions=1500, fraction=0.0, action_noise=0.1, ref_random_episodes=3,
                   ref_expert_episodes=1, eval_episodes=1, use_2017_experts=True,
                   **{**_DAGGER, "dagger_demo_steps": 300, "dagger_rollout_steps": 300, "dagger_max_rounds": 2},
                   sac_steps=300, sac_snapshot_every=150,
                   sac=SACConfig(learning_starts=100, net_arch=(32, 32), buffer_size=1000, batch_size=64,
                                 gradient_steps=2)),
    # laptop default: hopper-medium in ~2-3 min on 2 cores; 100k transitions = 10 % of D4RL
    "quick": Budget("quick", transitions=100_000, fraction=0.4, action_noise=0.1, ref_random_episodes=100,
                    ref_expert_episodes=10, eval_episodes=5, use_2017_experts=True, **_DAGGER,
                    sac_steps=100_000, sac_snapshot_every=5_000),
    "standard": Budget("standard", transitions=300_000, fraction=0.4, action_noise=0.1, ref_random_episodes=100,
                       ref_expert_episodes=20, eval_episodes=5, use_2017_experts=False, **_DAGGER,
                       sac_steps=300_000, sac_snapshot_every=10_000),
    # D4RL sizes: 1M transitions, SAC trained 1M steps
    "paper": Budget("paper", transitions=1_000_000, fraction=0.4, action_noise=0.1, ref_random_episodes=100,
                    ref_expert_episodes=100, eval_episodes=10, use_2017_experts=False, **_DAGGER,
                    sac_steps=1_000_000, sac_snapshot_every=10_000),
}


def get_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise DatasetError(f"unknown budget '{name}'; allowed: {', '.join(BUDGETS)}")
    return BUDGETS[name]


# ----- policies ----------------------------------------------------------------------------------
class MLPPolicy:
    """Deterministic numpy MLP: ReLU hidden layers, linear output clipped to [-1, 1].

    ``layers`` = [(W (in, out), b (out,)), ...]; ``__call__(obs (obs_dim,)) -> (act_dim,)``.
    """

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]]):
        self.layers = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in layers]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, np.float64)
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return np.clip(x, -1.0, 1.0)

    def save(self, path: Path) -> None:
        np.savez(path, **{f"{k}{i}": a for i, (w, b) in enumerate(self.layers) for k, a in (("w", w), ("b", b))})

    @classmethod
    def load(cls, path: Path) -> MLPPolicy:
        with np.load(path) as f:
            return cls([(f[f"w{i}"], f[f"b{i}"]) for i in range(len(f.files) // 2)])


def expert_2017_path(env_id: str) -> Path | None:
    spec = importlib.util.find_spec("pybullet_envs")
    if env_id not in EXPERTS_2017 or spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "examples" / EXPERTS_2017[env_id]
    return path if path.exists() else None


def load_2017_expert(env_id: str) -> MLPPolicy:
    """The 2017 policy for ``env_id``, parsed from the example file's literals (never imported)."""
    path = expert_2017_path(env_id)
    if path is None:
        raise DatasetError(f"no 2017 pybullet expert for {env_id} (available: {', '.join(EXPERTS_2017)})")
    arrays = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and node.value.args:
            name = getattr(node.targets[0], "id", "")
            if name.startswith("weights_"):
                arrays[name] = np.array(ast.literal_eval(node.value.args[0]))
    names = ("dense1", "dense2", "final")
    return MLPPolicy([(arrays[f"weights_{n}_w"], arrays[f"weights_{n}_b"]) for n in names])


def noisy(policy: Callable[[np.ndarray], np.ndarray], std: float, rng: np.random.Generator) -> Act:
    """``a = clip(policy(s) + std * N(0, I), -1, 1)``."""
    def act(obs: np.ndarray) -> np.ndarray:
        a = policy(obs)
        return np.clip(a + std * rng.standard_normal(a.shape), -1.0, 1.0)

    return act


def uniform(act_dim: int, rng: np.random.Generator) -> Act:
    return lambda obs: rng.uniform(-1.0, 1.0, act_dim)


# ----- rollouts ----------------------------------------------------------------------------------
@dataclass
class Rollouts:
    """Whole episodes in D4RL-v2 layout (``arrays`` keyed by FIELDS) plus per-episode returns/lengths."""

    arrays: dict[str, np.ndarray]
    returns: np.ndarray  # (episodes,)
    lengths: np.ndarray  # (episodes,)
    reset_seed_base: int

    def __len__(self) -> int:
        return len(self.arrays["rewards"])


def rollout(env_id: str, act: Act, *, seed_base: int, min_steps: int = 0, episodes: int = 0,
            progress: Progress | None = None, label: str = "", on_episode: Callable[[], None] | None = None) -> Rollouts:
    """Run whole episodes (episode j reset with seed ``seed_base + j``) until both ``episodes`` episodes
    and ``min_steps`` transitions are reached. Prints progress every ~20k steps when ``progress``."""
    env = make_env(env_id)
    buf: dict[str, list] = {k: [] for k in FIELDS}
    rets, lens, n, next_report = [], [], 0, 20_000
    try:
        while len(rets) < episodes or n < min_steps:
            if on_episode:
                on_episode()
            obs, _ = env.reset(seed=seed_base + len(rets))
            ret, length, done = 0.0, 0, False
            while not done:
                a = np.asarray(act(obs), np.float32)
                nxt, r, term, trunc, _ = env.step(a)
                for k, v in zip(FIELDS, (obs, a, r, nxt, term, trunc and not term)):
                    buf[k].append(v)
                obs, ret, length, done = nxt, ret + float(r), length + 1, term or trunc
            rets.append(ret)
            lens.append(length)
            n += length
            if progress and n >= next_report:
                progress(f"  {label}: {n:,} transitions, {len(rets)} episodes, mean return {np.mean(rets):.1f}")
                next_report += 20_000
    finally:
        env.close()
    dtypes = {"terminals": bool, "timeouts": bool}
    arrays = {k: np.asarray(v, dtype=dtypes.get(k, np.float32)) for k, v in buf.items()}
    return Rollouts(arrays, np.asarray(rets), np.asarray(lens), seed_base)


def seed_base(seed: int, stream: str) -> int:
    """Disjoint reset-seed ranges per (seed, stream): (16 * seed + stream) * 10^6."""
    return (16 * seed + _STREAMS[stream]) * 1_000_000


# ----- learning processes ------------------------------------------------------------------------
@dataclass
class Process:
    """A finished behaviour-learning process, as recorded in ``process.json``."""

    directory: Path
    info: dict  # kind, env_id, budget, seed, snapshots [{index, step, eval_return, eval_episodes, path}], ...

    @property
    def medium(self) -> dict:
        return self.info["snapshots"][self.info["medium_index"]]

    def policy(self, which: str, *, stochastic: bool, rng: np.random.Generator, seed: int) -> Act:
        """Acting function of the ``"expert"`` or ``"medium"`` policy (stochastic = as in the datasets)."""
        noise = self.info["budget"]["action_noise"] if stochastic else 0.0
        if self.info["kind"] == "dagger":
            pol = load_2017_expert(self.info["env_id"]) if which == "expert" else MLPPolicy.load(
                self.directory / self.medium["path"])
            return noisy(pol, noise, rng)
        path = self.info["snapshots"][-1 if which == "expert" else self.info["medium_index"]]["path"]
        return _sac_actor(self.info, self.directory / path, stochastic=stochastic, seed=seed)

    def replay(self) -> dict[str, np.ndarray]:
        """Training transitions up to and including the medium snapshot's evaluation (module docstring)."""
        with np.load(self.directory / "replay.npz") as f:
            keep = f["snapshot"] <= self.info["medium_index"] if self.info["kind"] == "dagger" else \
                np.arange(len(f["rewards"])) < self.medium["step"]
            return {k: f[k][keep] for k in FIELDS}


def behaviour_process(env_id: str, budget: Budget, seed: int, root: Path, progress: Progress) -> Process:
    """Load the learning process for (env, budget, seed) from ``root/_policies``, training it if absent."""
    directory = root / "_policies" / env_id / f"{budget.name}-seed{seed}"
    if (directory / "process.json").exists():
        info = json.loads((directory / "process.json").read_text())
        if info["budget"] != json.loads(json.dumps(budget.to_dict())):
            raise DatasetError(f"{directory}: behaviour policies were made with different '{budget.name}' budget "
                               f"values; delete that directory to retrain them")
        progress(f"[policies] reusing {directory}")
        return Process(directory, info)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(directory)
    try:
        t0 = time.time()
        use_dagger = budget.use_2017_experts and expert_2017_path(env_id) is not None
        info = (_train_dagger if use_dagger else _train_sac)(env_id, budget, seed, tmp, progress)
        info.update(env_id=env_id, seed=seed, budget=budget.to_dict(), seconds=round(time.time() - t0, 1))
        (tmp / "process.json").write_text(json.dumps(info, indent=1))
        shutil.rmtree(directory, ignore_errors=True)
        tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Process(directory, info)


def _references(env_id: str, budget: Budget, seed: int, expert: Act, expert_desc: str,
                progress: Progress) -> dict:
    rng = np.random.default_rng([seed, _STREAMS["ref-random"]])
    act_dim = make_env(env_id).action_space.shape[0]
    rand = rollout(env_id, uniform(act_dim, rng), seed_base=seed_base(seed, "ref-random"),
                   episodes=budget.ref_random_episodes)
    progress(f"[reference] random policy: mean return {rand.returns.mean():.1f} over {len(rand.returns)} episodes")
    exp = rollout(env_id, expert, seed_base=seed_base(seed, "ref-expert"), episodes=budget.ref_expert_episodes)
    progress(f"[reference] expert ({expert_desc}, deterministic): mean return {exp.returns.mean():.1f} "
             f"over {len(exp.returns)} episodes")
    return {"ref_min_score": float(rand.returns.mean()), "ref_max_score": float(exp.returns.mean()),
            "ref_min_source": f"uniform random actions, mean over {len(rand.returns)} episodes",
            "ref_max_source": f"expert ({expert_desc}) acting deterministically, mean over {len(exp.returns)} episodes",
            "ref_min_episodes": len(rand.returns), "ref_max_episodes": len(exp.returns)}


def _medium_target(refs: dict, fraction: float) -> float:
    """Return at normalised score 100 * fraction: ref_min + fraction * (ref_max - ref_min)."""
    return refs["ref_min_score"] + fraction * (refs["ref_max_score"] - refs["ref_min_score"])


def _train_dagger(env_id: str, budget: Budget, seed: int, out: Path, progress: Progress) -> dict:
    import torch

    expert = load_2017_expert(env_id)
    desc = f"pybullet 2017 policy {EXPERTS_2017[env_id]}"
    refs = _references(env_id, budget, seed, expert, desc, progress)
    target = _medium_target(refs, budget.fraction)
    rng = np.random.default_rng([seed, _STREAMS["train"]])
    progress(f"[dagger] imitating the expert until a snapshot's return reaches {target:.1f} "
             f"(normalized {100 * budget.fraction:.0f})")
    demo = rollout(env_id, noisy(expert, budget.action_noise, rng), seed_base=seed_base(seed, "demo"),
                   min_steps=budget.dagger_demo_steps)
    states = demo.arrays["observations"]
    labels = np.stack([expert(s) for s in states]).astype(np.float32)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        dims = (states.shape[1], *budget.dagger_hidden, labels.shape[1])
        mods: list[torch.nn.Module] = []
        for i in range(len(dims) - 1):
            mods += [torch.nn.Linear(dims[i], dims[i + 1]), torch.nn.ReLU()]
        net = torch.nn.Sequential(*mods[:-1])
    opt = torch.optim.Adam(net.parameters(), lr=budget.dagger_lr)
    gen = torch.Generator().manual_seed(seed)
    (out / "snapshots").mkdir()
    snaps, replay, medium_index = [], [], None
    for k in range(budget.dagger_max_rounds):
        x, y = torch.as_tensor(states), torch.as_tensor(labels)
        for _ in range(budget.dagger_grad_steps):
            idx = torch.randint(len(x), (budget.dagger_batch_size,), generator=gen)
            loss = ((net(x[idx]) - y[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        student = MLPPolicy([(m.weight.detach().numpy().T, m.bias.detach().numpy())
                             for m in net if isinstance(m, torch.nn.Linear)])
        path = f"snapshots/round_{k:04d}.npz"
        student.save(out / path)
        ro = rollout(env_id, noisy(student, budget.action_noise, rng),
                     seed_base=seed_base(seed, "train") + 10_000 * k, min_steps=budget.dagger_rollout_steps)
        snaps.append({"index": k, "step": (k + 1) * budget.dagger_grad_steps, "eval_return": float(ro.returns.mean()),
                      "eval_episodes": len(ro.returns), "train_loss": loss.item(), "path": path,
                      "reset_seed_base": ro.reset_seed_base})
        replay.append({**ro.arrays, "snapshot": np.full(len(ro), k, np.int32)})
        progress(f"  round {k}: {(k + 1) * budget.dagger_grad_steps} grad steps, loss {loss.item():.4f}, "
                 f"return {ro.returns.mean():.1f} over {len(ro.returns)} episodes, aggregate {len(states):,}")
        if ro.returns.mean() >= target:
            medium_index = k
            break
        states = np.concatenate([states, ro.arrays["observations"]])
        labels = np.concatenate([labels, np.stack([expert(s) for s in ro.arrays["observations"]]).astype(np.float32)])
    if medium_index is None:
        raise DatasetError(f"{env_id}: DAgger did not reach {target:.1f} in {budget.dagger_max_rounds} rounds; "
                           f"raise dagger_max_rounds or lower fraction in budget '{budget.name}'")
    np.savez(out / "replay.npz", **{k: np.concatenate([r[k] for r in replay]) for k in replay[0]})
    progress(f"[dagger] medium = round {medium_index} (return {snaps[medium_index]['eval_return']:.1f})")
    return {"kind": "dagger", "algorithm": "DAgger (Ross et al. 2011) imitating the 2017 pybullet expert",
            "expert": {"source": desc, "path": str(expert_2017_path(env_id)), "architecture": "MLP 128-64 ReLU"},
            "student": {"architecture": f"MLP {'-'.join(map(str, budget.dagger_hidden))} ReLU, linear output",
                        "loss": "MSE to the expert's clipped action", "optimizer": "Adam"},
            "demo": {"transitions": len(demo), "episodes": len(demo.returns), "mean_return": float(demo.returns.mean())},
            "snapshots": snaps, "medium_index": medium_index, "medium_target_return": target, **refs}


def _make_sac(env: Any, budget: Budget, env_id: str, seed: int) -> Any:
    from stable_baselines3 import SAC

    c = budget.sac
    lr: Any = c.learning_rate
    if env_id in c.linear_lr_envs:
        lr = lambda progress_remaining: progress_remaining * c.learning_rate  # noqa: E731
    return SAC("MlpPolicy", env, learning_rate=lr, buffer_size=c.buffer_size, batch_size=c.batch_size,
               gamma=c.gamma, tau=c.tau, train_freq=c.train_freq, gradient_steps=c.gradient_steps,
               learning_starts=c.learning_starts, use_sde=c.use_sde, ent_coef="auto", seed=seed, device="cpu",
               policy_kwargs={"log_std_init": c.log_std_init, "net_arch": list(c.net_arch)}, verbose=0)


def _sac_act(model: Any, *, stochastic: bool, every: int) -> Act:
    """SAC acting function (the actor called directly: SB3's ``predict`` costs ~10x more per step);
    with gSDE the exploration matrix is resampled every ``every`` steps."""
    import torch

    count = [0]

    def act(obs: np.ndarray) -> np.ndarray:
        if stochastic and model.use_sde and count[0] % every == 0:
            model.actor.reset_noise(1)
        count[0] += 1
        with torch.no_grad():
            a = model.actor(torch.as_tensor(obs, dtype=torch.float32)[None], deterministic=not stochastic)
        return np.clip(a[0].numpy(), -1.0, 1.0)

    return act


def _sac_actor(info: dict, path: Path, *, stochastic: bool, seed: int) -> Act:
    import torch

    budget = Budget.from_dict(info["budget"])
    model = _make_sac(make_env(info["env_id"]), budget, info["env_id"], seed)
    model.actor.load_state_dict(torch.load(path, weights_only=True))
    torch.manual_seed(seed)  # gSDE / Gaussian sampling draws from torch's global generator
    return _sac_act(model, stochastic=stochastic, every=budget.sac.gsde_resample_every)


def _train_sac(env_id: str, budget: Budget, seed: int, out: Path, progress: Progress) -> dict:
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    (out / "snapshots").mkdir()
    buf: dict[str, list] = {k: [] for k in FIELDS}
    snaps: list[dict] = []
    every = budget.sac.gsde_resample_every
    t0 = time.time()

    class Recorder(BaseCallback):
        """Records every training transition (D4RL semantics) and snapshots + evaluates the actor."""

        def _on_step(self) -> bool:
            info, done = self.locals["infos"][0], bool(self.locals["dones"][0])
            trunc = bool(info.get("TimeLimit.truncated", False))
            nxt = info["terminal_observation"] if done else self.locals["new_obs"][0]
            values = (self.model._last_obs[0], self.locals["buffer_actions"][0], self.locals["rewards"][0], nxt,
                      done and not trunc, trunc)
            for k, v in zip(FIELDS, values):
                buf[k].append(v)
            step = self.num_timesteps
            if step % budget.sac_snapshot_every == 0 or step == budget.sac_steps:
                path = f"snapshots/step_{step:08d}.pt"
                torch.save(self.model.actor.state_dict(), out / path)
                with torch.random.fork_rng():
                    torch.manual_seed(seed + step)
                    ro = rollout(env_id, _sac_act(self.model, stochastic=True, every=every),
                                 seed_base=seed_base(seed, "eval") + step, episodes=budget.eval_episodes)
                snaps.append({"index": len(snaps), "step": step, "eval_return": float(ro.returns.mean()),
                              "eval_episodes": len(ro.returns), "path": path, "reset_seed_base": ro.reset_seed_base})
                progress(f"  step {step:,}: eval return {ro.returns.mean():.1f} over {len(ro.returns)} episodes "
                         f"({time.time() - t0:.0f} s)")
            return True

    progress(f"[sac] training SAC (RL Zoo PyBullet settings) for {budget.sac_steps:,} steps on {env_id}")
    model = _make_sac(make_env(env_id), budget, env_id, seed)
    model.learn(total_timesteps=budget.sac_steps, callback=Recorder())
    model.save(out / "final_model.zip")
    expert = _sac_act(model, stochastic=False, every=every)
    refs = _references(env_id, budget, seed, expert, f"SAC final policy, {budget.sac_steps} steps", progress)
    target = _medium_target(refs, budget.fraction)
    hits = [s["index"] for s in snaps if s["eval_return"] >= target]
    medium_index = hits[0] if hits else len(snaps) - 1
    progress(f"[sac] medium = snapshot at step {snaps[medium_index]['step']:,} "
             f"(return {snaps[medium_index]['eval_return']:.1f}, target {target:.1f})")
    dtypes = {"terminals": bool, "timeouts": bool}
    np.savez(out / "replay.npz", **{k: np.asarray(v, dtype=dtypes.get(k, np.float32)) for k, v in buf.items()})
    return {"kind": "sac", "algorithm": "stable-baselines3 SAC, RL Zoo PyBullet hyperparameters",
            "expert": {"source": f"SAC final policy after {budget.sac_steps} steps", "path": "final_model.zip"},
            "snapshots": snaps, "medium_index": medium_index, "medium_target_return": target, **refs}


# ----- datasets ----------------------------------------------------------------------------------
def _collect(level: str, proc: Process, budget: Budget, seed: int, progress: Progress) -> tuple[dict, dict]:
    """Arrays and a provenance dict for one level of ``proc``'s env."""
    env_id = proc.info["env_id"]
    rng = np.random.default_rng([seed, _STREAMS.get(level, 0)])
    if level == "medium-replay":
        progress(f"[collect] medium-replay: training transitions up to the medium snapshot")
        return proc.replay(), {"policy": "training transitions of the learning process up to and including the "
                                         f"medium snapshot's evaluation (snapshot {proc.info['medium_index']})"}
    if level == "random":
        act, desc = uniform(make_env(env_id).action_space.shape[0], rng), {"policy": "uniform random actions"}
    else:
        act = proc.policy(level, stochastic=True, rng=rng, seed=seed)
        snap = proc.info["snapshots"][-1] if level == "expert" and proc.info["kind"] == "sac" else proc.medium
        desc = {"policy": proc.info["expert"]["source"]} if level == "expert" and proc.info["kind"] == "dagger" else \
            {"policy": f"{proc.info['kind']} snapshot {snap['index']} ({snap['path']}), step {snap['step']}",
             "snapshot_eval_return": snap["eval_return"]}
        desc["actions"] = (f"Gaussian noise std {budget.action_noise}, clipped" if proc.info["kind"] == "dagger"
                           else f"SAC stochastic policy, gSDE matrix resampled every {budget.sac.gsde_resample_every} steps")
    progress(f"[collect] {level}: {budget.transitions:,} transitions")
    ro = rollout(env_id, act, seed_base=seed_base(seed, level), min_steps=budget.transitions, progress=progress,
                 label=level)
    desc["reset_seeds"] = f"episode j (0-based, file order) reset with seed {ro.reset_seed_base} + j"
    desc["reset_seed_base"] = ro.reset_seed_base
    return ro.arrays, desc


def make_dataset(task: str, budget: str = "quick", seed: int = 0, root: Path | None = None,
                 progress: Progress | None = print) -> Path:
    """Generate ``task`` (e.g. ``"hopper-medium"``) into ``root/<task>/`` atomically; returns that directory."""
    env, level = split_task(task)
    env_id, cfg = TASK_ENVS[env], get_budget(budget)
    root = Path(root or data_root())
    with _torch_threads(1):
        return _make(task, env, level, env_id, cfg, seed, root, progress or (lambda msg: None))


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads: the networks here are tiny and per-step calls with 2+ threads are
    ~10x slower on a busy machine (threads spin waiting for each other)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _make(task: str, env: str, level: str, env_id: str, cfg: Budget, seed: int, root: Path, say: Progress) -> Path:
    t0 = time.time()
    say(f"[{task}] budget '{cfg.name}', seed {seed}, data root {root}")
    proc = behaviour_process(env_id, cfg, seed, root, say)
    if level == "medium-expert":
        parts = [_level_arrays(f"{env}-{lv}", lv, proc, cfg, seed, root, say) for lv in ("medium", "expert")]
        arrays = {k: np.concatenate([p[0][k] for p in parts]) for k in FIELDS}
        provenance = {"medium_part": parts[0][1], "expert_part": parts[1][1],
                      "policy": "medium dataset followed by expert dataset"}
    else:
        arrays, provenance = _collect(level, proc, cfg, seed, say)
    ds = OfflineDataset(**arrays, metadata={})
    rets = ds.episode_returns()
    refs = {k: proc.info[k] for k in ("ref_min_score", "ref_max_score", "ref_min_source", "ref_max_source",
                                      "ref_min_episodes", "ref_max_episodes")}
    ds.metadata = {
        "env_id": env_id, "task": task, "level": level, "seed": seed, "format": "mdpt-parquet",
        "semantics": "D4RL v2: rewards[i] = r(s_i, a_i); terminals = true termination; timeouts = time limit",
        "budget": {"name": cfg.name, "values": cfg.to_dict()},
        "behaviour": {"process": proc.info["kind"], "algorithm": proc.info["algorithm"], "process_seed": seed,
                      "process_dir": str(proc.directory), "expert": proc.info["expert"],
                      "fraction": cfg.fraction, "medium_snapshot": proc.medium,
                      "snapshots": len(proc.info["snapshots"]), **provenance},
        "n_transitions": ds.n_transitions, "n_episodes": int(len(rets)),
        "return_mean": float(rets.mean()), "return_std": float(rets.std()),
        "return_min": float(rets.min()), "return_max": float(rets.max()), **refs,
        "fingerprint": compute_fingerprint(ds), "mdpt_version": rl_core.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generation_seconds": round(time.time() - t0, 1),
    }
    say(f"[save] {ds.n_transitions:,} transitions, {len(rets)} episodes, mean return {rets.mean():.1f} "
        f"(normalized {ds.normalized_score(rets.mean()):.1f})")
    out = save_dataset(ds, root / task)
    say(f"[{task}] done in {time.time() - t0:.0f} s -> {out}")
    return out


def _level_arrays(task: str, level: str, proc: Process, cfg: Budget, seed: int, root: Path,
                  say: Progress) -> tuple[dict, dict]:
    """A level's arrays, reused from ``root/<task>`` when it was made with the same budget and seed."""
    directory = root / task
    if (directory / "metadata.json").exists():
        meta = json.loads((directory / "metadata.json").read_text())
        if meta.get("budget", {}).get("values") == json.loads(json.dumps(cfg.to_dict())) and meta.get("seed") == seed:
            ds = load_dataset(str(directory))
            say(f"[collect] {level}: reusing {directory}")
            return {k: getattr(ds, k) for k in FIELDS}, {k: v for k, v in meta["behaviour"].items()
                                                         if k in ("policy", "actions", "reset_seeds", "reset_seed_base")}
    return _collect(level, proc, cfg, seed, say)


def ensure_dataset(task: str, root: Path | None = None, budget: str = "quick") -> OfflineDataset:
    """Load ``task`` from ``root`` (default ``data_root()``), generating it first if it does not exist."""
    split_task(task)
    directory = Path(root or data_root()) / task
    if not (directory / "metadata.json").exists():
        make_dataset(task, budget=budget, root=root)
    return load_dataset(task, root=root)
