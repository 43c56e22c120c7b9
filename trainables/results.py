"""The result tables: the contract between trainables (writers) and analysis (readers).

Layout under a run directory (one sweep per run directory)::

    RUN_DIR/results/evals/<trial_id>/<job_key>.parquet   one file per evaluation job
    RUN_DIR/results/train/<trial_id>/<from>-<to>.parquet  logged training metrics (long format)
    RUN_DIR/results/trials/<trial_id>.parquet             one row per trial (latest state wins)
    RUN_DIR/results/references/<task>.parquet             the task's reference lines (``reference_rows``)

Idempotency: an evaluation job is identified by (trial_id, step, infer_source, infer_method,
infer_scale, inference_precision) (``EVAL_KEY``); its episodes are written together into one file whose
name is a hash of that key, atomically (temporary file + rename). An fp32 key hashes exactly as before the
precision joined the key, so run directories written earlier keep their file names (a resumed sweep finds
its evaluations) and evaluating a snapshot in bf16 writes a second file beside the fp32 one. A retried
evaluation or a restored trial rewrites the same file, so rows are neither duplicated nor lost.
Training-metric files are named by their step range and de-duplicated on read (last write wins per
(trial_id, step, metric)).

Rows are built only by the row builders below (``eval_rows``, ``train_rows``, ``trial_row``), used by
the sweep's trials and evaluators, by recombination, by the guidance search and by `mdpt train`, so
every command writes identical rows (and the same evaluation gets the same key). This module imports
only pyarrow/numpy and rl_core's torch-free modules (no torch, no Ray); `analysis` reads these files
with pyarrow alone. Columns added later (``normalized_score_d4rl``, ``guidance_file``) read as null from
older files, ``inference_precision`` as ``"fp32"`` (``LEGACY_INFERENCE_PRECISION``: every evaluation was fp32
before the column existed).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from rl_core.config import D4RL_BULLET_REF_SCORES, infer_scale
from rl_core.data.dataset import normalized_score
from rl_core.fsutil import atomic_write

EVALS_SCHEMA = pa.schema(
    [
        ("sweep", pa.string()),
        ("trial_id", pa.string()),
        ("task", pa.string()),
        ("algo", pa.string()),
        ("train_guidance", pa.string()),  # a training-guidance mode (rl_core/modes.py) | pretrain:<name>
        ("infer_source", pa.string()),  # self | seed:+<shift> | algo:<a> (+ -final) | search:<study>
        ("infer_method", pa.string()),  # none | softmax | argmax | gradient | swg
        ("infer_scale", pa.float64()),  # temperature / lambda / SWG scale (NaN when unused)
        ("inference_precision", pa.string()),  # InferenceConfig.precision (rl_core.config.PRECISIONS): fp32 | bf16
        ("diffusion_seed", pa.int64()),
        ("guidance_seed", pa.int64()),  # -1 when there is no guidance
        ("step", pa.int64()),
        ("episode", pa.int64()),
        ("eval_seed", pa.int64()),
        ("return", pa.float64()),
        ("normalized_score", pa.float64()),  # 100 * (R - ref_min) / (ref_max - ref_min), the dataset's references
        ("normalized_score_d4rl", pa.float64()),  # the same on D4RL's bullet references; NaN for other envs
        ("length", pa.int64()),
        ("wall_s", pa.float64()),  # wall time of the whole evaluation job, seconds
        ("guidance_file", pa.string()),  # the critic acted with: "" = the snapshot's own, else the plugged-in
        # artifact / snapshot file (``guidance_file``: relative to the run directory when inside it)
    ]
)
EVAL_KEY = ("trial_id", "step", "infer_source", "infer_method", "infer_scale", "inference_precision")
# The inference precision of evals rows written before the column existed, and of an inference dict without
# ``precision`` (recorded before InferenceConfig had the field): every evaluation ran in fp32 then.
LEGACY_INFERENCE_PRECISION = "fp32"
COLUMN_FILLS = {"inference_precision": LEGACY_INFERENCE_PRECISION}  # value of a column absent from older files

TRAIN_SCHEMA = pa.schema(
    [
        ("sweep", pa.string()),
        ("trial_id", pa.string()),
        ("task", pa.string()),
        ("algo", pa.string()),
        ("train_guidance", pa.string()),
        ("seed", pa.int64()),
        ("step", pa.int64()),
        ("metric", pa.string()),  # e.g. loss/bc, loss/critic, q/mean, grad_norm/actor, time/steps_per_s, mem/peak_mb
        ("value", pa.float64()),
    ]
)

TRIALS_SCHEMA = pa.schema(
    [
        ("sweep", pa.string()),
        ("trial_id", pa.string()),
        ("stage", pa.string()),  # pretrain | train | recombine | search
        ("task", pa.string()),
        ("algo", pa.string()),
        ("train_guidance", pa.string()),
        ("seed", pa.int64()),
        ("config_json", pa.string()),  # the full resolved config
        ("status", pa.string()),  # PENDING | RUNNING | TERMINATED | ERROR
        ("failure_reason", pa.string()),
        ("restored_from", pa.int64()),  # step of the checkpoint the last attempt resumed from, -1 if none
        ("num_failures", pa.int64()),
        ("updated_at", pa.float64()),  # unix time
    ]
)

TABLES = {"evals": EVALS_SCHEMA, "train": TRAIN_SCHEMA, "trials": TRIALS_SCHEMA}


def _atomic_write(table: pa.Table, path: Path) -> None:
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def eval_job_key(trial_id: str, step: int, infer_source: str, infer_method: str, infer_scale: float,
                 inference_precision: str) -> str:
    """Stable file name for one evaluation job (see module docstring; fp32 hashes as before the precision
    joined the key)."""
    scale = "nan" if infer_scale is None or infer_scale != infer_scale else repr(float(infer_scale))
    key = [trial_id, int(step), infer_source, infer_method, scale]
    raw = json.dumps(key if inference_precision == LEGACY_INFERENCE_PRECISION else [*key, inference_precision])
    return f"step{int(step):08d}-" + hashlib.sha1(raw.encode()).hexdigest()[:16]


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    missing = [f.name for f in schema if any(f.name not in r for r in rows)]
    if missing:
        raise ValueError(f"result rows lack columns {missing}; schema is {schema.names}")
    return pa.Table.from_pylist([{f.name: r[f.name] for f in schema} for r in rows], schema=schema)


# ----- row builders ----------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalLabels:
    """What an evaluation's rows say about where they come from (every evals column but the episode's)."""

    sweep: str
    trial_id: str  # the diffusion trial whose snapshot is evaluated
    task: str
    algo: str
    train_guidance: str
    infer_source: str  # self | seed:+<shift>[-final] | algo:<a>[-final] | search:<study>...
    diffusion_seed: int
    guidance_seed: int  # the critic's seed; -1 without a critic
    step: int

    def to_dict(self) -> dict:
        return asdict(self)


def inference_precision(inference: dict) -> str:
    """The ``inference_precision`` column of evaluating with ``inference`` (an InferenceConfig dict)."""
    return inference.get("precision", LEGACY_INFERENCE_PRECISION)


def eval_key(labels: EvalLabels, inference: dict) -> tuple:
    """(trial_id, step, infer_source, infer_method, infer_scale, inference_precision) = ``EVAL_KEY``: the
    idempotency key of one evaluation."""
    return (labels.trial_id, labels.step, labels.infer_source, inference["method"],
            infer_scale(inference["method"], inference["scale"]), inference_precision(inference))


def guidance_file(run_dir: str | os.PathLike[str], guidance: str | os.PathLike[str] | None) -> str:
    """The ``guidance_file`` column: "" for the snapshot's own critic (``guidance`` None), else the plugged-in
    critic's file, relative to ``run_dir`` when it lies inside it (absolute otherwise)."""
    if guidance is None:
        return ""
    path, root = Path(guidance).resolve(), Path(run_dir).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def eval_rows(labels: EvalLabels, inference: dict, results: Iterable[Any], wall_s: float, *,
              guidance: str | os.PathLike[str] | None, run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The evals rows of one evaluation: ``results`` are rl_core.evaluation.EpisodeResult; ``guidance`` is the
    job's plugged-in critic file (``EvalJob.guidance``, None = the snapshot's own) and ``run_dir`` the run
    directory the rows go to (see ``guidance_file``)."""
    base = dict(labels.to_dict(), infer_method=inference["method"],
                infer_scale=infer_scale(inference["method"], inference["scale"]),
                inference_precision=inference_precision(inference), wall_s=float(wall_s),
                guidance_file=guidance_file(run_dir, guidance))
    return [dict(base, episode=r.episode, eval_seed=r.eval_seed, normalized_score=r.normalized_score,
                 normalized_score_d4rl=r.normalized_score_d4rl, length=r.length, **{"return": r.ret})
            for r in results]


def train_rows(ident: dict[str, Any], metrics: dict[str, float]) -> list[dict[str, Any]]:
    """Long-format train rows of one report: ``ident`` = sweep, trial_id, task, algo, train_guidance, seed."""
    step = int(metrics["step"])
    return [dict(ident, step=step, metric=k, value=float(v)) for k, v in metrics.items() if k != "step"]


def trial_row(ident: dict[str, Any], *, stage: str, config: dict, status: str, failure_reason: str = "",
              restored_from: int = -1, num_failures: int = 0) -> dict[str, Any]:
    """One trials row; ``config`` is the trial's full resolved config (trainables.trial.TrialSpec dict)."""
    return dict(ident, stage=stage, config_json=json.dumps(config, sort_keys=True), status=status,
                failure_reason=failure_reason, restored_from=int(restored_from), num_failures=int(num_failures),
                updated_at=time.time())


