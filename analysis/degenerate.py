"""Degenerate-policy flags: an arm that stands still, falls at once, or scores like a reference policy.

An *arm* is one task x variant (algorithm, training-guidance mode, inference): its evaluated episodes at
one checkpoint, pooled over seeds. `degenerate_flag` looks at that checkpoint (default: the arm's last)
and returns a `DegenerateFlag` (``kind`` None when nothing is wrong) with the evidence in words. The
rules, first match wins, with every threshold in `THRESHOLDS` (the one place they live):

- ``falls_at_once``: every episode ends within ``fall_fraction`` of the step cap (5 %: 50 steps of
  1000).
- ``stands_still``: every episode reaches the step cap, the returns are near-constant (std <=
  ``constant_cv`` x |mean| + ``constant_abs``) and the mean score is below ``stands_still_max_score``.
  A policy that holds its pose collects the per-step alive bonus and nothing else: the same return in
  every episode (the quickstart's "hopper" at ~770 in all 90 episodes). The score bound keeps a
  converged expert out: a deterministic expert also lasts every episode, with returns varying by
  1.1-1.3 % (measured on the hopper and ant experts), and scores near 100, while standing still earns at
  most the alive bonus, under 40 on mdpt's scale for hopper and ant.
- ``near_stand_still`` / ``near_random``: the mean score is within noise of the stand-still (zero
  action) or random (uniform actions) reference line: |mean - reference| <= ``near_se`` x SE +
  ``near_margin``, SE = the standard error of the mean over the checkpoint's episodes (x100 points).
  (On hopper, walker2d and ant the zero action falls within ~20-40 steps, so that line is a floor.)

The ``no_progress`` reference line (the alive bonus x the cap: the most an episode can return without
moving forward) raises no flag: it is a loose bound on halfcheetah and walker2d, whose medium policies
move forward and still score below it, so flagging it would refuse good arms.

The step cap is the ``max_episode_steps`` of the task's reference lines when given, else ``cap``, else
``DEFAULT_STEP_CAP`` (the envs' 1000-step limit). Inputs are read by column name from a pyarrow Table
or a pandas DataFrame (or a dict of arrays), so callers outside the report (statistics that refuse
degenerate input) need nothing but their eval rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from analysis.errors import AnalysisError

DEFAULT_STEP_CAP = 1000  # the envs' episode time limit (the evals' default max_steps)


@dataclass(frozen=True)
class Thresholds:
    """Every number the flags use (module docstring); scores are x100 points."""

    fall_fraction: float = 0.05  # falls at once: every episode length <= 5 % of the step cap
    constant_cv: float = 0.01  # stands still: std(return) <= 1 % of |mean return| ...
    constant_abs: float = 1.0  # ... + 1 return unit (returns near 0)
    stands_still_max_score: float = 50.0  # ... and mean score below this (an expert also lasts every episode)
    near_se: float = 2.0  # near a reference: |mean - reference| <= 2 SE ...
    near_margin: float = 2.0  # ... + 2 score points


THRESHOLDS = Thresholds()
KINDS = {
    "falls_at_once": "falls at once",
    "stands_still": "stands still",
    "near_stand_still": "scores like the zero-action reference",
    "near_random": "scores like the random reference",
}
REFERENCE_LABELS = {"random": "random", "stand_still": "zero-action",
                    "no_progress": "no-forward-progress (upper bound)", "dataset": "dataset"}


@dataclass(frozen=True)
class DegenerateFlag:
    """``kind``: a key of `KINDS`, or None (not degenerate); ``evidence``: the checkpoint's episode lengths,
    returns and score (and the reference compared with), one sentence; ``step``: the checkpoint judged."""

    kind: str | None
    evidence: str
    step: int | None = None

    @property
    def flagged(self) -> bool:
        return self.kind is not None

    @property
    def label(self) -> str:
        """``stands still``, ``falls at once``, ...; "" when not flagged."""
        return KINDS.get(self.kind, "") if self.kind else ""


def _column(t: Any, name: str, what: str) -> np.ndarray:
    """Column ``name`` of a pyarrow Table, pandas DataFrame or dict of arrays, as a numpy array."""
    if isinstance(t, pa.Table):
        if name not in t.column_names:
            raise AnalysisError(f"{what} lack the column '{name}' (have {t.column_names})")
        return t.column(name).to_numpy(zero_copy_only=False)
    try:
        return np.asarray(t[name])
    except (KeyError, IndexError):
        have = list(getattr(t, "columns", None) if hasattr(t, "columns") else t)
        raise AnalysisError(f"{what} lack the column '{name}' (have {have})") from None


def _has(t: Any, name: str) -> bool:
    return name in (t.column_names if isinstance(t, pa.Table) else getattr(t, "columns", t))


def reference_scores(references: Any, task: str | None = None, score: str = "normalized_score"
                     ) -> tuple[dict[str, float], int | None]:
    """({reference: score}, step cap) of ``task`` from reference rows (``task, reference, <score>,
    max_episode_steps``: RUN_DIR/results/references) or a {reference: score} mapping; NaN scores are dropped."""
    if references is None:
        return {}, None
    if isinstance(references, Mapping) and "reference" not in references:  # {reference: score}
        return {k: float(v) for k, v in references.items() if v is not None and np.isfinite(v)}, None
    kinds = _column(references, "reference", "reference rows")
    values = _column(references, score, "reference rows").astype(float)
    keep = np.ones(len(kinds), bool)
    if task is not None and _has(references, "task"):
        keep &= _column(references, "task", "reference rows").astype(object) == task
    caps = _column(references, "max_episode_steps", "reference rows")[keep] if _has(references, "max_episode_steps") \
        else np.array([])
    out = {str(k): float(v) for k, v, ok in zip(kinds, values, keep) if ok and np.isfinite(v)}
    return out, (int(caps.max()) if len(caps) else None)


def degenerate_flag(rows: Any, references: Any = None, *, step: int | None = None, cap: int | None = None,
                    score: str = "normalized_score", thresholds: Thresholds = THRESHOLDS) -> DegenerateFlag:
    """The degenerate-policy flag of one arm (module docstring for the rules).

    ``rows``: the arm's eval rows (pyarrow Table or pandas DataFrame; one row per episode, all seeds) with
    ``step``, ``length``, ``return`` and ``score`` (x100; ``normalized_score`` or ``normalized_score_d4rl``),
    and ``task`` when ``references`` holds several tasks. ``references``: reference rows (RUN_DIR/results/
    references: ``task, reference, <score>, max_episode_steps``) or a {"stand_still"|"random": score}
    mapping, or None (then only the length / return rules apply). ``step``: the checkpoint judged (default:
    the last in ``rows``). ``cap``: the episode step cap when the references do not give one (default 1000).
    """
    if len(_column(rows, "step", "eval rows")) == 0:
        return DegenerateFlag(None, "no evaluated episodes")
    steps = _column(rows, "step", "eval rows").astype(int)
    at = int(steps.max()) if step is None else int(step)
    mask = steps == at
    if not mask.any():
        return DegenerateFlag(None, f"no evaluated episodes at step {at}", at)
    lengths = _column(rows, "length", "eval rows").astype(int)[mask]
    returns = _column(rows, "return", "eval rows").astype(float)[mask]
    scores = _column(rows, score, "eval rows").astype(float)[mask]
    task = None
    if _has(rows, "task"):
        names = set(_column(rows, "task", "eval rows")[mask].tolist())
        task = names.pop() if len(names) == 1 else None
    refs, ref_cap = reference_scores(references, task, score)
    cap = int(ref_cap or cap or DEFAULT_STEP_CAP)
    n, th = len(lengths), thresholds
    ok = np.isfinite(scores)
    m = float(scores[ok].mean()) if ok.any() else float("nan")
    se = float(scores[ok].std(ddof=1) / np.sqrt(ok.sum())) if ok.sum() > 1 else 0.0
    r_mean, r_std = float(returns.mean()), float(returns.std())
    facts = (f"step {at}: {n} episode(s), lengths {lengths.min()}–{lengths.max()} of the {cap}-step cap, returns "
             f"{r_mean:.1f} ± {r_std:.1f} (range {returns.min():.1f}–{returns.max():.1f}), score {m:.1f}")
    if lengths.max() <= th.fall_fraction * cap:
        return DegenerateFlag("falls_at_once", f"{facts}: every episode ends within {lengths.max()} steps "
                                               f"(≤ {th.fall_fraction:.0%} of the cap)", at)
    constant = r_std <= th.constant_cv * abs(r_mean) + th.constant_abs
    if lengths.min() >= cap and constant and not m >= th.stands_still_max_score:
        return DegenerateFlag("stands_still", f"{facts}: every episode reaches the cap with a near-constant return "
                                              f"(std ≤ {th.constant_cv:.0%} of the mean)", at)
    for ref in ("stand_still", "random"):
        if ref in refs and np.isfinite(m):
            tol = th.near_se * se + th.near_margin
            if abs(m - refs[ref]) <= tol:
                return DegenerateFlag(f"near_{ref}", f"{facts}: within noise of the {REFERENCE_LABELS[ref]} "
                                                     f"reference {refs[ref]:.1f} (|difference| "
                                                     f"{abs(m - refs[ref]):.1f} ≤ {th.near_se:g} SE + "
                                                     f"{th.near_margin:g} = {tol:.1f})", at)
    return DegenerateFlag(None, facts, at)


def thresholds_text(thresholds: Thresholds = THRESHOLDS) -> str:
    """The rules in one paragraph, for the report."""
    th = thresholds
    return (f"An arm (task × variant, all seeds' episodes at one checkpoint) is flagged when every episode ends "
            f"within {th.fall_fraction:.0%} of the step cap (**falls at once**); when every episode reaches the cap "
            f"with a near-constant return (std ≤ {th.constant_cv:.0%} of the mean + {th.constant_abs:g}) and a mean "
            f"score below {th.stands_still_max_score:g} (**stands still**: a converged expert also lasts every "
            f"episode, but scores near 100); or when its mean score is within {th.near_se:g} standard errors + "
            f"{th.near_margin:g} points of the zero-action or random reference line (**scores like "
            "a reference**). Thresholds: `analysis/degenerate.py` THRESHOLDS.")
