"""Errors raised by `analysis` for bad input; the CLI prints them as one clear message."""

from __future__ import annotations

from rl_core.errors import MdptError


class AnalysisError(MdptError):
    """The results cannot be analysed as asked (the message says why and what to do)."""


class EmptyRunError(AnalysisError):
    """The run directory holds no evaluation rows (or none for a selected variant)."""


class MissingBaselineError(AnalysisError):
    """A comparison's method or baseline selects no evaluation rows."""


class HorizonMismatchError(AnalysisError):
    """The two arms of a comparison cannot be compared on a common step horizon."""
