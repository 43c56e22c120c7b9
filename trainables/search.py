"""Guidance-parameter search on Ray Tune: the function trainable, its Optuna searcher, the result table.

One Tune trial evaluates one set of inference parameters (the SWG / gradient-guidance / softmax
``scale``, and optionally the start ``temperature`` or ``n_candidates``) on fixed snapshots, one
per seed, through the run's evaluator pool: one eval job per snapshot, whose rows land in the
``evals`` table (idempotent, so a resumed search reuses them). It reports
``{"objective": mean over seeds of the per-seed mean normalized score, "seed_<s>": per-seed score}``
once. A failed evaluation or a non-finite objective raises instead, so the trial errors.

``TrackedOptunaSearch`` is Ray's ``OptunaSearch`` with one change (ray_tune.md §4.1): Ray tells
Optuna the last metric and only logs a failing ``tell`` (a NaN), leaving a RUNNING zombie trial.
Here an errored trial, or a missing / non-finite objective, is told ``FAIL``; a finite one
``COMPLETE`` with the per-seed scores as the user attribute ``per_seed``. Every finished trial
is written to the ``guidance_search`` table.

Trial config (built by ``sweeps/guidance_search.py``)::

    search: {run_dir, coordinator, params (names of the searched fields), inference (the fixed
             InferenceConfig dict), infer_source, episodes, max_steps,
             snapshots: [{snapshot, sweep, trial_id, task, algo, train_guidance, seed, guidance_seed, step,
                         eval_seed}]}
    scale / temperature / n_candidates: the values Optuna suggested (top-level keys)

Table ``guidance_search``: ``RUN_DIR/results/guidance_search/<study>/trial_<number>.parquet``, one
row per finished Optuna trial (``GUIDANCE_SEARCH_SCHEMA``)::

    study           Optuna study name
    trial           Optuna trial number (continues across resumed sessions)
    tune_trial_id   Tune trial id ("" for a trial interrupted with its driver)
    task, algo, train_guidance   the snapshot group searched (one group per study)
    method          inference method: swg | gradient | softmax
    scale           the trial's scale (NaN when unknown)
    params_json     the searched parameters, JSON object
    inference_json  the complete InferenceConfig evaluated, JSON object
    objective       mean normalized score (x100) over seeds; NaN unless state is COMPLETE
    per_seed_json   {"<diffusion seed>": mean normalized score of that seed's snapshot}; {} when failed
    state           COMPLETE | FAIL (Optuna trial state)
    reason          why a trial failed ("" when COMPLETE)
    infer_source    the evals rows of this trial have this infer_source ("search:<study>...")
    episodes        episodes per snapshot
    updated_at      unix time
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
from ray import tune
from ray.exceptions import RayActorError
from ray.tune.search.optuna import OptunaSearch

from rl_core.errors import MdptError
from trainables.evaluator import get_coordinator
from trainables.results import _atomic_write

METRIC, MODE = "objective", "max"
MAX_ATTEMPTS = 3  # coordinator restarts survived by one trial's evaluations

GUIDANCE_SEARCH_SCHEMA = pa.schema([
    ("study", pa.string()), ("trial", pa.int64()), ("tune_trial_id", pa.string()), ("task", pa.string()),
    ("algo", pa.string()), ("train_guidance", pa.string()), ("method", pa.string()), ("scale", pa.float64()),
    ("params_json", pa.string()), ("inference_json", pa.string()), ("objective", pa.float64()),
    ("per_seed_json", pa.string()), ("state", pa.string()), ("reason", pa.string()), ("infer_source", pa.string()),
    ("episodes", pa.int64()), ("updated_at", pa.float64()),
])


class ObjectiveError(MdptError):
    """A search trial's evaluation gave a non-finite objective (the Optuna trial is marked FAIL)."""


def search_row_path(run_dir: str | Path, study: str, trial: int) -> Path:
    return Path(run_dir) / "results" / "guidance_search" / study / f"trial_{trial:05d}.parquet"


def write_search_row(run_dir: str | Path, row: dict[str, Any]) -> Path:
    """Write (or replace) the row of one Optuna trial, atomically."""
    path = search_row_path(run_dir, row["study"], row["trial"])
    _atomic_write(pa.Table.from_pylist([{f.name: row[f.name] for f in GUIDANCE_SEARCH_SCHEMA}],
                                       schema=GUIDANCE_SEARCH_SCHEMA), path)
    return path


