"""The search trainable's pieces without a cluster: the Optuna searcher ends every trial COMPLETE or FAIL
(never RUNNING), the OptunaSearch private attributes it relies on, the guidance_search rows, and the eval
jobs / infer_source of a parameter set."""

import json
import math

import optuna
import pyarrow.parquet as pq
import ray
from optuna.distributions import FloatDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from trainables.results import GUIDANCE_SEARCH_SCHEMA, read_table, search_infer_source
from trainables.search import (METRIC, MODE, FailingOptunaSearch, TrackedOptunaSearch, search_eval_job,
                               suggested_params)

SPACE = {"scale": FloatDistribution(0.0, 30.0)}
RECORD = {"study": "s", "task": "hopper-medium", "algo": "swg", "train_guidance": "joint", "method": "swg",
          "inference": {"method": "swg", "scale": 1.0, "n_candidates": 1, "temperature": 0.0}, "infer_source": "search:s",
          "episodes": 3}


def _storage(tmp_path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(tmp_path / "s.journal")))


def _states(tmp_path) -> list[TrialState]:
    """Trial states as Optuna's own API reads them back from the journal (a fresh storage object)."""
    return [t.state for t in optuna.load_study(study_name="s", storage=_storage(tmp_path)).trials]


def test_nan_missing_and_errored_trials_end_fail_finite_ones_complete(tmp_path):
    searcher = TrackedOptunaSearch(record={**RECORD, "run_dir": str(tmp_path)}, space=SPACE, metric=METRIC, mode=MODE,
                                   sampler=optuna.samplers.TPESampler(seed=0), study_name="s", storage=_storage(tmp_path))
    for tid in "abcd":
        assert 0.0 <= searcher.suggest(tid)["scale"] <= 30.0
    searcher.on_trial_complete("a", {METRIC: math.nan, "seed_0": math.nan})
    searcher.on_trial_complete("b", error=True)
    searcher.on_trial_complete("c", {"seed_0": 3.0})
    searcher.on_trial_complete("d", {METRIC: 12.5, "seed_0": 10.0, "seed_1": 15.0})
    assert _states(tmp_path) == [TrialState.FAIL, TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    best = optuna.load_study(study_name="s", storage=_storage(tmp_path)).best_trial
    assert best.value == 12.5 and best.user_attrs["per_seed"] == {"0": 10.0, "1": 15.0}

    rows = sorted(read_table(tmp_path, "guidance_search").to_pylist(), key=lambda r: r["trial"])
    assert pq.read_schema(tmp_path / "results" / "guidance_search" / "s" / "trial_00000.parquet") == GUIDANCE_SEARCH_SCHEMA
    assert [(r["trial"], r["state"]) for r in rows] == [(0, "FAIL"), (1, "FAIL"), (2, "FAIL"), (3, "COMPLETE")]
    assert all(math.isnan(r["objective"]) and r["reason"] and r["per_seed_json"] == "{}" for r in rows[:3])
    done = rows[3]
    assert done["objective"] == 12.5 and json.loads(done["per_seed_json"]) == {"0": 10.0, "1": 15.0}
    assert done["tune_trial_id"] == "d" and done["scale"] == json.loads(done["params_json"])["scale"]
    assert json.loads(done["inference_json"])["scale"] == done["scale"] and done["infer_source"] == "search:s"


def test_ray_optuna_search_alone_leaves_a_nan_trial_running(tmp_path):
    """The pitfall TrackedOptunaSearch exists for (ray_tune.md §4.1); if Ray fixes it, this test says so."""
    searcher = OptunaSearch(space=SPACE, metric=METRIC, mode=MODE, sampler=optuna.samplers.TPESampler(seed=0),
                            study_name="s", storage=_storage(tmp_path))
    searcher.suggest("a")
    searcher.on_trial_complete("a", {METRIC: math.nan})
    assert _states(tmp_path) == [TrialState.RUNNING]


def test_the_optuna_search_private_attributes_failing_optuna_search_relies_on_exist(tmp_path):
    """FailingOptunaSearch reads/writes these private attributes of Ray's OptunaSearch; a Ray upgrade that renames
    or drops one fails here, naming it, instead of silently leaving zombie RUNNING trials."""
    by_space = OptunaSearch(space=SPACE, metric=METRIC, mode=MODE, sampler=optuna.samplers.TPESampler(seed=0),
                            study_name="s", storage=_storage(tmp_path))
    by_properties = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=0))  # as Tune sets it up from param_space
    assert by_properties.set_search_properties(METRIC, MODE, {"scale": tune.uniform(0.0, 30.0)})
    for setup, searcher in (("OptunaSearch(space=...)", by_space), ("set_search_properties", by_properties)):
        searcher.suggest("t0")
        where = f"ray {ray.__version__}: OptunaSearch after {setup}, then suggest('t0')"
        for attr in FailingOptunaSearch.PRIVATE_ATTRS:
            assert hasattr(searcher, attr), (f"{where} has no private attribute `{attr}`, which FailingOptunaSearch "
                                             "(trainables/search.py) relies on: adapt it to this Ray version")
        assert isinstance(searcher._ot_study, optuna.Study), (
            f"{where}: `_ot_study` is {searcher._ot_study!r}, not an optuna.Study")
        assert isinstance(searcher._ot_trials, dict) and isinstance(searcher._ot_trials.get("t0"), optuna.Trial), (
            f"{where}: `_ot_trials` is {searcher._ot_trials!r}, not a dict Tune trial id -> optuna.Trial")
        assert isinstance(searcher._completed_trials, set) and not searcher._completed_trials, (
            f"{where}: `_completed_trials` is {searcher._completed_trials!r}, not an empty set")


