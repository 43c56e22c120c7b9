"""Atomic writes: a reader sees the old file (or directory) or the new one, never a partial one.

Each writer fills a hidden temporary sibling in the destination's directory (same file system, so
the final rename is atomic) and renames it into place; on any error, ``KeyboardInterrupt``
included, the temporary is removed and the destination is left as it was. Temporary names start
with ``.`` and carry the process id and a random part, so concurrent writers never share one and
glob patterns such as ``*.parquet`` or ``step_*`` never match them. Torch-free (standard library).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path


def _unique() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` a hidden temporary file next to ``path``, then ``os.replace`` it onto ``path``.

    Creates the parent directories; returns ``path``. ``write`` receives the temporary path and must
    create that file (e.g. ``lambda p: torch.save(obj, p)``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{_unique()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """``path.write_text(text)`` atomically (see ``atomic_write``); returns ``path``."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory in a hidden temporary sibling (mode 0755), then move it into place at ``path``.

    ``with atomic_dir(d) as tmp: <write files into tmp>``. On a clean exit an existing ``path`` is
    replaced (moved aside, the new directory renamed in, the old one deleted); on an error the
    temporary is deleted and ``path`` is untouched. Creates the parent directories.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
        old = path.with_name(f".{path.name}.old-{_unique()}")
        if path.exists():
            path.rename(old)
        try:
            tmp.rename(path)
        except BaseException:
            if old.exists() and not path.exists():
                old.rename(path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