class ResultStore:
    """Writes and reads the three result tables of one run directory."""

    def __init__(self, run_dir: str | os.PathLike[str]):
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "results"

    # ----- evals ---------------------------------------------------------------------------
    def eval_path(self, trial_id: str, step: int, infer_source: str, infer_method: str, infer_scale: float,
                  inference_precision: str) -> Path:
        """The file of the evaluation job with this key (``EVAL_KEY`` order)."""
        key = eval_job_key(trial_id, step, infer_source, infer_method, infer_scale, inference_precision)
        return self.root / "evals" / trial_id / (key + ".parquet")

    def has_eval(self, trial_id: str, step: int, infer_source: str, infer_method: str, infer_scale: float,
                 inference_precision: str) -> bool:
        return self.eval_path(trial_id, step, infer_source, infer_method, infer_scale, inference_precision).exists()

    def eval_path_for(self, labels: EvalLabels, inference: dict) -> Path:
        """The file that holds (or will hold) the rows of evaluating ``labels`` with ``inference``."""
        return self.eval_path(*eval_key(labels, inference))

    def write_eval_job(self, rows: list[dict[str, Any]]) -> Path:
        """Write all episode rows of one evaluation job (same key) atomically; replaces a previous write."""
        if not rows:
            raise ValueError("an evaluation job must have at least one episode row")
        keys = {tuple(_norm(r[k]) for k in EVAL_KEY) for r in rows}
        if len(keys) != 1:
            raise ValueError(f"rows of one evaluation job must share the key {EVAL_KEY}; got {sorted(map(str, keys))}")
        episodes = [r["episode"] for r in rows]
        if len(set(episodes)) != len(episodes):
            raise ValueError("duplicate episode numbers in one evaluation job")
        path = self.eval_path(*(rows[0][k] for k in EVAL_KEY))
        _atomic_write(_table(rows, EVALS_SCHEMA), path)
        return path

    # ----- train ---------------------------------------------------------------------------
    def write_train(self, rows: list[dict[str, Any]]) -> Path | None:
        """Append logged training metrics (long format: one row per (step, metric))."""
        if not rows:
            return None
        trial = rows[0]["trial_id"]
        steps = [int(r["step"]) for r in rows]
        path = self.root / "train" / trial / f"{min(steps):08d}-{max(steps):08d}.parquet"
        _atomic_write(_table(rows, TRAIN_SCHEMA), path)
        return path

    # ----- trials --------------------------------------------------------------------------
    def write_trial(self, row: dict[str, Any]) -> Path:
        path = self.root / "trials" / f"{row['trial_id']}.parquet"
        _atomic_write(_table([row], TRIALS_SCHEMA), path)
        return path

    def read_trial(self, trial_id: str) -> dict[str, Any] | None:
        path = self.root / "trials" / f"{trial_id}.parquet"
        return pq.read_table(path).to_pylist()[0] if path.exists() else None

    # ----- reading -------------------------------------------------------------------------
    def read(self, table: str) -> pa.Table:
        """Read one table (all files), de-duplicated as described in the module docstring."""
        return read_table(self.run_dir, table)


