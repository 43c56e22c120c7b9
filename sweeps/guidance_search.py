"""Guidance-parameter search over fixed snapshots: the driver of `mdpt tune-guidance`.

Inference-only parameters (SWG scale s, gradient-guidance scale λ, softmax inverse temperature,
optionally the start temperature and the number of candidates) are searched without retraining.
This module is the driver (snapshot groups, one study each, resume, best.json, printing); the Tune
trainable, its eval jobs and the Optuna searcher are ``trainables/search.py``; the ``guidance_search``
table (schema, row builder, writer) is ``trainables/results.py``.

1. **Snapshots.** From a run directory's ``trials`` table, every finished training trial, grouped by
   (task, algo, train_guidance); per trial its final snapshot (or ``step``) under
   ``RUN_DIR/snapshots/<trial_id>/step_XXXXXXXX.pt``. One group = one Optuna study, whose objective
   is the mean normalized score over the group's seeds (``trainables/search.py``).
2. **Search.** Ray Tune with ``TrackedOptunaSearch`` (TPE, seeded), FIFO scheduling,
   ``max_concurrent_trials``; each Tune trial sends one eval job per seed to the evaluator pool.
   The method's grid (``SearchSpace.points``, e.g. the paper's SWG scales 1, 5, 10, ..., 30) is
   enqueued into the study first (``enqueue_trial(skip_if_exists=True)``).
3. **Persistence and resume.** The study lives in ``RUN_DIR/guidance_search/<study>.journal``
   (Optuna ``JournalFileBackend``) or an RDB URL, so Optuna's own tools read it (``optuna.load_study``;
   ``optuna trials --study-name S --storage RUN_DIR/guidance_search/S.journal --storage-class
   JournalFileBackend``). ``trials`` is the number of finished trials the study should hold: re-running the same
   command after an interruption marks the trials the dead driver left RUNNING as FAIL (user
   attribute ``interrupted``), enqueues their parameters again, and runs only the missing trials
   with a fresh Tuner on the loaded study, so trial numbers continue. Eval jobs are idempotent by
   key, so re-evaluated parameters reuse their ``evals`` rows (hence a changed ``episodes`` or
   ``max_steps`` needs a new study name), and every finished trial's rows exist exactly once: a
   finished trial whose ``guidance_search`` row the dead driver did not write gets it from the
   study (``reconcile_study``). One driver per study at a time.
4. **Results.** ``evals`` rows (``infer_source = search:<study>[...]``, ``infer_method``,
   ``infer_scale``), the ``guidance_search`` table (``trainables.results.GUIDANCE_SEARCH_SCHEMA``), and
   ``RUN_DIR/guidance_search/best.json``: ``{<study>: {study, task, algo, train_guidance, method, params,
   inference, objective, per_seed, trial, n_trials, n_complete, n_failed, snapshots, storage, episodes,
   max_steps, wall_s}}``; ``inference`` is a complete InferenceConfig dict, usable as a spec's
   ``eval.inference.<algo>`` entry.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import ray
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import FIFOScheduler

from rl_core.errors import ConfigError
from rl_core.modes import get_mode
from rl_core.fsutil import atomic_write_text
from sweeps.run import init_ray
from trainables.evaluator import coordinator_name, start_pool
from trainables.results import read_table, search_row, write_search_row
from trainables.search import METRIC, MODE, TrackedOptunaSearch, guidance_trial, suggested_params, trial_param_space
from trainables.trial import TrialSpec

SEARCH_METHODS = ("swg", "gradient", "softmax")
TRIAL_RESOURCES = {"cpu": 0, "memory": 2**20}  # a trial only waits on the pool; Tune refuses an all-zero request
DEFAULT_MAX_STEPS = 1000  # episode cap of a SnapshotRef built by hand
Printer = Callable[[str], None]


# ----- configuration ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamRange:
    """One searched parameter: a range (uniform, or log-uniform with ``log``) or a list of ``choices``."""

    low: float = 0.0  # lower bound of the range
    high: float = 1.0  # upper bound of the range
    log: bool = False  # sample log-uniformly (needs low > 0)
    choices: tuple[float, ...] = ()  # categorical values instead of a range

    def check(self, name: str) -> None:
        if self.choices:
            return
        if not self.low < self.high:
            raise ConfigError(f"guidance search `{name}`: range [{self.low}, {self.high}] is empty; allowed: low < high")
        if self.log and self.low <= 0:
            raise ConfigError(f"guidance search `{name}`: log range needs low > 0, got {self.low}")

    def contains(self, value: float) -> bool:
        return value in self.choices if self.choices else self.low <= value <= self.high

    def distribution(self) -> optuna.distributions.BaseDistribution:
        if self.choices:
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)


@dataclass(frozen=True)
class SearchSpace:
    """What a study searches: always ``scale``; optionally ``temperature`` and ``n_candidates``."""

    scale: ParamRange  # SWG s | gradient λ | softmax inverse temperature
    points: tuple[float, ...] = ()  # scales evaluated first (enqueued), e.g. the paper's SWG grid
    temperature: ParamRange | None = None  # also search the sampler's start temperature x_T = temp * N(0, I)
    n_candidates: tuple[int, ...] = ()  # also search the number of candidates among these

    def __post_init__(self) -> None:
        self.scale.check("scale")
        if self.temperature is not None:
            self.temperature.check("temperature")
            if min(self.temperature.choices or (self.temperature.low,)) < 0:
                raise ConfigError("guidance search `temperature`: values must be >= 0")
        if any(not isinstance(n, int) or n < 1 for n in self.n_candidates):
            raise ConfigError(f"guidance search `n_candidates`: bad choices {self.n_candidates}; allowed: integers >= 1")
        bad = [p for p in self.points if not self.scale.contains(p)]
        if bad:
            raise ConfigError(f"guidance search `points`: scales {bad} lie outside the scale space {self.scale}")

    def distributions(self) -> dict[str, Any]:
        """Optuna distributions keyed by InferenceConfig field."""
        out = {"scale": self.scale.distribution()}
        if self.temperature is not None:
            out["temperature"] = self.temperature.distribution()
        if self.n_candidates:
            out["n_candidates"] = ParamRange(choices=self.n_candidates).distribution()
        return out


DEFAULT_SPACES: dict[str, SearchSpace] = {
    # the SWG paper's grid of scales 1, 5, 10, ..., 30 (Tagle et al.), on a linear range
    "swg": SearchSpace(ParamRange(0.0, 30.0), points=(1.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0)),
    "gradient": SearchSpace(ParamRange(1e-3, 100.0, log=True), points=(0.01, 0.1, 1.0, 10.0)),
    "softmax": SearchSpace(ParamRange(0.1, 1000.0, log=True), points=(1.0, 10.0, 100.0), n_candidates=(1, 10, 50)),
}


@dataclass(frozen=True)
class SearchConfig:
    """One `mdpt tune-guidance` invocation."""

    method: str | None = None  # swg | gradient | softmax; None = swg for SWG snapshots, gradient otherwise
    space: SearchSpace | None = None  # None = DEFAULT_SPACES[method]
    trials: int = 12  # finished trials each study should hold (a re-run continues up to this count)
    max_concurrent: int = 2  # Tune trials in flight per study
    seed: int = 0  # TPE sampler seed (offset by the study's trial count when resuming)
    startup_trials: int = 10  # TPE: random / enqueued trials before the model is used
    step: int | None = None  # snapshot step to search on; None = each trial's final snapshot
    episodes: int | None = None  # episodes per snapshot and trial; None = the training trial's eval setting
    max_steps: int | None = None  # episode step cap; None = the training trial's eval setting
    tasks: tuple[str, ...] = ()  # restrict to these tasks (empty = all)
    algos: tuple[str, ...] = ()  # restrict to these algorithms
    train_guidance: tuple[str, ...] = ()  # restrict to these training-guidance modes
    study: str | None = None  # study name; None = <method>-<task>-<algo>-<train_guidance>
    storage: str | None = None  # Optuna RDB URL; None = journal file RUN_DIR/guidance_search/<study>.journal
    evaluators: int = 2  # evaluator actors of the pool (when none is running for this run directory)
    evaluator_cpu: float = 1.0  # CPUs per evaluator
    evaluator_gpu: float = 0.0  # GPUs per evaluator

    def __post_init__(self) -> None:
        if self.method is not None and self.method not in SEARCH_METHODS:
            raise ConfigError(f"--method {self.method!r} is not searchable; allowed: {list(SEARCH_METHODS)}")
        for name in ("trials", "max_concurrent", "evaluators"):
            if getattr(self, name) < 1:
                raise ConfigError(f"guidance search `{name}` = {getattr(self, name)}; allowed: an integer >= 1")
        for name in ("episodes", "max_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"guidance search `{name}` = {getattr(self, name)}; allowed: an integer >= 1 or None")
        if self.space is not None and self.method is None:
            raise ConfigError("a custom search space needs an explicit method (--method swg | gradient | softmax)")

    def space_for(self, method: str) -> SearchSpace:
        return self.space or DEFAULT_SPACES[method]


# ----- snapshots -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SnapshotRef:
    """The snapshot of one seed, with the eval-row identity of its training trial."""

    snapshot: str
    sweep: str
    trial_id: str
    task: str
    algo: str
    train_guidance: str
    seed: int
    guidance_seed: int
    step: int
    inference: dict = field(default_factory=dict)  # the training trial's InferenceConfig dict
    episodes: int = 10
    max_steps: int = DEFAULT_MAX_STEPS

    @property
    def group(self) -> tuple[str, str, str]:
        return self.task, self.algo, self.train_guidance

    def trial_entry(self) -> dict[str, Any]:
        """This snapshot in the trial config (``trainables.search.trial_param_space``), with its eval seed."""
        from rl_core.evaluation import eval_seed_for

        keys = ("snapshot", "sweep", "trial_id", "task", "algo", "train_guidance", "seed", "guidance_seed", "step")
        return {**{k: getattr(self, k) for k in keys}, "eval_seed": eval_seed_for(self.seed, self.step)}


def _eval_settings(config: dict) -> tuple[dict, int, int, int]:
    """(inference, episodes, max_steps, guidance_seed) of a trials row's config (a TrialSpec dict, written by a
    sweep and by `mdpt train` alike)."""
    spec = TrialSpec.from_dict(config)
    return spec.eval.inference, spec.eval.episodes, spec.eval.max_steps, spec.identity.guidance_seed


def _wanted(value: str, allowed: tuple[str, ...]) -> bool:
    return not allowed or value in allowed


def select_snapshots(run_dir: Path, cfg: SearchConfig) -> dict[tuple[str, str, str], list[SnapshotRef]]:
    """(task, algo, train_guidance) -> one snapshot per seed, from the finished training trials of ``run_dir``."""
    rows = [r for r in read_table(run_dir, "trials").to_pylist() if r["stage"] == "train" and r["status"] == "TERMINATED"]
    if not rows:
        raise ConfigError(f"{run_dir} has no finished training trials in results/trials; run `mdpt sweep` or "
                          f"`mdpt train --out {run_dir}` first")
    groups: dict[tuple[str, str, str], list[SnapshotRef]] = {}
    for r in sorted(rows, key=lambda r: (r["task"], r["algo"], r["train_guidance"], r["seed"])):
        if not (_wanted(r["task"], cfg.tasks) and _wanted(r["algo"], cfg.algos)
                and _wanted(r["train_guidance"], cfg.train_guidance)):
            continue
        files = {int(p.stem.split("_")[1]): p for p in (run_dir / "snapshots" / r["trial_id"]).glob("step_*.pt")}
        if not files:
            continue
        step = max(files) if cfg.step is None else cfg.step
        if step not in files:
            raise ConfigError(f"--step {step}: trial {r['trial_id']} has snapshots at steps {sorted(files)}")
        inference, episodes, max_steps, gseed = _eval_settings(json.loads(r["config_json"]))
        ref = SnapshotRef(str(files[step]), r["sweep"], r["trial_id"], r["task"], r["algo"], r["train_guidance"],
                          int(r["seed"]), int(gseed), step, inference, int(cfg.episodes or episodes),
                          int(cfg.max_steps or max_steps))
        groups.setdefault(ref.group, []).append(ref)
    for group, refs in groups.items():
        seeds = [s.seed for s in refs]
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"{'/'.join(group)}: several finished trials share a seed ({sorted(seeds)}); "
                              "select the snapshots with --task / --algo / --train-guidance")
    if not groups:
        raise ConfigError(f"{run_dir}: no snapshot matches tasks={list(cfg.tasks) or 'all'}, algos="
                          f"{list(cfg.algos) or 'all'}, train_guidance={list(cfg.train_guidance) or 'all'}")
    return groups


def method_for(cfg: SearchConfig, algo: str, train_guidance: str) -> str | None:
    """The group's method, or None when the group cannot be searched with it (printed as skipped)."""
    method = cfg.method or ("swg" if algo == "swg" else "gradient")
    if method == "swg" and algo != "swg":
        return None
    if method != "swg" and not get_mode(train_guidance).has_critic:  # gradient / softmax need the snapshot's critic
        return None
    return method


