"""Atomic file and directory writes: replace on success, old content and no leftovers on failure."""

import stat

import pytest

from rl_core.fsutil import atomic_dir, atomic_write, atomic_write_text


def test_atomic_write_creates_and_replaces_without_leftovers(tmp_path):
    path = tmp_path / "sub" / "best.json"
    assert atomic_write_text(path, "one") == path and path.read_text() == "one"  # parents created
    seen = []
    atomic_write(path, lambda tmp: (seen.append(tmp), tmp.write_bytes(b"two")))
    assert path.read_bytes() == b"two"
    assert seen[0].parent == path.parent and seen[0].name.startswith(".best.json.") and seen[0].suffix == ".tmp"
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.json"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    path = atomic_write_text(tmp_path / "f.txt", "old")

    def fail(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_dir_replaces_a_directory_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / "root" / "hopper-medium"
    with atomic_dir(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".hopper-medium.tmp-") and not target.exists()
        (tmp / "a").write_text("1")
    assert [p.name for p in target.iterdir()] == ["a"] and stat.S_IMODE(target.stat().st_mode) == 0o755
    with atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
    assert [p.name for p in target.iterdir()] == ["b"]  # replaced, not merged
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "c").write_text("3")
            raise RuntimeError("interrupted")
    assert [p.name for p in target.iterdir()] == ["b"]
    assert [p.name for p in target.parent.iterdir()] == ["hopper-medium"]  # no hidden temp or old dirs
