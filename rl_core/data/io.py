"""Dataset storage and loaders; every loader returns a validated ``OfflineDataset``.

On disk, one directory per dataset (``data_root()/<task>/``): ``transitions.parquet`` (columns
``observations``/``next_observations``/``actions`` as fixed-size float32 lists, ``rewards`` float32,
``terminals``/``timeouts`` bool) and ``metadata.json``. ``save_dataset`` writes into a temporary
sibling directory and renames it into place, so a reader sees either the old or the new dataset,
never a partial one. Loading checks the row count and content fingerprint recorded in the metadata,
so a truncated or edited file fails with a ``DatasetError`` naming the file and field.

Foreign formats:
- D4RL HDF5 (v1/v2 keys ``observations, actions, rewards, terminals, timeouts[, next_observations]``).
  Without ``next_observations`` (v0-style files) the next observation is ``observations[i + 1]`` and
  the last step of each timed-out episode is dropped, as ``d4rl.qlearning_dataset`` does (after a
  terminal step that row belongs to the next episode; TD targets never use it).
- takuseno/d4rl-pybullet HDF5 (only ``observations, actions, rewards, terminals``); converted to D4RL
  semantics (reference ``datasets.md`` §2.3): row i stores the reward and done flag that *led to*
  ``observations[i]`` and each episode ends with a dummy row (final observation, zero action,
  terminal). So transition i of an episode is (obs_i, act_i, rewards[i + 1], obs_{i + 1}) with
  ``done = terminals[i + 1]``; a done on an episode of exactly ``max_episode_steps`` steps is the time
  limit (timeout, not terminal); a trailing episode without its dummy row is cut by the file (its
  last known transition is marked as a timeout).
- Minari (``minari:<dataset_id>``, local datasets only; needs ``pip install minari``): episodes
  (N + 1 observations, N actions) become transitions with ``terminations``/``truncations``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rl_core.data.dataset import FIELDS, OfflineDataset, compute_fingerprint
from rl_core.data.envs import TASK_ENVS
from rl_core.config import KNOWN_TASKS, TASK_LEVELS  # noqa: F401 (KNOWN_TASKS re-exported for the data CLI)
from rl_core.errors import DatasetError
from rl_core.fsutil import atomic_dir

LEVELS = TASK_LEVELS
PARQUET_FILE = "transitions.parquet"
META_FILE = "metadata.json"
_VECTOR_FIELDS = ("observations", "actions", "next_observations")


def data_root() -> Path:
    """``$MDPT_DATA`` if set, else ``$XDG_CACHE_HOME/mdpt/data`` (default ``~/.cache/mdpt/data``)."""
    if os.environ.get("MDPT_DATA"):
        return Path(os.environ["MDPT_DATA"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mdpt" / "data"


def split_task(task: str) -> tuple[str, str]:
    """``"hopper-medium-replay"`` -> ``("hopper", "medium-replay")``; DatasetError listing the known tasks."""
    if task not in KNOWN_TASKS:
        raise DatasetError(f"unknown task '{task}'; known tasks: {', '.join(KNOWN_TASKS)}")
    env, level = task.split("-", 1)
    return env, level


def make_command(task: str) -> str:
    return f"mdpt data make {task}"


# ----- Parquet + metadata.json ---------------------------------------------------------------
def save_dataset(ds: OfflineDataset, directory: Path) -> Path:
    """Write ``ds`` to ``directory`` atomically (temp dir + rename); returns ``directory``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = Path(directory)
    meta = dict(ds.metadata, n_transitions=ds.n_transitions, obs_dim=ds.obs_dim, act_dim=ds.act_dim,
                fingerprint=compute_fingerprint(ds))
    meta.pop("source", None)
    columns = {}
    for name in FIELDS:
        arr = getattr(ds, name)
        if name in _VECTOR_FIELDS:
            columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(arr.astype(np.float32).ravel()), arr.shape[1])
        else:
            columns[name] = pa.array(arr.astype(bool if name in ("terminals", "timeouts") else np.float32))
    with atomic_dir(directory) as tmp:
        pq.write_table(pa.table(columns), tmp / PARQUET_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
    return directory


def read_metadata(directory: Path) -> dict:
    """Parsed ``metadata.json`` of a dataset directory (DatasetError naming the file if unreadable)."""
    path = Path(directory) / META_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; {directory} is not a complete dataset directory") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable metadata ({exc})") from None