def study_name(cfg: SearchConfig, method: str, group: tuple[str, str, str]) -> str:
    if cfg.study:
        return cfg.study
    task = Path(group[0]).name  # `mdpt train --task PATH` records a path
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{method}-{task}-{group[1]}-{group[2]}")


# ----- the study -------------------------------------------------------------------------------
def make_storage(run_dir: Path, study: str, url: str | None) -> tuple[Any, str]:
    """(Optuna storage, a label for best.json without credentials)."""
    if url:
        from sqlalchemy.engine import make_url

        return optuna.storages.RDBStorage(url), make_url(url).render_as_string(hide_password=True)
    path = run_dir / "guidance_search" / f"{study}.journal"
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path))), str(path)


def finished_trials(study: Any) -> list[Any]:
    """Trials that count toward ``SearchConfig.trials``: COMPLETE, or FAIL other than interrupted."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"))]


def recover_interrupted(study: Any, storage: Any, record: dict, printer: Printer) -> int:
    """Trials a dead driver left RUNNING -> FAIL (``interrupted``), their parameters enqueued again."""
    study_id = storage.get_study_id_from_name(study.study_name)
    zombies = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in zombies:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_user_attr(trial_id, "interrupted", True)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        write_search_row(record["run_dir"], search_row(
            record, t.number, t.params, "FAIL", math.nan, {}, "interrupted: the driver stopped before the trial "
            "finished; its parameters are evaluated again", ""))
        if t.params:
            study.enqueue_trial(t.params)
        printer(f"[{study.study_name}] trial {t.number} {t.params} was interrupted: marked FAIL, enqueued again")
    return len(zombies)


def reconcile_study(study: Any, record: dict, printer: Printer) -> int:
    """Write the ``guidance_search`` row of every finished trial that lacks one (the driver died between
    Optuna's ``tell`` and the row); rows are one file per trial number, so this never duplicates one."""
    done = {r["trial"] for r in read_table(record["run_dir"], "guidance_search").to_pylist()
            if r["study"] == study.study_name}
    todo = [t for t in finished_trials(study) if t.number not in done]
    for t in todo:
        ok = t.state == TrialState.COMPLETE
        write_search_row(record["run_dir"], search_row(
            record, t.number, t.params, "COMPLETE" if ok else "FAIL", t.value if ok else math.nan,
            t.user_attrs.get("per_seed", {}) if ok else {},
            "" if ok else "failed; the reason was not recorded (the driver stopped first)", ""))
    if todo:
        printer(f"[{study.study_name}] wrote the missing guidance_search rows of trial(s) {[t.number for t in todo]}")
    return len(todo)


class SearchProgress(tune.Callback):
    """Prints each trial's parameters, objective and per-seed scores (or its failure)."""

    def __init__(self, study: str, printer: Printer) -> None:
        self.study, self.printer = study, printer

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        params = suggested_params(trial.config)
        seeds = ", ".join(f"{k[5:]}: {v:.1f}" for k, v in sorted(result.items()) if k.startswith("seed_"))
        self.printer(f"[{self.study}] {_fmt(params)} -> mean {result[METRIC]:.1f} (per seed {seeds})")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        path = Path(trial.error_file) if trial.error_file else None  # local copy: storage may not be synced yet
        text = path.read_text() if path and path.exists() else str(trial.get_error() or "")
        err = [ln for ln in text.splitlines() if ln.strip()]
        params = suggested_params(trial.config)
        self.printer(f"[{self.study}] {_fmt(params)} FAILED: {err[-1] if err else 'no error trace'}")


def _fmt(params: dict) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in sorted(params.items()))


