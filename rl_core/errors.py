"""User-facing errors of rl_core, trainables and sweeps (one module; analysis has its own,
``analysis/errors.py``, since it imports nothing from rl_core). The CLI prints these as one clear
message (no traceback).

Every error says what was wrong and what to do: a missing dataset names the `mdpt data make`
command, a mismatched guidance artifact names the fingerprint field that differs, a bad spec
field names its path and the allowed values.
"""

from __future__ import annotations


class MdptError(Exception):
    """Base class of all errors caused by bad input (data, specs, artifacts, arguments)."""


class DatasetError(MdptError):
    """A dataset is missing, unknown, corrupt or inconsistent."""


class ArtifactMismatchError(MdptError):
    """A guidance artifact or snapshot does not fit the dataset / shapes it is loaded for."""


class ConfigError(MdptError):
    """A config or sweep spec field is invalid. The message names the field path."""


class DivergenceError(MdptError):
    """Training produced NaN/inf losses or Q-values; the message says which and at what step."""


class GuidanceError(MdptError):
    """A guidance module was used in a way it does not support (frozen update, missing inputs)."""


class GuidanceCapabilityError(GuidanceError):
    """A method needs a capability (e.g. V) that this critic kind does not provide."""


class ArtifactError(MdptError):
    """A guidance artifact file is missing, corrupt or of an unknown format."""


class SnapshotError(MdptError):
    """A snapshot file is missing, corrupt or of an unknown format."""


class ObjectiveError(MdptError):
    """A guidance-search trial's evaluation failed or gave a non-finite objective (the trial is told FAIL)."""