def _norm(v: Any) -> Any:
    if isinstance(v, float) and v != v:
        return "nan"
    return v


def _files(directory: Path) -> Iterable[Path]:
    return sorted(p for p in directory.rglob("*.parquet") if not p.name.startswith("."))


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``'s column order; columns it predates are added as ``COLUMN_FILLS`` or nulls."""
    for f in schema:
        if f.name not in table.column_names:
            fill = COLUMN_FILLS.get(f.name)
            table = table.append_column(f, pa.nulls(table.num_rows, f.type) if fill is None else
                                        pa.array([fill] * table.num_rows, f.type))
    return table.select(schema.names).cast(schema)


def read_table(run_dir: str | os.PathLike[str], table: str) -> pa.Table:
    """Read a result table of a run directory; an absent table reads as empty with its schema."""
    schema = TABLES[table]
    directory = Path(run_dir) / "results" / table
    parts = [_conform(pq.read_table(p), schema) for p in _files(directory)] if directory.exists() else []
    out = pa.concat_tables(parts) if parts else schema.empty_table()
    if table == "train" and out.num_rows:
        # last write wins per (trial_id, step, metric): files are read in step order
        out = out.append_column("_i", pa.array(range(out.num_rows)))
        last = out.group_by(["trial_id", "step", "metric"]).aggregate([("_i", "max")])
        keep = set(last.column("_i_max").to_pylist())
        mask = pa.array([i in keep for i in range(out.num_rows)])
        out = out.filter(mask).drop_columns(["_i"])
    return out


