"""Where a run directory is, the folders in it, and whether it can be written.

:func:`run_dir_path` names the directory (``runs/<profile name>`` by default), :func:`resolve_run_dir` makes or
requires it, :class:`RunPaths` names the sub-folders the notebooks exchange, and :func:`writable_problem` says,
without writing, why the directory cannot be written (a refused write becomes :class:`RunDirNotWritable`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import os
from pathlib import Path

from ..config import PROJECT_ROOT, ConfigError, display_path

__all__ = ["RunDirNotWritable", "writable_problem", "run_dir_path", "resolve_run_dir", "RunPaths"]


class RunDirNotWritable(ConfigError):
    """The run directory (or the folder it would be created in) cannot be written: names it and what to do."""


def not_writable_message(path: Path, reason: str) -> str:
    """The one line :class:`RunDirNotWritable` says: the directory, why, and how to run elsewhere."""
    return (f"run directory {display_path(path)} is not writable ({reason}): a run writes its lock, settings and "
            f"cache there. Copy it to a writable place and pass that with --run-dir (e.g. cp -r {display_path(path)} "
            f"runs/copy, then --run-dir runs/copy), or make it writable")


def writable_problem(run_dir: str | Path) -> str | None:
    """Why ``run_dir`` cannot be written (``"read-only file system"``, ``"no write permission ..."``), or ``None``.

    Checked without writing: ``os.access`` on the directory, or on the nearest existing folder above it when it does
    not exist yet (where it would be created). Used by ``--check``; :class:`RunLock` reports the same on failure.
    """
    path = Path(run_dir)
    while not path.exists() and path != path.parent:
        path = path.parent
    if path.exists() and not path.is_dir():
        return f"{display_path(path)} is a file"
    if os.access(path, os.W_OK | os.X_OK):
        return None
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        pass
    return f"no write permission for this user on {display_path(path)}"


@contextlib.contextmanager
def writes(run_dir: Path):
    """Turn a refused write into the run directory (read-only, no permission) into :class:`RunDirNotWritable`."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise RunDirNotWritable(not_writable_message(run_dir, (exc.strerror or str(exc)).lower())) from None
        raise


def utc_now() -> str:
    """Now, UTC, to the second (``2026-12-03T13:10:00Z``): when a lock was taken or a run recorded."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_dir_path(name: str, run_dir: str | Path | None = None) -> Path:
    """Absolute run directory: ``run_dir`` (relative to the working directory) or ``<project>/runs/<name>``.

    ``name`` is the profile's name (``cfg.name``).
    """
    path = Path(run_dir) if run_dir else PROJECT_ROOT / "runs" / name
    return path.expanduser().resolve()


def resolve_run_dir(name: str, run_dir: str | Path | None = None, *, create: bool = True) -> Path:
    """The run directory (:func:`run_dir_path` of the profile's ``name`` and ``run_dir``), made if missing.

    With ``create=False`` a missing directory is a :class:`ConfigError` (a notebook run alone must find the
    artifacts of the earlier notebooks).
    """
    path = run_dir_path(name, run_dir)
    if not path.exists():
        if not create:
            raise ConfigError(f"run directory {display_path(path)} does not exist; run the earlier notebooks first")
        with writes(path):
            path.mkdir(parents=True)
    elif not path.is_dir():
        raise ConfigError(f"run directory {display_path(path)} exists and is not a directory")
    return path


class RunPaths:
    """The sub-folders of a run directory that the notebooks exchange (the data flow in the reproducibility chapter)."""

    def __init__(self, run_dir: str | Path):
        self.root = Path(run_dir)

    @property
    def data(self) -> Path:
        """Synthetic cohort (CAMUS 2023 layout) and the written split file."""
        return self.root / "data"

    @property
    def registration(self) -> Path:
        """Registration checkpoints, cached by config hash, and their loss logs."""
        return self.root / "registration"

    @property
    def pseudo_labels(self) -> Path:
        """Pseudo-labels as NIfTI, one folder per registration method."""
        return self.root / "pseudo_labels"

    @property
    def nnunet(self) -> Path:
        """nnU-Net raw / preprocessed / results folders."""
        return self.root / "nnunet"

    @property
    def predictions(self) -> Path:
        """Segmentation predictions of every model on every test sequence."""
        return self.root / "predictions"

    @property
    def metrics(self) -> Path:
        """Tables (CSV) written by the notebooks."""
        return self.root / "metrics"

    @property
    def logs(self) -> Path:
        """What each notebook's kernel process printed outside its cells (C libraries, subprocesses, crashes)."""
        return self.root / "logs"
