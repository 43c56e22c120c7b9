"""What kind of mdpt file a path is, for one-line errors when a command gets the wrong one.

``describe(path)`` never unpickles anything it does not trust: torch files are opened with
``weights_only=True``; a file that needs full unpickling (a training checkpoint holds RNG states) is
recognised from the names in its pickle, read with ``pickletools`` without executing it.
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

CHECKPOINT = "a training checkpoint (resume state, checkpoints/step_*/state.pt)"
SNAPSHOT = "a policy snapshot (snapshots/<trial>/step_*.pt, for `mdpt evaluate`)"
ARTIFACT = "a guidance artifact (guidance/<trial>/step_*.pt or final.pt, for --guidance-artifact)"
DATASET = "an offline dataset"


def _pickle_names(path: Path) -> set[str]:
    """String constants in a torch zip file's pickle (read, never executed); empty if not a torch zip."""
    try:
        with zipfile.ZipFile(path) as z:
            member = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            data = z.read(member) if member else b""
        return {arg for op, arg, _ in pickletools.genops(data) if isinstance(arg, str)}
    except Exception:  # noqa: BLE001 - anything unreadable is simply "not a torch file"
        return set()


def _kind_of_dict(keys: set[str]) -> str | None:
    if {"denoiser", "algo", "normalizer"} <= keys:
        return SNAPSHOT
    if {"state_dict", "meta", "config"} <= keys:
        return ARTIFACT
    if {"step", "config", "fingerprint"} <= keys:
        return CHECKPOINT
    return None


def describe(path: str | Path) -> str:
    """A short phrase naming what ``path`` is (one of the constants above, or a generic description)."""
    p = Path(path)
    if not p.exists():
        return "missing"
    if p.is_dir():
        if (p / "metadata.json").exists() and (p / "transitions.parquet").exists():
            return f"{DATASET} (a dataset directory)"
        if (p / "state.pt").exists():
            return CHECKPOINT.replace("(resume state, ", "directory (resume state, ")
        return "a directory"
    suffix = p.suffix.lower()
    if suffix in (".hdf5", ".h5", ".parquet"):
        return f"{DATASET} ({suffix[1:].upper()} file)"
    if suffix == ".npz":
        return "a numpy weight archive (.npz, e.g. a behaviour policy)"
    names = _pickle_names(p)
    if not names:
        return "not a torch file"
    try:
        import torch

        d = torch.load(p, map_location="cpu", weights_only=True)
        keys = {k for k in d if isinstance(k, str)} if isinstance(d, dict) else set()
    except Exception:  # noqa: BLE001 - a file torch refuses to load safely: judge by its pickle's names
        keys = names
    return _kind_of_dict(keys) or "a torch file of unknown content"