# ----- guidance_search: one row per finished Optuna trial of `mdpt tune-guidance` ---------------
# Written by trainables/search.py (the searcher, as each trial finishes) and sweeps/guidance_search.py
# (interrupted trials); read by analysis (its GUIDANCE_SEARCH_COLUMNS). Layout:
#     RUN_DIR/results/guidance_search/<study>/trial_<number>.parquet   (a rewrite replaces the row)
# Columns:
#     study           Optuna study name
#     trial           Optuna trial number (continues across resumed sessions)
#     tune_trial_id   Tune trial id ("" for a trial interrupted with its driver)
#     task, algo, train_guidance   the snapshot group searched (one group per study)
#     method          inference method: swg | gradient | softmax
#     scale           the trial's scale (NaN when unknown)
#     params_json     the searched parameters, JSON object
#     inference_json  the complete InferenceConfig evaluated, JSON object
#     objective       mean normalized score (x100) over seeds; NaN unless state is COMPLETE
#     per_seed_json   {"<diffusion seed>": mean normalized score of that seed's snapshot}; {} when failed
#     state           COMPLETE | FAIL (Optuna trial state)
#     reason          why a trial failed ("" when COMPLETE)
#     infer_source    the evals rows of this trial have this infer_source (``search_infer_source``)
#     episodes        episodes per snapshot
#     updated_at      unix time
GUIDANCE_SEARCH_SCHEMA = pa.schema([
    ("study", pa.string()), ("trial", pa.int64()), ("tune_trial_id", pa.string()), ("task", pa.string()),
    ("algo", pa.string()), ("train_guidance", pa.string()), ("method", pa.string()), ("scale", pa.float64()),
    ("params_json", pa.string()), ("inference_json", pa.string()), ("objective", pa.float64()),
    ("per_seed_json", pa.string()), ("state", pa.string()), ("reason", pa.string()), ("infer_source", pa.string()),
    ("episodes", pa.int64()), ("updated_at", pa.float64()),
])
TABLES["guidance_search"] = GUIDANCE_SEARCH_SCHEMA


