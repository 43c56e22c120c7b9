"""Errors raised by `analysis` for bad input; the CLI prints them as one clear message.

`analysis` imports nothing from rl_core, so these derive from `Exception` directly; ``mdpt``
(sweeps/cli.py) catches `AnalysisError` beside rl_core's ``MdptError`` and prints both as one
line ``mdpt: error: ...`` with exit status 2.
"""

from __future__ import annotations


class AnalysisError(Exception):
    """The results cannot be analysed as asked (the message says why and what to do)."""


class EmptyRunError(AnalysisError):
    """The run directory holds no evaluation rows (or none for a selected variant)."""


class MissingBaselineError(AnalysisError):
    """A comparison's method or baseline selects no evaluation rows."""


class HorizonMismatchError(AnalysisError):
    """The two arms of a comparison cannot be compared on a common step horizon."""


class ScoreScaleError(AnalysisError):
    """The chosen score scale has no scores for any task of the run (or is not a known scale)."""
