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


UNKNOWN_KINDS = ("not a torch file", "a torch file of unknown content")


def load_expected(path: Path, expected: str, error: type[Exception], what: str) -> dict:
    """``torch.load`` (weights only) of a file that should be ``expected`` (`SNAPSHOT`, `ARTIFACT`), loaded once:
    a payload of another known kind, or a file torch cannot load that `describe` names, raises ``error``
    saying in one line what the file is; any other unreadable file raises ``error`` as corrupt (``what``
    names the expected kind in that message)."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - judge the file without loading it again, then one line
        kind = describe(path)
        if kind != expected and kind not in UNKNOWN_KINDS:
            raise error(f"{path} is {kind}, not {expected}") from None
        first = str(e).splitlines()[0] if str(e) else ""
        raise error(f"{what} {path} is corrupt or not a {what} ({type(e).__name__}: {first})") from e
    kind = _kind_of_dict({k for k in payload if isinstance(k, str)}) if isinstance(payload, dict) else None
    if kind is not None and kind != expected:
        raise error(f"{path} is {kind}, not {expected}")
    if not isinstance(payload, dict):
        raise error(f"{what} {path} is corrupt or not a {what} (a torch file holding {type(payload).__name__})")
    return payload