def search_infer_source(base: str, params: dict[str, Any]) -> str:
    """``infer_source`` of a search trial's eval rows: ``base`` (``search:<study>``), plus the searched values
    other than ``scale`` (``search:<study>:n_candidates=10``), so the eval key
    (trial_id, step, infer_source, infer_method, infer_scale, inference_precision) tells apart every parameter
    set."""
    extra = ",".join(f"{k}={params[k]:.10g}" for k in sorted(params) if k != "scale")
    return f"{base}:{extra}" if extra else base


def search_row(record: dict[str, Any], number: int, params: dict[str, Any], state: str, objective: float,
               per_seed: dict[str, float], reason: str, tune_trial_id: str) -> dict[str, Any]:
    """A ``guidance_search`` row from a study's constant columns and one trial's outcome.

    ``record``: {study, task, algo, train_guidance, method, inference (the fixed InferenceConfig dict),
    infer_source (the study's base, ``search:<study>``), episodes} (extra keys are ignored)."""
    import time

    inference = {**record["inference"], **params}
    return {"study": record["study"], "trial": int(number), "tune_trial_id": tune_trial_id,
            **{k: record[k] for k in ("task", "algo", "train_guidance", "method", "episodes")},
            "infer_source": search_infer_source(record["infer_source"], params),
            "scale": float(params.get("scale", inference.get("scale", float("nan")))),
            "params_json": json.dumps(params, sort_keys=True), "inference_json": json.dumps(inference, sort_keys=True),
            "objective": objective, "per_seed_json": json.dumps(per_seed, sort_keys=True), "state": state,
            "reason": reason, "updated_at": time.time()}


def search_row_path(run_dir: str | os.PathLike[str], study: str, trial: int) -> Path:
    return Path(run_dir) / "results" / "guidance_search" / study / f"trial_{trial:05d}.parquet"


def write_search_row(run_dir: str | os.PathLike[str], row: dict[str, Any]) -> Path:
    """Write (or replace) the row of one Optuna trial, atomically."""
    path = search_row_path(run_dir, row["study"], row["trial"])
    _atomic_write(_table([row], GUIDANCE_SEARCH_SCHEMA), path)
    return path


# ----- references: the reference lines of each task of a run -------------------------------------
# Written by the sweep driver (sweeps/run.py, before training) and by `mdpt train`; read by analysis (its
# REFERENCE_COLUMNS), which draws them on every learning curve and lists them in the report. Layout:
#     RUN_DIR/results/references/<task>.parquet   up to four rows per task (a rewrite replaces them; runs made
#                                                 before no_progress existed have three)
# Columns:
#     task, env_id        the task as the evals rows name it, and its env
#     reference           random | stand_still | no_progress | dataset (``REFERENCE_KINDS``); stand_still is the
#                         zero action (which falls within ~20-40 steps on hopper, walker2d and ant); no_progress
#                         is computed, the alive bonus x the cap (absent for an env without a known alive bonus)
#     policy              what acted: uniform random actions, the zero action, none (computed), the behaviour data
#     return_mean, return_std   over the reference's episodes (undiscounted return)
#     normalized_score    100 (R - ref_min)/(ref_max - ref_min) with the dataset's references (mdpt scale)
#     normalized_score_d4rl     the same on D4RL's bullet references; NaN for other envs
#     episodes, length_mean     episodes measured and their mean length (steps); no_progress: 0 and the cap
#     max_episode_steps   the step cap the random / stand-still episodes ran under (the run's eval cap)
#     seed                the fixed seed of the random / stand-still episodes (-1 for no_progress and dataset)
#     source              stored with the dataset | measured from the env at run start | computed: ... |
#                         the dataset's own episodes
REFERENCE_KINDS = ("random", "stand_still", "no_progress", "dataset")
REFERENCES_SCHEMA = pa.schema([
    ("task", pa.string()), ("env_id", pa.string()), ("reference", pa.string()), ("policy", pa.string()),
    ("return_mean", pa.float64()), ("return_std", pa.float64()), ("normalized_score", pa.float64()),
    ("normalized_score_d4rl", pa.float64()), ("episodes", pa.int64()), ("length_mean", pa.float64()),
    ("max_episode_steps", pa.int64()), ("seed", pa.int64()), ("source", pa.string()),
])
TABLES["references"] = REFERENCES_SCHEMA