def test_a_searcher_set_up_by_tune_from_param_space_also_tells_fail(tmp_path):
    """The set_search_properties path (no space at construction) ends a NaN trial FAIL too."""
    searcher = FailingOptunaSearch(sampler=optuna.samplers.TPESampler(seed=0), study_name="s",
                                   storage=_storage(tmp_path))
    assert searcher.set_search_properties(METRIC, MODE, {"scale": tune.uniform(0.0, 30.0)})
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_complete("a", {METRIC: math.nan})
    searcher.on_trial_complete("b", {METRIC: 4.0})
    searcher.on_trial_complete("b", {METRIC: 9.0})  # a repeated completion is ignored
    assert _states(tmp_path) == [TrialState.FAIL, TrialState.COMPLETE]
    assert optuna.load_study(study_name="s", storage=_storage(tmp_path)).best_value == 4.0


def test_eval_jobs_carry_the_suggested_values_and_a_distinct_infer_source():
    snap = {"snapshot": "RUN/snapshots/t0/step_00000400.pt", "sweep": "q", "trial_id": "t0", "task": "hopper-medium",
            "algo": "dql", "train_guidance": "joint", "seed": 3, "guidance_seed": 3, "step": 400, "eval_seed": 123}
    search = {"run_dir": "RUN", "params": ["n_candidates", "scale"], "snapshots": [snap], "episodes": 2, "max_steps": 30,
              "inference": {"method": "softmax", "scale": 100.0, "n_candidates": 50, "temperature": 0.5},
              "infer_source": "search:st"}
    config = {"search": search, "scale": 7.5, "n_candidates": 10}
    assert suggested_params(config) == {"scale": 7.5, "n_candidates": 10}
    job = search_eval_job(search, snap, suggested_params(config))
    assert set(job) == {"run_dir", "snapshot", "guidance", "inference", "episodes", "eval_seed", "max_steps", "sweep",
                        "trial_id", "task", "algo", "train_guidance", "infer_source", "diffusion_seed",
                        "guidance_seed", "step"}  # the evaluator's job fields (trainables/evaluator.py)
    assert (job["run_dir"], job["snapshot"], job["guidance"], job["max_steps"]) == ("RUN", snap["snapshot"], None, 30)
    assert job["inference"] == {"method": "softmax", "scale": 7.5, "n_candidates": 10, "temperature": 0.5}
    assert (job["trial_id"], job["step"], job["eval_seed"], job["diffusion_seed"], job["episodes"]) == ("t0", 400, 123, 3, 2)
    # the eval key (trial_id, step, infer_source, infer_method, infer_scale) must differ between parameter sets
    # that share a scale, or the second set would silently reuse the first one's rows
    assert job["infer_source"] == "search:st:n_candidates=10"
    assert search_infer_source("search:st", {"scale": 7.5, "n_candidates": 50}) != job["infer_source"]
    assert search_infer_source("search:st", {"scale": 7.5}) == "search:st"