def infer_source(base: str, params: dict) -> str:
    """``infer_source`` of a trial's eval rows: ``base`` (``search:<study>``), plus the searched values
    other than ``scale`` (``search:<study>:n_candidates=10``), so the eval key
    (trial_id, step, infer_source, infer_method, infer_scale) tells apart every parameter set."""
    extra = ",".join(f"{k}={params[k]:.10g}" for k in sorted(params) if k != "scale")
    return f"{base}:{extra}" if extra else base


def eval_jobs(search: dict, config: dict) -> list[dict]:
    """One evaluator-pool job per snapshot (``eval_seed`` chosen by the driver, as in training)."""
    params = {k: config[k] for k in search["params"]}
    source = infer_source(search["infer_source"], params)
    return [{"run_dir": search["run_dir"], "snapshot": s["snapshot"], "guidance": None,
             "inference": {**search["inference"], **params}, "episodes": search["episodes"],
             "max_steps": search["max_steps"], "infer_source": source, "diffusion_seed": s["seed"],
             **{k: s[k] for k in ("eval_seed", "sweep", "trial_id", "task", "algo", "train_guidance", "guidance_seed",
                                  "step")}}
            for s in search["snapshots"]]


def _evaluate(coordinator: str, jobs: list[dict]) -> list[dict]:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return ray.get(get_coordinator(coordinator).evaluate_many.remote(jobs))
        except RayActorError:  # the coordinator restarted: resubmit (jobs are idempotent)
            if attempt == MAX_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def guidance_trial(config: dict) -> None:
    """Tune trainable: evaluate one parameter set on every seed's snapshot; report the objective once."""
    search = config["search"]
    jobs = eval_jobs(search, config)
    outs = _evaluate(search["coordinator"], jobs)
    per_seed = {f"seed_{s['seed']}": float(o["score_mean"]) for s, o in zip(search["snapshots"], outs)}
    objective = sum(per_seed.values()) / len(per_seed)
    if not math.isfinite(objective):
        raise ObjectiveError(f"objective {objective} is not finite for {jobs[0]['inference']}; per-seed scores {per_seed}")
    tune.report({METRIC: objective, **per_seed})


class TrackedOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that never leaves a RUNNING trial and records each finished one (module docstring).

    ``record``: the constant columns of this study's ``guidance_search`` rows (run_dir, study, task,
    algo, train_guidance, method, inference, infer_source, episodes). Plain data, so Tune can pickle
    the searcher with its experiment state.
    """

    def __init__(self, *, record: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record = record

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        import optuna

        if trial_id in self._completed_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        result = result or {}
        value = result.get(self.metric)
        per_seed = {k[len("seed_"):]: float(v) for k, v in result.items() if k.startswith("seed_")}
        ok = not error and isinstance(value, (int, float)) and math.isfinite(value)
        if ok:
            ot_trial.set_user_attr("per_seed", per_seed)
            self._ot_study.tell(ot_trial, float(value))
        else:
            self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
        self._completed_trials.add(trial_id)
        reason = "" if ok else (f"the Tune trial errored (evaluation failed or non-finite objective); see error.txt "
                                f"of trial {trial_id} under RUN_DIR/guidance_search/tune" if error
                                else f"objective {value!r} is missing or not finite")
        write_search_row(self.record["run_dir"], search_row(
            self.record, ot_trial.number, ot_trial.params, "COMPLETE" if ok else "FAIL",
            float(value) if ok else math.nan, per_seed if ok else {}, reason, trial_id))


def search_row(record: dict[str, Any], number: int, params: dict, state: str, objective: float,
               per_seed: dict[str, float], reason: str, tune_trial_id: str) -> dict[str, Any]:
    """A ``guidance_search`` row from a study's constant columns and one trial's outcome."""
    inference = {**record["inference"], **params}
    return {"study": record["study"], "trial": int(number), "tune_trial_id": tune_trial_id,
            **{k: record[k] for k in ("task", "algo", "train_guidance", "method", "episodes")},
            "infer_source": infer_source(record["infer_source"], params),
            "scale": float(params.get("scale", inference.get("scale", math.nan))),
            "params_json": json.dumps(params, sort_keys=True), "inference_json": json.dumps(inference, sort_keys=True),
            "objective": objective, "per_seed_json": json.dumps(per_seed, sort_keys=True), "state": state,
            "reason": reason, "updated_at": time.time()}
