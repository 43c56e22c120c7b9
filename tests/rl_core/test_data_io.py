"""Dataset storage and loaders: bit-exact Parquet, HDF5 layouts, and every user-facing error."""

import json

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rl_core.data.dataset import FIELDS, OfflineDataset
from rl_core.data.envs import make_env
from rl_core.data.io import KNOWN_TASKS, data_root, load_dataset, load_hdf5_dataset, save_dataset
from rl_core.errors import DatasetError

MAX_STEPS = 25  # a short time limit so random Hopper episodes both terminate and time out


@pytest.fixture(scope="module")
def real_ds() -> OfflineDataset:
    """Random-action Hopper episodes with a 25-step limit, recorded with D4RL-v2 semantics."""
    env = make_env("hopper", max_episode_steps=MAX_STEPS)
    rng = np.random.default_rng(0)
    buf = {k: [] for k in FIELDS}
    for ep in range(12):
        obs, _ = env.reset(seed=ep)
        done = False
        while not done:
            a = rng.uniform(-1, 1, 3).astype(np.float32) * (0.3 if ep % 2 else 1.0)
            nxt, r, term, trunc, _ = env.step(a)
            for k, v in zip(FIELDS, (obs, a, r, nxt, term, trunc and not term)):
                buf[k].append(v)
            obs, done = nxt, term or trunc
    arrays = {k: np.asarray(v, bool if k in ("terminals", "timeouts") else np.float32) for k, v in buf.items()}
    ds = OfflineDataset(**arrays, metadata={"env_id": "HopperBulletEnv-v0", "task": "hopper-random",
                                            "ref_min_score": 20.0, "ref_max_score": 2520.0})
    assert ds.terminals.any() and ds.timeouts.any()
    return ds


def write_d4rl(path, ds: OfflineDataset) -> None:
    with h5py.File(path, "w") as f:
        for k in FIELDS:
            f[k] = getattr(ds, k)


def write_d4rl_pybullet(path, ds: OfflineDataset, cut_last: bool = False) -> None:
    """takuseno/d4rl-pybullet layout: rows store the reward/done that led to the row's observation,
    one dummy row (final obs, zero action, done) per episode, time limits stored as terminals."""
    rows = {"observations": [], "actions": [], "rewards": [], "terminals": []}
    ends = ds.episode_ends()
    start = 0
    for end in ends:
        prev_r = 0.0
        for i in range(start, end + 1):
            for k, v in zip(rows, (ds.observations[i], ds.actions[i], prev_r, 0.0)):
                rows[k].append(v)
            prev_r = ds.rewards[i]
        for k, v in zip(rows, (ds.next_observations[end], np.zeros(ds.act_dim), prev_r, 1.0)):
            rows[k].append(v)
        start = end + 1
    if cut_last:  # `buffer[:final_step]`: the last episode loses its dummy row
        rows = {k: v[:-1] for k, v in rows.items()}
    with h5py.File(path, "w") as f:
        for k, v in rows.items():
            arr = np.asarray(v, np.float32)
            f[k] = arr.reshape(len(arr), -1) if k in ("rewards", "terminals") else arr


def assert_same(a: OfflineDataset, b: OfflineDataset) -> None:
    for k in FIELDS:
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype, k
        np.testing.assert_array_equal(x, y, err_msg=k)


def test_parquet_round_trip_is_bit_exact(real_ds, tmp_path):
    out = save_dataset(real_ds, tmp_path / "hopper-random")
    back = load_dataset(str(out))
    assert_same(real_ds, back)
    assert back.fingerprint == real_ds.fingerprint and back.n_transitions == real_ds.n_transitions
    assert back.ref_max_score == 2520.0 and back.env_id == "HopperBulletEnv-v0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hopper-random"]  # no temp dirs left


