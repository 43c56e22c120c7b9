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
- A bare ``.parquet`` file with the columns above (no ``metadata.json``).

Environment and reference scores of a foreign dataset (``resolve_env_and_refs``), first found wins:
- env: the ``env=`` argument (``--env``), the sidecar JSON ``<file>.json`` next to the file (keys
  ``env_id``, ``ref_min_score``, ``ref_max_score``), the dataset's own metadata (Minari's env spec,
  an mdpt ``metadata.json``), the file name (D4RL's ``bullet-hopper-medium-v0``, d4rl-pybullet's
  ``hopper-bullet-mixed-v0``; the name must start with or contain ``bullet-<env>``/``<env>-bullet``,
  or start with ``<env>-``). None of these -> a ``DatasetError`` at load, before any training.
  The observation / action sizes must match the env's.
- reference scores: ``ref_min=`` / ``ref_max=`` (``--ref-min/--ref-max``), the sidecar, the
  dataset's own metadata, else D4RL's bullet reference scores for the env
  (``rl_core.config.D4RL_BULLET_REF_SCORES``, with a ``ReferenceScoreWarning`` unless the file is one
  of D4RL's own ``bullet-*`` datasets, whose scores they are). ``metadata["ref_source"]`` says which.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from rl_core.config import D4RL_BULLET_REF_SCORES, KNOWN_TASKS, TASK_LEVELS
from rl_core.data.dataset import FIELDS, OfflineDataset, compute_fingerprint
from rl_core.data.envs import ENV_DIMS, TASK_ENVS
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


def _read_parquet(path: Path, redo: str = "") -> tuple[dict[str, np.ndarray], int]:
    """Arrays (FIELDS) of an mdpt ``transitions.parquet`` file and its row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

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
    return arrays, table.num_rows


def load_parquet_dataset(directory: Path) -> OfflineDataset:
    """Load and fully validate a dataset directory written by ``save_dataset``."""
    directory = Path(directory)
    meta = read_metadata(directory)
    path = directory / PARQUET_FILE
    redo = f"; regenerate it with `{make_command(meta['task'])}`" if meta.get("task") in KNOWN_TASKS else ""
    arrays, rows = _read_parquet(path, redo)
    n = meta.get("n_transitions")
    if n is not None and rows != n:
        raise DatasetError(f"{path}: {rows} rows but {META_FILE} says n_transitions={n}{redo}")
    ds = OfflineDataset(**arrays, metadata={**meta, "source": str(directory)})
    if meta.get("fingerprint") and compute_fingerprint(ds) != meta["fingerprint"]:
        raise DatasetError(f"{path}: content does not match the fingerprint in {META_FILE} "
                           f"({meta['fingerprint']}); the file was modified or corrupted{redo}")
    return ds


def load_parquet_file(path: Path) -> OfflineDataset:
    """A bare Parquet file with the columns of ``transitions.parquet`` (module docstring)."""
    path = Path(path)
    arrays, _ = _read_parquet(path)
    return OfflineDataset(**arrays, metadata={"format": "parquet", "source": str(path), "task": path.stem})


# ----- HDF5: D4RL and d4rl-pybullet --------------------------------------------------------------
def _env_from_filename(path: Path) -> dict:
    """env (and whether the name is one of D4RL's own bullet datasets) from names like
    ``bullet-hopper-medium-v0.hdf5`` (D4RL), ``hopper-bullet-mixed-v0.hdf5`` (d4rl-pybullet) or ``hopper-*``."""
    stem = path.name.split(".")[0].lower().replace("_", "-")
    for env, env_id in TASK_ENVS.items():
        if re.match(rf"bullet-{env}-", stem):
            return {"env_id": env_id, "d4rl_bullet": True}
        if stem.startswith(f"{env}-") or f"{env}-bullet" in stem:
            return {"env_id": env_id}
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
    meta = {"format": layout, "source": str(path), "task": path.stem}
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
        term = np.asarray(ep.terminations, bool)
        parts["terminals"].append(term)
        parts["timeouts"].append(np.asarray(ep.truncations, bool) & ~term)  # D4RL: a timeout is not a termination
    meta: dict[str, Any] = {"format": "minari", "source": f"minari:{dataset_id}", "minari_id": dataset_id,
                            "task": f"minari:{dataset_id}"}
    for key in ("ref_min_score", "ref_max_score"):
        if mds.storage.metadata.get(key) is not None:
            meta[key] = float(mds.storage.metadata[key])
    if mds.spec.env_spec is not None:
        meta["env_id"] = mds.spec.env_spec.id
    return OfflineDataset(**{k: np.concatenate(v) for k, v in parts.items()}, metadata=meta)


# ----- env and reference scores of foreign datasets ----------------------------------------------
class ReferenceScoreWarning(UserWarning):
    """A dataset without reference scores is scored on D4RL's bullet reference scores for its env."""


def sidecar_path(source: str) -> Path | None:
    """``<file>.json`` next to a dataset file; None for Minari ids and directories (they have metadata)."""
    if source.startswith("minari:") or Path(source).is_dir():
        return None
    return Path(source + ".json")


def _read_sidecar(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable sidecar JSON ({exc})") from None
    allowed = {"env_id", "ref_min_score", "ref_max_score"}
    if not isinstance(data, dict) or set(data) - allowed:
        raise DatasetError(f"{path}: sidecar must be a JSON object with keys {sorted(allowed)}")
    return data


def missing_env_message(source: str) -> str:
    side = sidecar_path(source)
    how = f"`mdpt data import {source} --env ENV --name NAME`"
    side_hint = f", or write {side} with {{\"env_id\": \"HopperBulletEnv-v0\"}}" if side else ""
    return (f"{source}: cannot tell which environment this dataset comes from (nothing in its name, metadata"
            f"{' or sidecar' if side else ''} says); give it with {how} (ENV: {', '.join(TASK_ENVS)}){side_hint}")


def resolve_env_and_refs(ds: OfflineDataset, *, env: str | None = None, ref_min: float | None = None,
                         ref_max: float | None = None, require_env: bool = True) -> OfflineDataset:
    """Fill ``env_id``, ``ref_min_score``/``ref_max_score`` and ``ref_source`` of a loaded dataset
    (module docstring for the order); DatasetError when the env cannot be known (``require_env``) or
    does not fit the data. Returns ``ds`` (its metadata updated)."""
    from rl_core.data.envs import env_id_for

    meta = ds.metadata
    source = str(meta.get("source", "<in memory>"))
    if (ref_min is None) != (ref_max is None):
        raise DatasetError(f"{source}: give both --ref-min and --ref-max, or neither")
    side_path = sidecar_path(source) if meta.get("format") != "mdpt-parquet" else None
    side = _read_sidecar(side_path)
    named = _env_from_filename(Path(source)) if meta.get("format") in ("d4rl", "d4rl-pybullet", "parquet") else {}
    for origin, value in (("--env", env), (str(side_path), side.get("env_id")), ("metadata", meta.get("env_id")),
                          ("file name", named.get("env_id"))):
        if value:
            try:
                meta["env_id"] = env_id_for(str(value))
            except DatasetError as exc:
                raise DatasetError(f"{source}: {origin} names {exc}") from None
            meta["env_source"] = meta.get("env_source", origin) if origin == "metadata" else origin
            break
    else:
        if require_env:
            raise DatasetError(missing_env_message(source))
        return ds
    want = ENV_DIMS[meta["env_id"]]
    if (ds.obs_dim, ds.act_dim) != want:
        raise DatasetError(f"{source}: observations/actions have sizes {ds.obs_dim}/{ds.act_dim}, but "
                           f"{meta['env_id']} has {want[0]}/{want[1]} ({meta['env_source']}); is --env right?")
    d4rl = D4RL_BULLET_REF_SCORES[meta["env_id"]]
    for origin, lo, hi in (("--ref-min/--ref-max", ref_min, ref_max),
                           (str(side_path), side.get("ref_min_score"), side.get("ref_max_score")),
                           (meta.get("ref_source") or "dataset metadata", meta.get("ref_min_score"),
                            meta.get("ref_max_score"))):
        if lo is not None and hi is not None:
            meta.update(ref_min_score=float(lo), ref_max_score=float(hi), ref_source=origin)
            return ds
    if named.get("d4rl_bullet"):
        meta.update(ref_min_score=d4rl[0], ref_max_score=d4rl[1],
                    ref_source=f"D4RL's bullet reference scores of this D4RL dataset ({meta['env_id']})")
        return ds
    meta.update(ref_min_score=d4rl[0], ref_max_score=d4rl[1],
                ref_source=f"D4RL's bullet reference scores for {meta['env_id']} (the dataset has none of its own)")
    warnings.warn(f"{source} has no reference scores: normalized scores use D4RL's bullet reference scores for "
                  f"{meta['env_id']} ({d4rl[0]:.1f}, {d4rl[1]:.1f}); give your own with --ref-min/--ref-max or "
                  "a sidecar JSON", ReferenceScoreWarning, stacklevel=2)
    return ds


# ----- entry point -------------------------------------------------------------------------------
def _load_raw(name: str, root: Path | None) -> OfflineDataset:
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
    if path.is_file() and path.suffix == ".parquet":
        return load_parquet_file(path)
    if path.exists():
        raise DatasetError(f"{path}: not a dataset (expected a dataset directory, a .hdf5/.h5 or .parquet file, "
                           "or minari:<dataset_id>)")
    named = Path(root or data_root()) / name
    if not path.is_absolute() and (named / META_FILE).exists():  # an imported dataset's name
        return load_parquet_dataset(named)
    if os.sep in name or path.suffix:
        raise DatasetError(f"{path}: no such dataset file or directory")
    raise DatasetError(f"unknown task '{name}'; known tasks: {', '.join(KNOWN_TASKS)}; or a dataset imported "
                       f"with `mdpt data import` under {Path(root or data_root())}")


def load_dataset(name_or_path: str, root: Path | None = None, *, env: str | None = None,
                 ref_min: float | None = None, ref_max: float | None = None,
                 require_env: bool = True) -> OfflineDataset:
    """Load a task by name (under ``root`` or ``data_root()``), the name of a dataset imported there, a
    dataset directory, an HDF5 or Parquet file, or ``minari:<dataset_id>``, with its env and reference
    scores resolved (``resolve_env_and_refs``). A known task that is not generated yet raises a
    DatasetError naming the ``mdpt data make`` command; an unknown name lists the known tasks."""
    ds = _load_raw(str(name_or_path), root)
    return resolve_env_and_refs(ds, env=env, ref_min=ref_min, ref_max=ref_max, require_env=require_env)


def import_dataset(source: str, name: str, root: Path | None = None, *, env: str | None = None,
                   ref_min: float | None = None, ref_max: float | None = None) -> Path:
    """Write ``source`` (anything ``load_dataset`` reads) as the dataset ``<root>/<name>/``, with its env and
    reference scores, so that ``name`` is a task name everywhere; returns the directory."""
    if name in KNOWN_TASKS:
        raise DatasetError(f"--name {name}: that is a generated task's name; choose another")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise DatasetError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (a directory name)")
    ds = load_dataset(source, root, env=env, ref_min=ref_min, ref_max=ref_max)
    rets = ds.episode_returns()
    ds.metadata.update(task=name, imported_from=str(ds.metadata.get("source", source)),
                       imported_format=ds.metadata.get("format"), format="mdpt-parquet",
                       n_episodes=int(len(rets)), return_mean=float(rets.mean()))
    return save_dataset(ds, Path(root or data_root()) / name)
