"""Guidance-parameter search on Ray Tune: the function trainable, its eval jobs, and its Optuna searcher.

One Tune trial evaluates one set of inference parameters (the SWG / gradient-guidance / softmax
``scale``, and optionally the start ``temperature`` or ``n_candidates``) on fixed snapshots, one
per seed, through the run's evaluator pool: one eval job per snapshot (``search_eval_job``), whose
rows land in the ``evals`` table (idempotent, so a resumed search reuses them). It reports
``{"objective": mean over seeds of the per-seed mean normalized score, "seed_<s>": per-seed score}``
once. A failed evaluation or a non-finite objective raises instead, so the trial errors.

Searcher: ``TrackedOptunaSearch`` ends every trial COMPLETE or FAIL and writes each finished trial's
row to the ``guidance_search`` table (schema and row builder: ``trainables/results.py``). It builds
on ``FailingOptunaSearch``, the one class here that touches ``OptunaSearch``'s private attributes.

Trial config (``trial_param_space``, called by the driver ``sweeps/guidance_search.py``)::

    search: {run_dir, coordinator, params (names of the searched fields), inference (the fixed
             InferenceConfig dict), infer_source (the study's base, search:<study>), episodes, max_steps,
             snapshots: [{snapshot, sweep, trial_id, task, algo, train_guidance, seed, guidance_seed, step,
                         eval_seed}]}
    scale / temperature / n_candidates: the values Optuna suggested (top-level keys)
"""

from __future__ import annotations

import math
from typing import Any

import optuna
import ray
from ray import tune
from ray.exceptions import RayActorError
from ray.tune.search.optuna import OptunaSearch

from rl_core.errors import ObjectiveError
from rl_core.evaluation import EvalJob
from trainables.evaluator import eval_request, get_coordinator
from trainables.results import EvalLabels, search_infer_source, search_row, write_search_row

METRIC, MODE = "objective", "max"
MAX_ATTEMPTS = 3  # coordinator restarts survived by one trial's evaluations