def run_study(run_dir: Path, group: tuple[str, str, str], refs: list[SnapshotRef], method: str, cfg: SearchConfig,
              printer: Printer) -> dict[str, Any] | None:
    """Run (or continue) the study of one snapshot group; returns its best.json record (None: nothing completed)."""
    from rl_core.inference import InferenceConfig

    name, space = study_name(cfg, method, group), cfg.space_for(method)
    fixed = InferenceConfig.from_dict({**refs[0].inference, "method": method}).to_dict()
    storage, storage_label = make_storage(run_dir, name, cfg.storage)
    record = {"run_dir": str(run_dir), "study": name, "task": group[0], "algo": group[1], "train_guidance": group[2],
              "method": method, "inference": fixed, "infer_source": f"search:{name}", "episodes": refs[0].episodes}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
    recover_interrupted(study, storage, record, printer)
    reconcile_study(study, record, printer)
    for scale in space.points:
        study.enqueue_trial({"scale": scale}, skip_if_exists=True)
    done = len(finished_trials(study))
    remaining = cfg.trials - done
    printer(f"[{name}] {len(refs)} snapshot(s) (seeds {[r.seed for r in refs]}, steps {sorted({r.step for r in refs})}), "
            f"method {method}, {done} trial(s) already finished, running {max(remaining, 0)}; study {storage_label}")
    if remaining > 0:
        param_space = trial_param_space(
            run_dir=str(run_dir), coordinator=coordinator_name(run_dir), params=sorted(space.distributions()),
            inference=fixed, infer_source=record["infer_source"], episodes=refs[0].episodes,
            max_steps=refs[0].max_steps, snapshots=[r.trial_entry() for r in refs])
        sampler = optuna.samplers.TPESampler(seed=cfg.seed + len(study.trials), n_startup_trials=cfg.startup_trials)
        searcher = TrackedOptunaSearch(record=record, space=space.distributions(), metric=METRIC, mode=MODE,
                                       sampler=sampler, study_name=name, storage=storage)
        tune.Tuner(
            tune.with_resources(guidance_trial, TRIAL_RESOURCES), param_space=param_space,
            tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, search_alg=searcher, scheduler=FIFOScheduler(),
                                        num_samples=remaining, max_concurrent_trials=cfg.max_concurrent, reuse_actors=True),
            run_config=tune.RunConfig(name=f"{name}-{done:05d}", verbose=0,
                                      storage_path=str(run_dir / "guidance_search" / "tune"),
                                      failure_config=tune.FailureConfig(max_failures=0),
                                      callbacks=[SearchProgress(name, printer)])).fit()
    return best_record(optuna.load_study(study_name=name, storage=storage), record, refs, storage_label, printer)


