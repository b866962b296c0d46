"""The one atomic writer of the run directory: a file is either its old content or its whole new content.

Every write goes to a temporary file in the **same folder** (a rename across file systems is not atomic), is
flushed to disk (``os.fsync``), and only then replaces the target with ``os.replace`` (atomic on POSIX and
Windows).  A crash (an exception, a killed process, a full disk) before the replace leaves the old file as it was;
at worst a hidden ``.<name>.<token>.tmp<suffixes>`` file stays behind, which no reader looks at.

:func:`atomic_path` is the mechanism, for writers that want a path (``nibabel.save``, ``SimpleITK.WriteImage``:
the temporary name keeps the target's suffixes, ``.nii.gz`` included, so they pick the same format);
:func:`write_bytes`, :func:`write_text` and :func:`write_json` are built on it.  A writer that records the file's
*name* inside the file must not get the random temporary name: ``torch.save`` names its zip archive's root after
the file, so a checkpoint is serialised to memory and written with :func:`write_bytes` (the same training then
writes the same bytes).

>>> write_json(run_dir / "params.json", {"seed": 0}, indent=2)   # doctest: +SKIP
>>> buf = io.BytesIO(); torch.save(state, buf)                   # doctest: +SKIP
>>> write_bytes(run_dir / "model.pt", buf.getvalue())            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_path", "write_bytes", "write_text", "write_json", "temporary_name"]


def temporary_name(path: Path) -> Path:
    """A fresh hidden name beside ``path`` that keeps its suffixes: ``a/x.nii.gz`` -> ``a/.x.<hex>.tmp.nii.gz``."""
    name = path.name
    dot = name.find(".", 1)  # a leading dot is part of the stem
    stem, suffixes = (name, "") if dot < 0 else (name[:dot], name[dot:])
    return path.with_name(f".{stem.lstrip('.')}.{uuid.uuid4().hex[:12]}.tmp{suffixes}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; a platform without directory handles (Windows) skips it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; on a clean exit it is fsynced and replaces ``path``.

    The folder is created when missing.  On an exception inside the block the temporary file is removed and
    ``path`` is untouched; a block that writes nothing is an error (``FileNotFoundError`` naming the target), so a
    writer that silently failed cannot replace a good file with nothing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written for {path} (expected the temporary file {tmp.name})")
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_folder(path.parent)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(
    path: str | Path,
    obj: Any,
    *,
    indent: int | None = 2,
    sort_keys: bool = True,
    newline: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> Path:
    """``json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default)`` (+ ``"\\n"`` with ``newline``)
    written to ``path`` atomically; returns ``path``.  The layout options are part of a file's on-disk format:
    each record keeps the ones it was first written with, so its bytes do not change."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default)
    return write_text(path, text + ("\n" if newline else ""))