def test_task_name_resolves_under_root_and_mdpt_data(real_ds, tmp_path, monkeypatch):
    save_dataset(real_ds, tmp_path / "hopper-random")
    assert_same(real_ds, load_dataset("hopper-random", root=tmp_path))
    monkeypatch.setenv("MDPT_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert load_dataset("hopper-random").fingerprint == real_ds.fingerprint


def test_hdf5_d4rl_and_d4rl_pybullet_layouts_load_to_the_same_transitions(real_ds, tmp_path):
    write_d4rl(tmp_path / "hopper_random-v2.hdf5", real_ds)
    write_d4rl_pybullet(tmp_path / "hopper-bullet-random-v0.hdf5", real_ds)
    d4rl = load_hdf5_dataset(tmp_path / "hopper_random-v2.hdf5", max_episode_steps=MAX_STEPS)
    pyb = load_hdf5_dataset(tmp_path / "hopper-bullet-random-v0.hdf5", max_episode_steps=MAX_STEPS)
    assert d4rl.metadata["format"] == "d4rl" and pyb.metadata["format"] == "d4rl-pybullet"
    assert pyb.metadata["task"] == "hopper-bullet-random-v0"  # its own name (env and scores: load_dataset)
    assert_same(real_ds, d4rl)
    assert_same(real_ds, pyb)  # shifted rewards, dummy rows and timeouts-as-terminals undone


def test_d4rl_pybullet_file_cut_mid_episode(real_ds, tmp_path):
    write_d4rl_pybullet(tmp_path / "cut.hdf5", real_ds, cut_last=True)
    ds = load_hdf5_dataset(tmp_path / "cut.hdf5", max_episode_steps=MAX_STEPS)
    n = real_ds.n_transitions - 1  # the last step's reward was in the dropped dummy row
    for k in ("observations", "actions", "rewards", "next_observations"):
        np.testing.assert_array_equal(getattr(ds, k), getattr(real_ds, k)[:n])
    assert ds.timeouts[-1] and not ds.terminals[-1]


def test_d4rl_without_next_observations_drops_unknown_successors(real_ds, tmp_path):
    with h5py.File(tmp_path / "v0.hdf5", "w") as f:
        for k in ("observations", "actions", "rewards", "terminals", "timeouts"):
            f[k] = getattr(real_ds, k)
    ds = load_dataset(str(tmp_path / "v0.hdf5"), env="hopper", ref_min=0.0, ref_max=1.0)
    keep = ~real_ds.timeouts
    keep[-1] = False
    np.testing.assert_array_equal(ds.observations, real_ds.observations[keep])
    np.testing.assert_array_equal(ds.terminals, real_ds.terminals[keep])
    live = ~ds.terminals  # after a terminal step the next row starts a new episode (unused by TD targets)
    np.testing.assert_array_equal(ds.next_observations[live], real_ds.next_observations[keep][live])


def test_normalized_score(real_ds):
    np.testing.assert_allclose(real_ds.normalized_score([20.0, 2520.0, 1270.0]), [0.0, 100.0, 50.0])


# ----- errors ------------------------------------------------------------------------------------
def test_unknown_task_lists_known_tasks(tmp_path):
    with pytest.raises(DatasetError, match="unknown task 'hopper-mediocre'.*hopper-medium-replay"):
        load_dataset("hopper-mediocre", root=tmp_path)
    assert len(KNOWN_TASKS) == 20 and "ant-medium-expert" in KNOWN_TASKS


def test_missing_dataset_names_make_command(tmp_path):
    with pytest.raises(DatasetError, match="`mdpt data make walker2d-expert`"):
        load_dataset("walker2d-expert", root=tmp_path)


def test_truncated_parquet_names_file_and_command(real_ds, tmp_path):
    out = save_dataset(real_ds, tmp_path / "hopper-random")
    f = out / "transitions.parquet"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"transitions\.parquet: cannot read Parquet.*mdpt data make hopper-random"):
        load_dataset("hopper-random", root=tmp_path)


def _rewrite(out, **changes) -> None:
    table = pq.read_table(out / "transitions.parquet")
    for name, arr in changes.items():
        table = table.set_column(table.column_names.index(name), name, arr)
    pq.write_table(table, out / "transitions.parquet")


def test_nan_in_parquet_names_field_and_row(real_ds, tmp_path):
    out = save_dataset(real_ds, tmp_path / "d")
    rew = real_ds.rewards.copy()
    rew[5] = np.nan
    _rewrite(out, rewards=pa.array(rew))
    with pytest.raises(DatasetError, match=r"field 'rewards' has NaN/inf values \(first at row 5\)"):
        load_dataset(str(out))


def test_rows_missing_or_edited_are_detected(real_ds, tmp_path):
    out = save_dataset(real_ds, tmp_path / "d")
    pq.write_table(pq.read_table(out / "transitions.parquet").slice(0, 10), out / "transitions.parquet")
    with pytest.raises(DatasetError, match="10 rows but metadata.json says n_transitions"):
        load_dataset(str(out))
    out = save_dataset(real_ds, tmp_path / "d")
    _rewrite(out, rewards=pa.array(real_ds.rewards + np.float32(1.0)))
    with pytest.raises(DatasetError, match="does not match the fingerprint"):
        load_dataset(str(out))


def test_hdf5_mismatched_lengths_and_corrupt_file(real_ds, tmp_path):
    with h5py.File(tmp_path / "bad.hdf5", "w") as f:
        for k in FIELDS:
            f[k] = getattr(real_ds, k)[:-3] if k == "rewards" else getattr(real_ds, k)
    with pytest.raises(DatasetError, match=r"bad\.hdf5: fields have mismatched lengths.*'rewards'"):
        load_dataset(str(tmp_path / "bad.hdf5"))
    (tmp_path / "junk.hdf5").write_bytes(b"not an hdf5 file at all")
    with pytest.raises(DatasetError, match=r"junk\.hdf5: cannot read HDF5"):
        load_dataset(str(tmp_path / "junk.hdf5"))


def test_corrupt_metadata_is_reported(real_ds, tmp_path):
    out = save_dataset(real_ds, tmp_path / "d")
    (out / "metadata.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"metadata\.json: unreadable metadata"):
        load_dataset(str(out))


def test_failed_save_keeps_previous_dataset(real_ds, tmp_path, monkeypatch):
    out = save_dataset(real_ds, tmp_path / "d")

    def boom(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(KeyboardInterrupt):
        save_dataset(OfflineDataset(**{k: getattr(real_ds, k)[:5] for k in FIELDS}), out)
    assert [p.name for p in tmp_path.iterdir()] == ["d"]
    assert json.loads((out / "metadata.json").read_text())["n_transitions"] == real_ds.n_transitions


def test_minari(tmp_path):
    try:
        import minari  # noqa: F401
    except ImportError:
        with pytest.raises(DatasetError, match="pip install minari"):
            load_dataset("minari:pybullet/hopper/medium-v0")
        return
    with pytest.raises(DatasetError, match="not available locally"):
        load_dataset("minari:mdpt-test/definitely-missing-v0")