# ----- the trial config and its eval jobs -------------------------------------------------------
def trial_param_space(*, run_dir: str, coordinator: str, params: list[str], inference: dict[str, Any],
                      infer_source: str, episodes: int, max_steps: int,
                      snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Tune ``param_space`` of a study's trials (module docstring); ``params`` are the searched names."""
    return {"search": {"run_dir": run_dir, "coordinator": coordinator, "params": params, "inference": inference,
                       "infer_source": infer_source, "episodes": episodes, "max_steps": max_steps,
                       "snapshots": snapshots}}


def suggested_params(config: dict[str, Any]) -> dict[str, Any]:
    """The parameter values Optuna suggested for a trial, from its config."""
    return {k: config[k] for k in config["search"]["params"]}


def search_eval_job(search: dict[str, Any], snapshot: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The evaluator-pool job (trainables/evaluator.py) of one seed's snapshot under one parameter set.

    The only place a search eval job is built. ``search``: the trial config's ``search`` entry;
    ``snapshot``: one of its ``snapshots`` (``eval_seed`` chosen by the driver, as in training)."""
    job = EvalJob(snapshot=snapshot["snapshot"], inference={**search["inference"], **params},
                  episodes=search["episodes"], eval_seed=snapshot["eval_seed"], max_steps=search["max_steps"])
    labels = EvalLabels(sweep=snapshot["sweep"], trial_id=snapshot["trial_id"], task=snapshot["task"],
                        algo=snapshot["algo"], train_guidance=snapshot["train_guidance"],
                        infer_source=search_infer_source(search["infer_source"], params),
                        diffusion_seed=snapshot["seed"], guidance_seed=snapshot["guidance_seed"], step=snapshot["step"])
    return eval_request(search["run_dir"], job, labels)


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
    search, params = config["search"], suggested_params(config)
    jobs = [search_eval_job(search, s, params) for s in search["snapshots"]]
    outs = _evaluate(search["coordinator"], jobs)
    per_seed = {f"seed_{s['seed']}": float(o["score_mean"]) for s, o in zip(search["snapshots"], outs)}
    objective = sum(per_seed.values()) / len(per_seed)
    if not math.isfinite(objective):
        raise ObjectiveError(f"objective {objective} is not finite for {jobs[0]['inference']}; per-seed scores {per_seed}")
    tune.report({METRIC: objective, **per_seed})


# ----- the searcher -----------------------------------------------------------------------------
class FailingOptunaSearch(OptunaSearch):
    """Ray's ``OptunaSearch`` whose finished trials end COMPLETE (finite metric) or FAIL, never RUNNING.

    Ray's ``on_trial_complete`` tells Optuna the last metric and only logs a failing ``tell`` (a NaN),
    leaving a RUNNING zombie trial (ray_tune.md §4.1). This override tells ``FAIL`` for an errored
    trial or a missing / non-finite metric, and ``COMPLETE`` with the value otherwise.

    It is the only code relying on private attributes of ``ray.tune.search.optuna.OptunaSearch``
    (Ray 2.60; ``PRIVATE_ATTRS``, checked by tests/trainables/test_search.py on a real instance):

    - ``_ot_trials``: dict, Tune trial id -> the ``optuna.Trial`` asked for it by ``suggest``;
    - ``_ot_study``: the ``optuna.Study`` (created in ``__init__`` when a space is given, else in
      ``set_search_properties``), whose ``tell`` ends a trial;
    - ``_completed_trials``: set of Tune trial ids already told (a repeated completion is ignored).

    Subclasses hook in without touching them: ``user_attrs(result)`` are set on the Optuna trial
    before it is told; ``on_told(...)`` runs after.
    """

    PRIVATE_ATTRS = ("_ot_trials", "_ot_study", "_completed_trials")

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        result = result or {}
        value = result.get(self.metric)
        ok = not error and isinstance(value, (int, float)) and math.isfinite(value)
        if ok:
            for key, attr in self.user_attrs(result).items():
                ot_trial.set_user_attr(key, attr)
            self._ot_study.tell(ot_trial, float(value))
        else:
            self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
        self._completed_trials.add(trial_id)
        self.on_told(trial_id, ot_trial.number, ot_trial.params, float(value) if ok else None, result, error)

    def user_attrs(self, result: dict) -> dict[str, Any]:
        """User attributes of a trial about to be told COMPLETE (none here)."""
        return {}

    def on_told(self, trial_id: str, number: int, params: dict, value: float | None, result: dict,
                error: bool) -> None:
        """Called once per trial after it was told; ``value`` is None when it was told FAIL."""


class TrackedOptunaSearch(FailingOptunaSearch):
    """``FailingOptunaSearch`` that keeps per-seed scores and records each finished trial.

    A COMPLETE trial gets the per-seed scores (the ``seed_<s>`` results) as user attribute
    ``per_seed``; every finished trial is written to the ``guidance_search`` table.
    ``record``: the constant columns of this study's rows (run_dir, study, task, algo, train_guidance,
    method, inference, infer_source, episodes; ``trainables.results.search_row``). Plain data, so
    Tune can pickle the searcher with its experiment state.
    """

    def __init__(self, *, record: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record = record

    def user_attrs(self, result: dict) -> dict[str, Any]:
        return {"per_seed": _per_seed(result)}

    def on_told(self, trial_id: str, number: int, params: dict, value: float | None, result: dict,
                error: bool) -> None:
        ok = value is not None
        reason = "" if ok else (f"the Tune trial errored (evaluation failed or non-finite objective); see error.txt "
                                f"of trial {trial_id} under RUN_DIR/guidance_search/tune" if error
                                else f"objective {result.get(self.metric)!r} is missing or not finite")
        write_search_row(self.record["run_dir"], search_row(
            self.record, number, params, "COMPLETE" if ok else "FAIL", value if ok else math.nan,
            _per_seed(result) if ok else {}, reason, trial_id))


def _per_seed(result: dict) -> dict[str, float]:
    return {k[len("seed_"):]: float(v) for k, v in result.items() if k.startswith("seed_")}
