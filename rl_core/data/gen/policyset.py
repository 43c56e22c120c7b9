"""An env's behaviour policies (the *policy set*) and how they are trained (``mdpt data train-policies``).

A policy set is a directory -- shipped with the package as ``rl_core/data/policies/<env>/`` -- holding
``expert.npz``, ``snapshots/round_XXXX.npz`` (the DAgger learning process from its first round up to
and including the medium policy, which is the last one) and ``provenance.json`` (how each was made,
the env's reference scores, the action noise the datasets use, the evaluation of every round and
the medium band estimate). Weight files are ``policies.MLPPolicy`` (numpy, float32 weights).

Training (``train_policies``), per env:
1. expert: Hopper and Ant use the 2017 pybullet policies (``policies.load_2017_expert``); HalfCheetah
   and Walker2D train SAC (``sac.train_sac_expert``; the wheel's 2017 policies for them fail in
   these envs) -- or reuse a given expert file.
2. reference scores (mdpt's scale): ref_min = mean return of uniform random actions over
   ``ref_random_episodes`` episodes, ref_max = the expert acting deterministically over
   ``ref_expert_episodes`` episodes.
3. DAgger from the expert (``dagger.train_dagger``) until ``stop_rounds`` rounds in a row score
   ``DaggerConfig.stop_score``; ``replay_snapshots`` evenly spaced rounds from round 0 up to the medium
   round are shipped as the learning process.
4. medium: of the rounds whose evaluation (averaged over +-2 neighbouring rounds) lies within two
   half-widths of the band ``band`` (normalized score of the medium *dataset*, i.e. with the action noise),
   the ``max_candidates`` closest to its centre are rolled out exactly as the medium dataset is (stream
   ``medium``, the set's seed) for ``screen_steps`` transitions; the ``max_selected`` closest to the centre
   are then rolled out for ``select_steps`` (default 100k, the quick budget's size: the estimate is the
   quick dataset's own score), and the first whose estimate lies in the band is the medium policy. Fails
   (one line) if none does. (The hopper, walker2d and ant sets were selected by an earlier rule -- the
   candidates' 30k-transition estimates on another stream; their provenance records it -- and their quick
   medium datasets lie in the band: 37.5, 39.8, 38.7.)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import rl_core
from rl_core.config import ConfigMixin
from rl_core.data.dataset import normalized_score
from rl_core.data.envs import TASK_ENVS, env_id_for
from rl_core.data.gen.collect import Progress, references, rollout
from rl_core.data.gen.dagger import DaggerConfig, train_dagger
from rl_core.data.gen.policies import EXPERTS_2017, MLPPolicy, expert_2017_path, load_2017_expert
from rl_core.errors import DatasetError

SHIPPED = Path(__file__).resolve().parents[1] / "policies"
PROVENANCE = "provenance.json"


def env_name(env: str) -> str:
    """Task prefix ("hopper") of a task prefix or env id."""
    env_id = env_id_for(env)
    return next(k for k, v in TASK_ENVS.items() if v == env_id)


@dataclass
class PolicySet:
    """A loaded policy set (module docstring); policies are loaded from their files on access."""

    directory: Path
    info: dict

    @property
    def env_id(self) -> str:
        return self.info["env_id"]

    @property
    def action_noise(self) -> float:
        return float(self.info["action_noise"])

    @property
    def references(self) -> dict:
        return self.info["references"]

    @property
    def replay_rounds(self) -> list[int]:
        return list(self.info["replay"]["rounds"])

    @property
    def source(self) -> str:
        """"shipped" for the package's own set, else the directory."""
        return "shipped" if self.directory.resolve() == (SHIPPED / env_name(self.env_id)).resolve() else \
            str(self.directory)

    def policy(self, which: str | int) -> MLPPolicy:
        """``"expert"``, ``"medium"`` or a replay round (int)."""
        if which == "expert":
            return MLPPolicy.load(self.directory / self.info["expert"]["file"])
        if which == "medium":
            which = self.info["medium"]["round"]
        return MLPPolicy.load(self.directory / _round_file(int(which)))

    def files(self) -> list[Path]:
        return [self.directory / PROVENANCE, self.directory / self.info["expert"]["file"],
                *(self.directory / _round_file(r) for r in self.replay_rounds)]

    @property
    def fingerprint(self) -> str:
        """sha256 over the set's files (provenance and weights), 16 hex digits."""
        h = hashlib.sha256()
        for path in self.files():
            h.update(path.relative_to(self.directory).as_posix().encode())
            h.update(path.read_bytes())
        return h.hexdigest()[:16]


def _round_file(r: int) -> str:
    return f"snapshots/round_{r:04d}.npz"


