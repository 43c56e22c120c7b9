"""The result tables: the contract between trainables (writers) and analysis (readers).

Layout under a run directory (one sweep per run directory)::

    RUN_DIR/results/evals/<trial_id>/<job_key>.parquet   one file per evaluation job
    RUN_DIR/results/train/<trial_id>/<from>-<to>.parquet  logged training metrics (long format)
    RUN_DIR/results/trials/<trial_id>.parquet             one row per trial (latest state wins)

Idempotency: an evaluation job is identified by (trial_id, step, infer_source, infer_method,
infer_scale); its episodes are written together into one file whose name is a hash of that key,
atomically (temporary file + rename). A retried evaluation or a restored trial rewrites the same
file, so rows are neither duplicated nor lost. Training-metric files are named by their step
range and de-duplicated on read (last write wins per (trial_id, step, metric)).

This module imports only pyarrow/numpy (no torch, no Ray), so `mdpt train` and the Ray
trainables write identical files. `analysis` reads these files with pyarrow alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from rl_core.fsutil import atomic_write

EVALS_SCHEMA = pa.schema(
    [
        ("sweep", pa.string()),
        ("trial_id", pa.string()),
        ("task", pa.string()),
        ("algo", pa.string()),
        ("train_guidance", pa.string()),  # joint | none | noise | frozen | unfrozen
        ("infer_source", pa.string()),  # self | seed:<s> | algo:<a> | artifact:<name>
        ("infer_method", pa.string()),  # none | softmax | argmax | gradient | swg
        ("infer_scale", pa.float64()),  # temperature / lambda / SWG scale (NaN when unused)
        ("diffusion_seed", pa.int64()),
        ("guidance_seed", pa.int64()),  # -1 when there is no guidance
        ("step", pa.int64()),
        ("episode", pa.int64()),
        ("eval_seed", pa.int64()),
        ("return", pa.float64()),
        ("normalized_score", pa.float64()),  # 100 * (R - ref_min) / (ref_max - ref_min)
        ("length", pa.int64()),
        ("wall_s", pa.float64()),  # wall time of the whole evaluation job, seconds
    ]
)
EVAL_KEY = ("trial_id", "step", "infer_source", "infer_method", "infer_scale")

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


def eval_job_key(trial_id: str, step: int, infer_source: str, infer_method: str, infer_scale: float) -> str:
    """Stable file name for one evaluation job (see module docstring)."""
    scale = "nan" if infer_scale is None or infer_scale != infer_scale else repr(float(infer_scale))
    raw = json.dumps([trial_id, int(step), infer_source, infer_method, scale])
    return f"step{int(step):08d}-" + hashlib.sha1(raw.encode()).hexdigest()[:16]


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    missing = [f.name for f in schema if any(f.name not in r for r in rows)]
    if missing:
        raise ValueError(f"result rows lack columns {missing}; schema is {schema.names}")
    return pa.Table.from_pylist([{f.name: r[f.name] for f in schema} for r in rows], schema=schema)


class ResultStore:
    """Writes and reads the three result tables of one run directory."""

    def __init__(self, run_dir: str | os.PathLike[str]):
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "results"

    # ----- evals ---------------------------------------------------------------------------
    def eval_path(self, trial_id: str, step: int, infer_source: str, infer_method: str, infer_scale: float) -> Path:
        return self.root / "evals" / trial_id / (eval_job_key(trial_id, step, infer_source, infer_method, infer_scale) + ".parquet")

    def has_eval(self, trial_id: str, step: int, infer_source: str, infer_method: str, infer_scale: float) -> bool:
        return self.eval_path(trial_id, step, infer_source, infer_method, infer_scale).exists()

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
        r0 = rows[0]
        path = self.eval_path(r0["trial_id"], r0["step"], r0["infer_source"], r0["infer_method"], r0["infer_scale"])
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


def read_table(run_dir: str | os.PathLike[str], table: str) -> pa.Table:
    """Read a result table of a run directory; an absent table reads as empty with its schema."""
    schema = TABLES[table]
    directory = Path(run_dir) / "results" / table
    parts = [pq.read_table(p).cast(schema) for p in _files(directory)] if directory.exists() else []
    out = pa.concat_tables(parts) if parts else schema.empty_table()
    if table == "train" and out.num_rows:
        # last write wins per (trial_id, step, metric): files are read in step order
        out = out.append_column("_i", pa.array(range(out.num_rows)))
        last = out.group_by(["trial_id", "step", "metric"]).aggregate([("_i", "max")])
        keep = set(last.column("_i_max").to_pylist())
        mask = pa.array([i in keep for i in range(out.num_rows)])
        out = out.filter(mask).drop_columns(["_i"])
    return out
