"""Score scales: which eval column a report shows, and the rows that have a score on it.

Two scales, both ``100 (R - ref_min) / (ref_max - ref_min)`` (x100) with different reference scores:

- ``mdpt`` (column ``normalized_score``): the reference scores stored with each mdpt dataset
  (ref_min = the uniform random policy, ref_max = the dataset's expert policy).
- ``d4rl`` (column ``normalized_score_d4rl``): D4RL's reference scores for its bullet-*-v0
  tasks, comparable with published D4RL bullet numbers; NaN for tasks that are not one of those
  (and in result tables written before the column existed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from analysis.errors import ScoreScaleError


@dataclass(frozen=True)
class ScoreScale:
    """One score scale: ``name`` (the CLI value), the eval ``column`` it reads, a ``label`` for headings."""

    name: str
    column: str
    label: str
    reference: str  # what its reference scores are, one sentence
    missing: str  # why a task can lack scores on this scale

    @property
    def heading(self) -> str:
        """``normalized score (mdpt scale)``: what every table, plot and heading says it shows."""
        return f"normalized score ({self.label})"

    @property
    def axis(self) -> str:
        """``normalized score (mdpt scale, ×100)``: a plot's score axis label."""
        return f"normalized score ({self.label}, ×100)"

    @property
    def variance_axis(self) -> str:
        """``score variance (mdpt scale, (×100)²)``: a variance plot's axis label."""
        return f"score variance ({self.label}, (×100)²)"


SCORE_SCALES = {
    "mdpt": ScoreScale("mdpt", "normalized_score", "mdpt scale",
                       "the reference returns stored with each mdpt dataset (ref_min: the uniform random policy, "
                       "ref_max: the dataset's expert policy)",
                       "its dataset has no reference scores"),
    "d4rl": ScoreScale("d4rl", "normalized_score_d4rl", "D4RL bullet scale",
                       "D4RL's reference returns for its bullet-*-v0 tasks (comparable with published D4RL bullet "
                       "numbers)",
                       "not one of D4RL's bullet tasks, or results written before the column existed"),
}


def score_scale(name: str) -> ScoreScale:
    """The `ScoreScale` called ``name``; `ScoreScaleError` naming the allowed values otherwise."""
    if name not in SCORE_SCALES:
        raise ScoreScaleError(f"score scale {name!r} (--score-scale / score_scale) is unknown; allowed: "
                              f"{list(SCORE_SCALES)}")
    return SCORE_SCALES[name]


def rows_on_scale(evals: pa.Table, scale: ScoreScale) -> tuple[pa.Table, list[str]]:
    """The eval rows with a score on ``scale`` and one note per task (or part of one) left out.

    ``evals``: eval rows with ``task`` and ``scale.column`` (float64, NaN = no score). A task whose
    scores are all NaN is left out; so are the NaN rows of a task that has some scores. Raises
    `ScoreScaleError` when no row is left.
    """
    score = evals.column(scale.column).to_numpy(zero_copy_only=False).astype(float)
    missing = np.isnan(score)
    if not missing.any():
        return evals, []
    tasks = np.asarray(evals.column("task").to_pylist(), dtype=object)
    notes = []
    for task in sorted(set(tasks)):
        of_task = tasks == task
        n_missing, n = int((missing & of_task).sum()), int(of_task.sum())
        if n_missing == n:
            notes.append(f"{task}: no {scale.label} scores ({scale.column} is NaN in all {n} rows: "
                         f"{scale.missing}); task left out.")
        elif n_missing:
            notes.append(f"{task}: {n_missing} of {n} rows have no {scale.label} score ({scale.column} is NaN); "
                         "those rows are left out.")
    if missing.all():
        raise ScoreScaleError(
            f"score scale {scale.name!r}: no task of this run has {scale.label} scores ({scale.column} is NaN "
            f"in every row, tasks {sorted(set(tasks))}); use --score-scale mdpt")
    return evals.filter(pa.array(~missing)), notes