def load_policy_set(env: str, directory: Path | None = None) -> PolicySet:
    """The policy set of ``env`` (task prefix or env id): ``directory`` (a set, or a root holding
    ``<env>/`` sets) or the shipped one."""
    name = env_name(env)
    directory = Path(directory) if directory is not None else SHIPPED / name
    if not (directory / PROVENANCE).exists() and (directory / name / PROVENANCE).exists():
        directory = directory / name
    path = directory / PROVENANCE
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: no behaviour policies for {name} there; train them with "
                           f"`mdpt data train-policies {name} --out {directory}`") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable policy provenance ({exc})") from None
    if info.get("env_id") != TASK_ENVS[name]:
        raise DatasetError(f"{path}: policies are for {info.get('env_id')}, not {TASK_ENVS[name]}")
    pset = PolicySet(directory, info)
    missing = [str(p) for p in pset.files() if not p.exists()]
    if missing:
        raise DatasetError(f"{directory}: policy set incomplete, missing {', '.join(missing)}")
    return pset


# ----- training --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SelectionConfig(ConfigMixin):
    """Reference scores and the medium band (module docstring, steps 2 and 4)."""

    band: tuple[float, float] = (30.0, 45.0)  # medium dataset mean normalized score, mdpt's scale
    screen_steps: int = 30_000  # first estimate of each candidate: the start of its medium dataset
    # the estimate of the candidates closest to the band's centre, rolled out as the medium dataset is (stream
    # "medium", the set's seed): at the quick budget's 100k transitions it is that dataset's own score
    select_steps: int = 100_000
    max_candidates: int = 8
    max_selected: int = 3  # candidates rolled out for select_steps (closest to the centre first) before giving up
    replay_snapshots: int = 20  # learning-process snapshots shipped for medium-replay (evenly spaced, medium last)
    ref_random_episodes: int = 100
    ref_expert_episodes: int = 20


def _expert(env_id: str, seed: int, expert_file: Path | None, sac_cfg: Any, work: Path,
            progress: Progress) -> tuple[MLPPolicy, dict]:
    if expert_file is not None:  # a shipped set's expert (its provenance) or a SAC run's (its sac_progress.json)
        expert_file = Path(expert_file)
        prov, sac_rec = expert_file.parent / PROVENANCE, expert_file.parent / "sac_progress.json"
        info = json.loads(prov.read_text())["expert"] if prov.exists() else \
            _sac_info(json.loads(sac_rec.read_text())) if sac_rec.exists() else {}
        info.pop("file", None)
        progress(f"[expert] reusing {expert_file}")
        # the run's directory and file name only: an absolute path names one machine
        return MLPPolicy.load(expert_file), {**info, "reused_from": f"{expert_file.parent.name}/{expert_file.name}"}
    if env_id in EXPERTS_2017:
        pol = load_2017_expert(env_id)
        return pol, {"source": f"pybullet 2017 policy {EXPERTS_2017[env_id]} (pybullet_envs/examples, parsed with ast, "
                               "weights stored as float64: exact)", "architecture": "MLP 128-64 ReLU, output clipped",
                     "file_in_wheel": f"pybullet_envs/examples/{expert_2017_path(env_id).name}",
                     "wheel": f"pybullet-envs-gymnasium {importlib.metadata.version('pybullet-envs-gymnasium')}"}
    from rl_core.data.gen.sac import SACConfig, train_sac_expert

    rec = train_sac_expert(env_id, sac_cfg or SACConfig(), seed, work / "sac", progress)
    return MLPPolicy.load(work / "sac" / "expert.npz"), _sac_info(rec)


def _sac_info(rec: dict) -> dict:
    """The provenance of a SAC expert from its training record (``sac.train_sac_expert``)."""
    cfg = rec["settings"]
    return {"source": f"SAC actor snapshot at step {rec['expert_step']} of {cfg['steps']} (best deterministic "
                      f"evaluation over {cfg['eval_episodes']} episodes: {rec['expert_eval_return']:.1f})",
            "architecture": f"MLP {'-'.join(map(str, cfg['net_arch']))} ReLU, tanh(clip(mean, -2, 2)) "
                            "(the SB3 gSDE actor's deterministic action)",
            "training": rec}


