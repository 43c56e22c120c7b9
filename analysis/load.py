"""Read a run directory's results (Parquet, pyarrow only) and select rows of them.

Tables read (layout in docs/interfaces.md; the writer is trainables/results.py, which this
module does not import, so a report can be made from a copied run directory anywhere):

- ``RUN_DIR/results/evals/**.parquet``: one row per evaluated episode with the columns
  ``EVAL_COLUMNS`` (``normalized_score`` and ``normalized_score_d4rl`` are x100, see
  `analysis.scales`); a table without ``OPTIONAL_EVAL_COLUMNS`` (written by an older mdpt) loads
  with them NaN, one without ``NULLABLE_EVAL_COLUMNS`` (``guidance_file``) with them null, one without
  ``DEFAULTED_EVAL_COLUMNS`` (``inference_precision``) with their value then (``"fp32"``).
- ``RUN_DIR/results/trials/*.parquet``: one row per trial (``TRIAL_COLUMNS``).
- ``RUN_DIR/results/references/<task>.parquet``: optional, the reference lines of each task (random,
  zero-action ``stand_still``, the computed no-forward-progress bound ``no_progress`` and behaviour-data
  policies; ``REFERENCE_COLUMNS``); absent in runs made before mdpt wrote them (the report then draws no
  reference lines and says so); runs made before ``no_progress`` existed have the other three.
- ``RUN_DIR/results/guidance_search/<study>/trial_<n>.parquet`` (read recursively): optional, one
  row per finished Optuna trial of the guidance search (``GUIDANCE_SEARCH_COLUMNS``; the writer is
  trainables/results.py). Its trials' eval rows have ``infer_source = search:<study>[...]``
  (``SEARCH_SOURCE_PREFIX``); they are search trials, not compositions, so the default
  comparisons leave them out.

A *variant* is one value of ``VARIANT_KEYS``; a *selector* is a dict over a subset of
``SELECTOR_KEYS = ("task", *VARIANT_KEYS)`` that selects eval rows by column equality (`select`).
Comparisons (pairs of selectors) are built in `analysis.comparisons`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analysis.errors import AnalysisError, EmptyRunError

EVAL_COLUMNS = (
    "sweep", "trial_id", "task", "algo", "train_guidance", "infer_source", "infer_method",
    "infer_scale", "inference_precision", "diffusion_seed", "guidance_seed", "step", "episode", "eval_seed", "return",
    "normalized_score", "normalized_score_d4rl", "length", "wall_s", "guidance_file",
)
OPTIONAL_EVAL_COLUMNS = ("normalized_score_d4rl",)  # float64; absent (older tables) or null reads as NaN
# string: the plugged-in critic's file ("" = the snapshot's own); absent (older tables) reads as null
NULLABLE_EVAL_COLUMNS = ("guidance_file",)
# string: the evaluation's numeric precision (fp32 | bf16, the writer's InferenceConfig.precision); absent
# (older tables, every evaluation was fp32 then) or null reads as "fp32"
DEFAULTED_EVAL_COLUMNS = {"inference_precision": "fp32"}
TRIAL_COLUMNS = (
    "sweep", "trial_id", "stage", "task", "algo", "train_guidance", "seed", "config_json",
    "status", "failure_reason", "restored_from", "num_failures", "updated_at",
)
VARIANT_KEYS = ("algo", "train_guidance", "infer_source", "infer_method", "infer_scale", "inference_precision")
SELECTOR_KEYS = ("task", *VARIANT_KEYS)
GUIDANCE_SEARCH_COLUMNS = (
    "study", "trial", "tune_trial_id", "task", "algo", "train_guidance", "method", "scale", "params_json",
    "inference_json", "objective", "per_seed_json", "state", "reason", "infer_source", "episodes", "updated_at",
)
REFERENCE_COLUMNS = (
    "task", "env_id", "reference", "policy", "return_mean", "return_std", "normalized_score", "normalized_score_d4rl",
    "episodes", "length_mean", "max_episode_steps", "seed", "source",
)
REFERENCE_KINDS = ("random", "stand_still", "no_progress", "dataset")  # the values of the ``reference`` column
SEARCH_SOURCE_PREFIX = "search:"  # infer_source of the guidance search's eval rows
EPISODE_KEY = ("trial_id", "step", "episode", "infer_source", "infer_method", "infer_scale", "inference_precision")


@dataclass(frozen=True)
class RunData:
    """Everything a report reads from one run directory."""

    run_dir: Path
    evals: pa.Table  # EVAL_COLUMNS, de-duplicated on EPISODE_KEY
    trials: pa.Table  # TRIAL_COLUMNS (possibly empty)
    guidance_search: pa.Table | None  # None when the run has no guidance search
    spec: dict[str, Any]  # run.json, with spec.yaml's `report` section when run.json lacks one
    references: pa.Table | None = None  # REFERENCE_COLUMNS; None when the run has none


def _read_dir(directory: Path, required: tuple[str, ...], what: str) -> pa.Table | None:
    """Every ``*.parquet`` under ``directory``, recursively (per-trial / per-study subdirectories),
    skipping hidden files (a writer's temporaries); None when there are none. Raises `AnalysisError`
    when a ``required`` column is missing."""
    files = sorted(p for p in directory.rglob("*.parquet") if not p.name.startswith(".")) if directory.is_dir() else []
    if not files:
        return None
    table = pa.concat_tables([pq.read_table(p) for p in files], promote_options="default")
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise AnalysisError(f"{directory} lacks the {what} columns {missing}; was it written by another mdpt version?")
    return table


def dedupe_evals(evals: pa.Table) -> pa.Table:
    """Keep the last-read row per ``EPISODE_KEY`` (a retried or restored evaluation wins), in read order.

    ``evals``: eval rows (``EVAL_COLUMNS``); a null ``infer_scale`` is read as NaN.
    """
    scale = pc.fill_null(evals.column("infer_scale").cast(pa.float64()), math.nan)
    evals = evals.set_column(evals.column_names.index("infer_scale"), "infer_scale", scale)
    indexed = evals.append_column("_row", pa.array(np.arange(evals.num_rows)))
    last = indexed.group_by(list(EPISODE_KEY)).aggregate([("_row", "max")]).column("_row_max")
    return evals.take(np.sort(last.to_numpy()))  # the kept rows, in read order


def load_run(run_dir: str | Path) -> RunData:
    """Read the result tables and the spec of ``run_dir``; `EmptyRunError` when there are no evals."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EmptyRunError(f"run directory {run_dir} does not exist")
    required = tuple(c for c in EVAL_COLUMNS if c not in OPTIONAL_EVAL_COLUMNS + NULLABLE_EVAL_COLUMNS
                     + tuple(DEFAULTED_EVAL_COLUMNS))
    evals = _read_dir(run_dir / "results" / "evals", required, "evals")
    if evals is None or evals.num_rows == 0:
        raise EmptyRunError(
            f"{run_dir} has no evaluation results under results/evals; has the sweep evaluated any "
            "checkpoint yet? (`mdpt sweep` writes them every eval_every steps)"
        )
    trials = _read_dir(run_dir / "results" / "trials", TRIAL_COLUMNS, "trials")
    # no required columns here: the report checks GUIDANCE_SEARCH_COLUMNS and shows another table as written
    search = _read_dir(run_dir / "results" / "guidance_search", (), "guidance_search")
    references = _read_dir(run_dir / "results" / "references", REFERENCE_COLUMNS, "references")
    for column in OPTIONAL_EVAL_COLUMNS:
        evals = _nan_if_missing(evals, column)
    for column in NULLABLE_EVAL_COLUMNS:
        if column not in evals.column_names:
            evals = evals.append_column(column, pa.nulls(evals.num_rows, pa.string()))
    for column, value in DEFAULTED_EVAL_COLUMNS.items():
        evals = _default_if_missing(evals, column, value)
    return RunData(run_dir, dedupe_evals(evals.select(list(EVAL_COLUMNS))),
                   trials if trials is not None else pa.table({c: [] for c in TRIAL_COLUMNS}),
                   search, read_spec(run_dir),
                   references.select(list(REFERENCE_COLUMNS)) if references is not None else None)


def _nan_if_missing(evals: pa.Table, column: str) -> pa.Table:
    """``evals`` with float64 ``column``; absent or null (files written before it existed) reads as NaN."""
    if column not in evals.column_names:
        return evals.append_column(column, pa.array(np.full(evals.num_rows, math.nan)))
    filled = pc.fill_null(evals.column(column).cast(pa.float64()), math.nan)
    return evals.set_column(evals.column_names.index(column), column, filled)


def _default_if_missing(evals: pa.Table, column: str, value: str) -> pa.Table:
    """``evals`` with string ``column``; absent or null (files written before it existed) reads as ``value``."""
    if column not in evals.column_names:
        return evals.append_column(column, pa.array([value] * evals.num_rows, pa.string()))
    filled = pc.fill_null(evals.column(column).cast(pa.string()), value)
    return evals.set_column(evals.column_names.index(column), column, filled)


def read_spec(run_dir: Path) -> dict[str, Any]:
    """``run.json`` (or {}), with ``report`` taken from ``spec.yaml`` when run.json has no comparisons."""
    spec: dict[str, Any] = {}
    if (run_dir / "run.json").exists():
        spec = json.loads((run_dir / "run.json").read_text())
    if not spec.get("comparisons") and (run_dir / "spec.yaml").exists():
        import yaml

        report = (yaml.safe_load((run_dir / "spec.yaml").read_text()) or {}).get("report") or {}
        spec["comparisons"] = report.get("comparisons") or []
    return spec


# ----- selecting rows ---------------------------------------------------------------------------
def is_nan(v: Any) -> bool:
    """Whether a selector value stands for "no value" (None or NaN)."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def select(evals: pa.Table, sel: dict[str, Any]) -> pa.Table:
    """Rows of ``evals`` matching every key of ``sel`` (NaN ``infer_scale`` matches NaN / None)."""
    mask = pa.array(np.ones(evals.num_rows, dtype=bool))
    for key, value in sel.items():
        col = evals.column(key)
        if key == "infer_scale":
            arr = col.to_numpy(zero_copy_only=False).astype(float)
            hit = np.isnan(arr) if is_nan(value) else np.isclose(arr, float(value))
            mask = pc.and_(mask, pa.array(hit))
        else:
            mask = pc.and_(mask, pc.equal(col, pa.scalar(value).cast(col.type)))
    return evals.filter(mask)


def variants(evals: pa.Table) -> list[dict[str, Any]]:
    """Distinct ``VARIANT_KEYS`` rows of ``evals``, sorted."""
    rows = evals.select(list(VARIANT_KEYS)).group_by(list(VARIANT_KEYS)).aggregate([]).to_pylist()
    return sorted(rows, key=lambda r: tuple(str(r[k]) for k in VARIANT_KEYS))


def is_search_source(infer_source: object) -> bool:
    """Whether an ``infer_source`` labels guidance-search trial evaluations (``search:<study>...``)."""
    return str(infer_source).startswith(SEARCH_SOURCE_PREFIX)