def best_record(study: Any, record: dict, refs: list[SnapshotRef], storage_label: str,
                printer: Printer) -> dict[str, Any] | None:
    """The study's best trial as a best.json record; prints every completed trial by scale."""
    finished = finished_trials(study)
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    name = study.study_name
    printer(f"[{name}] {len(finished)} finished trial(s): {len(complete)} complete, "
            f"{len(finished) - len(complete)} failed")
    for t in sorted(complete, key=lambda t: (t.params.get("scale", 0.0), t.number)):
        seeds = ", ".join(f"{s}: {v:.1f}" for s, v in sorted(t.user_attrs.get("per_seed", {}).items()))
        printer(f"  trial {t.number:3d}  {_fmt(t.params):40s} mean {t.value:7.2f}  per seed {seeds}")
    if not complete:
        return None
    best = study.best_trial
    return {"study": name, "storage": storage_label, **{k: record[k] for k in ("task", "algo", "train_guidance", "method")},
            "params": best.params, "inference": {**record["inference"], **best.params}, "objective": best.value,
            "per_seed": best.user_attrs.get("per_seed", {}), "trial": best.number, "n_trials": len(finished),
            "n_complete": len(complete), "n_failed": len(finished) - len(complete),
            "snapshots": {str(r.seed): r.snapshot for r in refs}, "episodes": refs[0].episodes,
            "max_steps": refs[0].max_steps}