def train_policies(env: str, out: Path, *, seed: int = 0, dagger: DaggerConfig | None = None,
                   select: SelectionConfig | None = None, sac: Any = None, expert_file: Path | None = None,
                   work: Path | None = None, progress: Progress = print) -> PolicySet:
    """Train ``env``'s policy set (module docstring) into ``out`` (replaced); intermediate files (SAC and
    DAgger snapshots) go to ``work`` (default ``out/../<env>-work``)."""
    name = env_name(env)
    env_id = TASK_ENVS[name]
    dagger, select = dagger or DaggerConfig(), select or SelectionConfig()
    out = Path(out)
    work = Path(work) if work is not None else out.parent / f"{name}-work"
    work.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.time(), time.process_time()
    expert, expert_info = _expert(env_id, seed, expert_file, sac, work, progress)
    refs = references(env_id, expert, seed=seed, random_episodes=select.ref_random_episodes,
                      expert_episodes=select.ref_expert_episodes, progress=progress)
    record = train_dagger(env_id, expert, refs, dagger, seed, work / "dagger", progress)
    medium = _select_medium(env_id, record, refs, dagger, select, seed, work / "dagger", progress)
    m = medium["round"]
    rounds = sorted({round(i * m / (select.replay_snapshots - 1)) for i in range(select.replay_snapshots)}) \
        if m + 1 > select.replay_snapshots else list(range(m + 1))
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "snapshots").mkdir(parents=True)
    expert.save(tmp / "expert.npz", dtype=np.float64)  # exactly the expert used above (2017 weights are float64)
    for r in rounds:
        shutil.copyfile(work / "dagger" / _round_file(r), tmp / _round_file(r))
    info = {
        "env": name, "env_id": env_id, "obs_dim": expert.obs_dim, "act_dim": expert.act_dim,
        "action_noise": dagger.action_noise,
        "expert": {"file": "expert.npz", **expert_info},
        "references": refs,
        "dagger": record,
        "medium": {**medium, "file": _round_file(medium["round"])},
        "replay": {"rounds": rounds, "files": [_round_file(r) for r in rounds],
                   "note": "medium-replay = seeded rollouts of each of these rounds (with the action noise), the "
                           "dataset's transitions spread evenly over them; evenly spaced rounds of the DAgger run "
                           "from round 0 to the medium round"},
        "selection": select.to_dict(), "seed": seed, "mdpt_version": rl_core.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(time.time() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
    }
    (tmp / PROVENANCE).write_text(json.dumps(info, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    progress(f"[policies] {name}: expert + {len(rounds)} learning-process snapshots (medium = round "
             f"{medium['round']}, estimated normalized {medium['estimate']['normalized_score']:.1f}) -> {out}")
    return load_policy_set(name, out)


def _select_medium(env_id: str, record: dict, refs: dict, dagger: DaggerConfig, select: SelectionConfig,
                   seed: int, directory: Path, progress: Progress) -> dict:
    lo, hi = select.band
    centre, margin = (lo + hi) / 2, (hi - lo) / 2
    rounds = record["rounds"]
    smooth = []  # a round's score averaged with its neighbours' (+-2 rounds; single rounds are noisy)
    for i in range(len(rounds)):
        window = rounds[max(0, i - 2):i + 3]
        ret = sum(r["eval_return"] * r["eval_transitions"] for r in window) / sum(r["eval_transitions"] for r in window)
        smooth.append(float(normalized_score(ret, refs["ref_min_score"], refs["ref_max_score"])))
    near = [(s, r) for s, r in zip(smooth, rounds) if lo - 2 * margin <= s <= hi + 2 * margin]
    near = [r for _, r in sorted(near, key=lambda x: abs(x[0] - centre))[:select.max_candidates]]
    if not near:
        raise DatasetError(f"{env_id}: no DAgger round scored near the medium band [{lo}, {hi}] "
                           f"(scores: {[round(r['eval_score'], 1) for r in record['rounds']]}); lower "
                           "DaggerConfig.grad_steps for finer rounds")

    def estimate(r: dict, steps: int) -> dict:
        ro = rollout(env_id, MLPPolicy.load(directory / r["path"]), seed=seed, stream="medium",
                     noise=dagger.action_noise, min_steps=steps)
        ret = float(ro.returns.mean())
        score = float(normalized_score(ret, refs["ref_min_score"], refs["ref_max_score"]))
        progress(f"[medium] round {r['round']}: {len(ro):,} transitions, {len(ro.returns)} episodes, "
                 f"normalized {score:.1f}")
        return {"round": r["round"], "transitions": len(ro), "episodes": len(ro.returns), "mean_return": ret,
                "normalized_score": score}

    screened = sorted(((estimate(r, select.screen_steps), r) for r in near),
                      key=lambda x: abs(x[0]["normalized_score"] - centre))
    candidates, inside = [c for c, _ in screened], []
    for _, r in screened[:select.max_selected]:
        c = estimate(r, select.select_steps)
        candidates.append(c)
        if lo <= c["normalized_score"] <= hi:
            inside.append(c)
            break
    if not inside:
        raise DatasetError(f"{env_id}: no medium candidate lands in the band [{lo}, {hi}] "
                           f"({[(c['round'], c['transitions'], round(c['normalized_score'], 1)) for c in candidates]}); "
                           "retrain with another seed or finer DAgger rounds")
    best = min(inside, key=lambda c: abs(c["normalized_score"] - centre))
    return {"round": best["round"], "band": [lo, hi], "estimate": best, "candidates": candidates}