def load_parquet_dataset(directory: Path) -> OfflineDataset:
    """Load and fully validate a dataset directory written by ``save_dataset``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = Path(directory)
    meta = read_metadata(directory)
    path = directory / PARQUET_FILE
    redo = f"; regenerate it with `{make_command(meta['task'])}`" if meta.get("task") in KNOWN_TASKS else ""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"{path}: cannot read Parquet, the file is truncated or corrupt ({exc}){redo}") from None
    arrays = {}
    for name in FIELDS:
        if name not in table.column_names:
            raise DatasetError(f"{path}: field '{name}' is missing")
        col = table.column(name).combine_chunks()
        if col.null_count:
            raise DatasetError(f"{path}: field '{name}' has {col.null_count} null values")
        if name in _VECTOR_FIELDS:
            arrays[name] = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), -1)
        else:
            arrays[name] = col.to_numpy(zero_copy_only=False)
    n = meta.get("n_transitions")
    if n is not None and table.num_rows != n:
        raise DatasetError(f"{path}: {table.num_rows} rows but {META_FILE} says n_transitions={n}{redo}")
    ds = OfflineDataset(**arrays, metadata={**meta, "source": str(directory)})
    if meta.get("fingerprint") and compute_fingerprint(ds) != meta["fingerprint"]:
        raise DatasetError(f"{path}: content does not match the fingerprint in {META_FILE} "
                           f"({meta['fingerprint']}); the file was modified or corrupted{redo}")
    return ds


# ----- HDF5: D4RL and d4rl-pybullet --------------------------------------------------------------
def _task_from_filename(path: Path) -> dict:
    """Best-effort env/task from names like ``hopper-bullet-medium-v0.hdf5`` or ``hopper_medium-v2.hdf5``."""
    stem = path.stem.lower().replace("_", "-").replace("bullet-", "")
    for env, env_id in TASK_ENVS.items():
        if stem.startswith(env):
            level = stem[len(env) + 1:].rsplit("-v", 1)[0].replace("mixed", "medium-replay")
            return {"env_id": env_id, "task": f"{env}-{level}" if f"{env}-{level}" in KNOWN_TASKS else None}
    return {}


def load_hdf5_dataset(path: Path, max_episode_steps: int = 1000) -> OfflineDataset:
    """Load a D4RL or d4rl-pybullet HDF5 file; the layout is detected from its keys (module docstring)."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
            missing = {"observations", "actions", "rewards", "terminals"} - keys
            if missing:
                raise DatasetError(f"{path}: not a D4RL-style HDF5 file, missing keys {sorted(missing)} "
                                   f"(found {sorted(keys)})")
            raw = {k: np.asarray(f[k][()]) for k in ("observations", "actions", "rewards", "terminals",
                                                     "timeouts", "next_observations") if k in keys}
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read HDF5, the file is truncated or corrupt ({exc})") from None
    lengths = {k: len(v) for k, v in raw.items()}
    if len(set(lengths.values())) > 1:
        raise DatasetError(f"{path}: fields have mismatched lengths {lengths}")
    raw = {k: v.reshape(len(v)) if k in ("rewards", "terminals", "timeouts") else v for k, v in raw.items()}
    if "timeouts" in raw or "next_observations" in raw:
        layout, arrays = "d4rl", _from_d4rl(raw)
    else:
        layout, arrays = "d4rl-pybullet", _from_d4rl_pybullet(raw, max_episode_steps)
    meta = {"format": layout, "source": str(path), **_task_from_filename(path)}
    return OfflineDataset(**arrays, metadata=meta)