def evaluate_command(best: dict[str, Any]) -> str:
    """The `mdpt evaluate` command line for the best parameters on the first seed's snapshot."""
    inf = best["inference"]
    snapshot = next(iter(best["snapshots"].values()))
    cmd = (f"mdpt evaluate {snapshot} --method {inf['method']} --scale {inf['scale']:.6g} "
           f"--candidates {inf['n_candidates']} --episodes {best['episodes']} --max-steps {best['max_steps']}")
    return cmd if "temperature" not in best["params"] else cmd + "  # start temperature: no flag in `mdpt evaluate`"


def print_results(run_dir: Path, results: list[dict[str, Any]], printer: Printer = print) -> None:
    """The summary of `mdpt tune-guidance`: per study its best parameters and the `mdpt evaluate` command."""
    for best in results:
        seeds = ", ".join(f"seed {s}: {v:.1f}" for s, v in sorted(best["per_seed"].items()))
        params = " ".join(f"{k}={v:.4g}" for k, v in sorted(best["params"].items()))
        printer(f"best {best['method']} for {best['task']} {best['algo']}/{best['train_guidance']}: {params} -> mean "
                f"normalized score {best['objective']:.1f} ({seeds}); trial {best['trial']} of {best['n_trials']}, "
                f"{best['wall_s']:.0f} s")
        printer(f"  evaluate: {evaluate_command(best)}")
    if results:
        printer(f"best parameters: {Path(run_dir) / 'guidance_search' / 'best.json'}")