def reference_rows(task: str, env_id: str, lines: dict, ref_min: float, ref_max: float) -> list[dict[str, Any]]:
    """The ``references`` rows of one task: ``lines`` from ``rl_core.data.gen.make.dataset_reference_lines``,
    scored with the dataset's reference scores ``ref_min``/``ref_max`` and D4RL's bullet ones. A line may carry
    its own ``seed`` and ``source`` (no_progress does); no_progress absent from ``lines`` (an env without a known
    alive bonus) has no row."""
    d4rl = D4RL_BULLET_REF_SCORES.get(env_id)
    rows = []
    for kind in REFERENCE_KINDS:
        if kind == "no_progress" and kind not in lines:
            continue
        line = lines[kind]
        ret = float(line["return_mean"])
        rows.append({"task": task, "env_id": env_id, "reference": kind, "policy": line["policy"],
                     "return_mean": ret, "return_std": float(line["return_std"]),
                     "normalized_score": float(normalized_score(ret, ref_min, ref_max)),
                     "normalized_score_d4rl": float(normalized_score(ret, *d4rl)) if d4rl else math.nan,
                     "episodes": int(line["episodes"]), "length_mean": float(line["length_mean"]),
                     "max_episode_steps": int(lines["max_episode_steps"]),
                     "seed": int(line.get("seed", -1 if kind == "dataset" else lines["seed"])),
                     "source": line.get("source", "the dataset's own episodes" if kind == "dataset"
                                        else lines["source"])})
    return rows


def references_path(run_dir: str | os.PathLike[str], task: str) -> Path:
    """RUN_DIR/results/references/<task>.parquet (characters other than letters, digits, '.', '_', '-' -> '_')."""
    return Path(run_dir) / "results" / "references" / (re.sub(r"[^A-Za-z0-9._-]", "_", task) + ".parquet")


def write_references(run_dir: str | os.PathLike[str], rows: list[dict[str, Any]]) -> Path:
    """Write (or replace) the reference rows of one task, atomically."""
    tasks = {r["task"] for r in rows}
    if len(tasks) != 1:
        raise ValueError(f"reference rows of one file must share one task; got {sorted(tasks)}")
    path = references_path(run_dir, rows[0]["task"])
    _atomic_write(_table(rows, REFERENCES_SCHEMA), path)
    return path


def record_references(run_dir: str | os.PathLike[str], task: str, dataset: Any, max_episode_steps: int) -> Path:
    """Measure (or read from ``dataset``'s metadata) the reference lines of ``task`` for episodes capped at
    ``max_episode_steps`` and write them (``write_references``); the sweep driver and `mdpt train` call this."""
    from rl_core.data.gen.make import dataset_reference_lines

    lines = dataset_reference_lines(dataset, max_episode_steps)
    return write_references(run_dir, reference_rows(task, dataset.env_id, lines, dataset.ref_min_score,
                                                    dataset.ref_max_score))