def _from_d4rl(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    obs, term = raw["observations"].astype(np.float32), raw["terminals"].astype(bool)
    tout = raw.get("timeouts", np.zeros(len(obs), bool)).astype(bool)
    if "next_observations" in raw:
        keep, nxt = np.ones(len(obs), bool), raw["next_observations"].astype(np.float32)
    else:  # d4rl.qlearning_dataset: next obs = obs[i + 1]; drop steps whose successor is unknown
        keep = ~tout
        keep[-1] = False
        nxt = np.concatenate([obs[1:], obs[-1:]])
    return {"observations": obs[keep], "actions": raw["actions"].astype(np.float32)[keep],
            "rewards": raw["rewards"].astype(np.float32)[keep], "next_observations": nxt[keep],
            "terminals": term[keep], "timeouts": tout[keep]}


def _from_d4rl_pybullet(raw: dict[str, np.ndarray], max_episode_steps: int) -> dict[str, np.ndarray]:
    obs, done = raw["observations"].astype(np.float32), raw["terminals"].astype(bool)
    n = len(obs)
    src = np.flatnonzero(~done[:-1])  # rows i with a successor row i + 1 in the same episode
    ends = np.flatnonzero(done)
    starts = np.concatenate([[0], ends[:-1] + 1])
    ep_len = np.zeros(n, np.int64)  # steps of the episode containing each dummy row
    ep_len[ends] = ends - starts
    nxt_done = done[src + 1]
    timeout = nxt_done & (ep_len[src + 1] == max_episode_steps)
    if n and not done[-1] and len(src):  # trailing episode cut by the file: its last transition is a cut
        timeout[-1] |= src[-1] == n - 2
    return {"observations": obs[src], "actions": raw["actions"].astype(np.float32)[src],
            "rewards": raw["rewards"].astype(np.float32)[src + 1], "next_observations": obs[src + 1],
            "terminals": nxt_done & ~timeout, "timeouts": timeout}


# ----- Minari ------------------------------------------------------------------------------------
def load_minari_dataset(dataset_id: str) -> OfflineDataset:
    """A local Minari dataset as transitions (``obs[:-1]``/``obs[1:]`` per episode, no download)."""
    try:
        import minari
    except ImportError:
        raise DatasetError(f"loading 'minari:{dataset_id}' needs the minari package: pip install minari") from None
    try:
        mds = minari.load_dataset(dataset_id)
    except (FileNotFoundError, ValueError) as exc:
        raise DatasetError(f"minari dataset '{dataset_id}' is not available locally ({exc}); "
                           f"see `minari list local`") from None
    parts: dict[str, list[np.ndarray]] = {k: [] for k in FIELDS}
    for ep in mds.iterate_episodes():
        o = np.asarray(ep.observations, np.float32)
        if o.ndim != 2:
            raise DatasetError(f"minari:{dataset_id}: field 'observations' must be a flat Box, got shape {o.shape}")
        parts["observations"].append(o[:-1])
        parts["next_observations"].append(o[1:])
        parts["actions"].append(np.asarray(ep.actions, np.float32))
        parts["rewards"].append(np.asarray(ep.rewards, np.float32))
        parts["terminals"].append(np.asarray(ep.terminations, bool))
        parts["timeouts"].append(np.asarray(ep.truncations, bool))
    meta: dict[str, Any] = {"format": "minari", "source": f"minari:{dataset_id}", "minari_id": dataset_id}
    for key in ("ref_min_score", "ref_max_score"):
        if mds.storage.metadata.get(key) is not None:
            meta[key] = float(mds.storage.metadata[key])
    if mds.spec.env_spec is not None:
        meta["env_id"] = mds.spec.env_spec.id
    return OfflineDataset(**{k: np.concatenate(v) for k, v in parts.items()}, metadata=meta)


# ----- entry point -------------------------------------------------------------------------------
def load_dataset(name_or_path: str, root: Path | None = None) -> OfflineDataset:
    """Load a task by name (under ``root`` or ``data_root()``), a dataset directory, an HDF5 file or
    ``minari:<dataset_id>``. A known task that is not generated yet raises a DatasetError naming the
    ``mdpt data make`` command; an unknown name lists the known tasks."""
    name = str(name_or_path)
    if name.startswith("minari:"):
        return load_minari_dataset(name.split(":", 1)[1])
    path = Path(name).expanduser()
    if name in KNOWN_TASKS:
        directory = Path(root or data_root()) / name
        if not (directory / META_FILE).exists():
            raise DatasetError(f"dataset '{name}' not found in {directory.parent}; create it with "
                               f"`{make_command(name)}`")
        return load_parquet_dataset(directory)
    if path.is_dir():
        return load_parquet_dataset(path)
    if path.is_file() and path.suffix in (".hdf5", ".h5"):
        return load_hdf5_dataset(path)
    if path.exists():
        raise DatasetError(f"{path}: not a dataset (expected a dataset directory or a .hdf5/.h5 file)")
    if os.sep in name or path.suffix:
        raise DatasetError(f"{path}: no such dataset file or directory")
    raise DatasetError(f"unknown task '{name}'; known tasks: {', '.join(KNOWN_TASKS)}")