def write_best(run_dir: Path, best: dict[str, Any]) -> Path:
    """Merge one study's record into RUN_DIR/guidance_search/best.json (atomic)."""
    path = run_dir / "guidance_search" / "best.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[best["study"]] = best
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))


def run_guidance_search(run_dir: Path, cfg: SearchConfig, *, address: str | None = None,
                        printer: Printer = print) -> list[dict[str, Any]]:
    """Search every selected snapshot group of ``run_dir`` (one study each); returns the best records."""
    run_dir = Path(run_dir).resolve()
    groups = select_snapshots(run_dir, cfg)
    todo = []
    for group, refs in groups.items():
        method = method_for(cfg, group[1], group[2])
        if method is None:
            printer(f"skipping {'/'.join(group)}: method {cfg.method or 'swg'} does not apply "
                    "(swg needs SWG snapshots; gradient / softmax need a critic)")
        else:
            todo.append((group, refs, method))
    if not todo:
        raise ConfigError(f"{run_dir}: no snapshot group can be searched with method {cfg.method}; "
                          f"groups: {['/'.join(g) for g in groups]}")
    if len(todo) > 1 and cfg.study:
        raise ConfigError(f"--study names one study but {len(todo)} groups are selected; narrow them with "
                          "--task / --algo / --train-guidance")
    init_ray(address)
    try:
        ray.get_actor(coordinator_name(run_dir))
        own_pool = False  # a sweep on this run directory holds a pool: share it, leave it running
    except ValueError:
        own_pool = True
    coord = start_pool(run_dir, cfg.evaluators, cfg.evaluator_cpu, cfg.evaluator_gpu)
    results = []
    try:
        for group, refs, method in todo:
            t0 = time.perf_counter()
            best = run_study(run_dir, group, refs, method, cfg, printer)
            if best is None:
                printer(f"[{'/'.join(group)}] no trial completed; nothing written to best.json")
                continue
            best["wall_s"] = time.perf_counter() - t0
            write_best(run_dir, best)
            results.append(best)
    finally:
        if own_pool:
            ray.kill(coord)
    return results
