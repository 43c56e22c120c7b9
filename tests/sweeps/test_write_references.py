"""sweeps.run.write_references: a run's reference lines written once per task, and rewritten when a run made
before a line existed (three rows, no ``no_progress``) is resumed. No Ray."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from sweeps.run import write_references
from tests.sweeps.sweep_helpers import tiny_spec
from trainables.results import read_table, references_path


def test_written_once_and_rewritten_when_a_line_is_missing(tmp_path, tiny_data_root):
    spec, run_dir = tiny_spec(), tmp_path / "run"
    printed: list[str] = []
    assert write_references(spec, run_dir, str(tiny_data_root), printed.append) == 1
    rows = read_table(run_dir, "references").to_pylist()
    assert sorted(r["reference"] for r in rows) == ["dataset", "no_progress", "random", "stand_still"]
    bound = next(r for r in rows if r["reference"] == "no_progress")
    assert (bound["return_mean"], bound["max_episode_steps"]) == (20.0, 20)  # alive bonus 1 x the 20-step cap
    assert write_references(spec, run_dir, str(tiny_data_root), printed.append) == 0  # complete: kept
    # a run directory written before the no_progress line: three rows; resuming rewrites the task's file
    path = references_path(run_dir, "hopper-medium")
    old = pq.read_table(path)
    old = old.filter(pa.array([k != "no_progress" for k in old.column("reference").to_pylist()]))
    pq.write_table(old, path)
    assert read_table(run_dir, "references").num_rows == 3
    assert write_references(spec, run_dir, str(tiny_data_root), printed.append) == 1
    again = read_table(run_dir, "references").to_pylist()
    assert len(again) == 4 and {r["reference"]: r["return_mean"] for r in again} == {
        r["reference"]: r["return_mean"] for r in rows}  # the same numbers: measured with the same fixed seed
    assert len(printed) == 2 and "no-progress" in printed[0]
