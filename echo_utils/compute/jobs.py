"""A job: one unit of the study's work with a stable name, its own folder under the run directory, and a done marker.

A :class:`Job` names a module-level function (``"package.module:function"``), its JSON-serialisable keyword
arguments and what it needs (a GPU or not), so that it can run in this process, in a subprocess or on a Slurm node
alike. Its folder ``<run_dir>/jobs/<name>/`` holds:

``job.json``
    the spec (function, keyword arguments, key, resources), written when the job is planned; it is what
    ``python -m echo_utils.compute resubmit <folder>`` reads back.
``done.json``
    the marker, the artifact store's :class:`~echo_utils.artifacts.record.KeyedRecord` of the job
    (:func:`done_record`), written atomically after the function returned: the key it ran with (its settings
    field), the outputs it reported (paths relative to the run directory), the wall seconds. A job whose marker has
    the same key and whose outputs all exist is *done* and is never submitted again, so resubmitting a run after a
    preemption or a node failure redoes only what is missing. A marker with another key is stale: the job runs
    again (its cached steps guard their own settings); a damaged marker counts as absent.
``logs/``
    submitit's folder for the ``local`` and ``slurm`` backends: the pickled call and ``<id>_0_log.out`` / ``.err``.
``error.txt``
    the traceback of the last failure, on every backend.

The functions a job calls are the package's cached steps (registration training, pseudo-labels, nnU-Net training
and prediction), which are themselves resumable: a job interrupted mid-way continues from their checkpoints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..artifacts.atomic import write_json as _write_json
from ..artifacts.files import DONE_FILE, ERROR_FILE, JOB_FILE
from ..artifacts.read import DamagedFile
from ..artifacts.record import KeyedRecord

__all__ = [
    "Job",
    "JOB_KINDS",
    "GPU_KINDS",
    "job_key",
    "execute",
    "is_done",
    "read_marker",
    "done_record",
    "write_spec",
    "load_spec",
    "atomic_write_json",
    "log_tail",
]

#: The kinds of work in the study, in pipeline order (``compute.slurm.per_kind`` keys).
JOB_KINDS = ("dir_training", "pseudo_labels", "nnunet_prepare", "nnunet_training", "nnunet_prediction")
#: Kinds that want a GPU on a cluster (``nnunet_prepare`` exports NIfTI and plans: CPU only).
GPU_KINDS = frozenset({"dir_training", "pseudo_labels", "nnunet_training", "nnunet_prediction"})

#: where the study's job functions were until 2026-12-03 (their job.json files name it)
_EARLIER_MODULE = "echo_utils.compute.study"

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def job_key(fn: str, parts: Any) -> str:
    """A short stable hash of the function's name and the settings its result depends on (JSON-serialisable)."""
    blob = json.dumps([fn, parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Job:
    """One unit of work.

    Attributes
    ----------
    name : stable name, also the folder name (letters, digits, ``_ . -``), e.g. ``nnunet-train-2d_dense-fold0``.
    fn : ``"module:function"``; the function takes ``**kwargs`` and returns ``{"outputs": [paths]}`` (or None).
    kwargs : JSON-serialisable keyword arguments.
    kind : one of :data:`JOB_KINDS` (or any other label for ad-hoc jobs): selects the resources.
    run_dir : the run directory; the job's folder is ``run_dir/jobs/name``.
    key : what the result depends on (:func:`job_key`); a marker with another key is stale. Default: hash of
        ``fn`` and ``kwargs``.
    after : names of the jobs that must be done first (a Slurm dependency; listed by ``--dry-run``).
    """

    name: str
    fn: str
    kwargs: dict = field(default_factory=dict)
    kind: str = "task"
    run_dir: str = "."
    key: str = ""
    after: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.name or set(self.name) - _NAME_CHARS:
            raise ValueError(f"job name {self.name!r}: use letters, digits, '_', '.', '-' only")
        if ":" not in self.fn:
            raise ValueError(f"job {self.name}: fn must be 'module:function', got {self.fn!r}")
        if not self.key:
            object.__setattr__(self, "key", job_key(self.fn, self.kwargs))

    @property
    def folder(self) -> Path:
        """``<run_dir>/jobs/<name>``."""
        return Path(self.run_dir) / "jobs" / self.name

    @property
    def gpu(self) -> bool:
        """Whether the job asks for a GPU on a cluster."""
        return self.kind in GPU_KINDS

    def function(self) -> Callable[..., Any]:
        """Import and return the function ``fn`` names (a clear error if it does not exist)."""
        module, _, attr = self.fn.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"job {self.name}: cannot import {self.fn} ({exc})") from exc

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["after"] = list(self.after)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        return cls(**{**d, "after": tuple(d.get("after", ()))})


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` atomically (the run directory's one writer, :func:`echo_utils.artifacts.write_json`)."""
    _write_json(Path(path), obj, indent=2, sort_keys=True, default=str)


def write_spec(job: Job, extra: dict | None = None) -> Path:
    """Write ``job.json`` (the spec, plus ``extra`` such as the compute settings) into the job's folder."""
    path = job.folder / JOB_FILE
    atomic_write_json(path, {"job": job.to_dict(), **(extra or {})})
    return path


def load_spec(folder: str | Path) -> tuple[Job, dict]:
    """Read a job folder's ``job.json``: the :class:`Job` and the rest of the record."""
    path = Path(folder) / JOB_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: not a job folder")
    record = json.loads(path.read_text())
    job = Job.from_dict(record.pop("job"))
    if job.fn.startswith(_EARLIER_MODULE + ":"):
        raise ValueError(f"{path} was planned before the study's jobs took the study (their module was "
                         f"{_EARLIER_MODULE}); plan it again: rerun the notebooks or python -m echo_utils.run "
                         "--submit with the same profile (finished jobs stay done)")
    return job, record


def done_record(job: Job) -> KeyedRecord:
    """``<job folder>/done.json`` as a keyed record: the job's key under ``"key"``, written as
    ``json.dumps(indent=2, sort_keys=True)`` (the layout of every earlier marker)."""
    return KeyedRecord(job.folder / DONE_FILE, what=f"job {job.name}", field="key",
                       rebuild="delete it: the job runs again", indent=2, sort_keys=True)


def read_marker(job: Job) -> dict | None:
    """The job's ``done.json`` marker, or None (missing, unreadable or damaged: the job is not done)."""
    try:
        return done_record(job).read()
    except (DamagedFile, OSError):
        return None


def is_done(job: Job) -> bool:
    """True when the job's marker exists with the job's key and every output it recorded still exists."""
    marker = read_marker(job)
    if not marker or marker["key"] != job.key:  # absent, or stale (planned with other settings)
        return False
    root = Path(job.run_dir)
    return all((root / p).exists() for p in marker.get("outputs", []))


def _relative(path: str | Path, root: Path) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(root.resolve()))
    except ValueError:
        return str(path)


def execute(job: Job) -> dict:
    """Run ``job`` in this process and write its marker; the entry point on every backend.

    A job already done returns its marker without running. On an exception the traceback goes to ``error.txt``
    and the exception propagates (the backend reports the job as failed).
    """
    if is_done(job):
        return read_marker(job)
    job.folder.mkdir(parents=True, exist_ok=True)
    error = job.folder / ERROR_FILE
    error.unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        result = job.function()(**job.kwargs) or {}
        missing = [str(p) for p in result.get("outputs", []) if not Path(p).exists()]
        if missing:
            raise RuntimeError(f"job {job.name} returned outputs that do not exist: {missing}")
    except BaseException:
        error.write_text(traceback.format_exc())
        raise
    marker = {
        "name": job.name,
        "key": job.key,
        "fn": job.fn,
        "outputs": [_relative(p, Path(job.run_dir)) for p in result.get("outputs", [])],
        "seconds": round(time.perf_counter() - t0, 3),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return done_record(job).write(marker)


def log_tail(job: Job, lines: int = 25) -> str:
    """The last ``lines`` lines of the job's newest submitit output log and of its error: ``error.txt`` (the
    function's traceback) when there is one, else submitit's error log (a kill, a timeout, an out-of-memory)."""
    logs = sorted((job.folder / "logs").glob("*_log.*"), key=lambda p: p.stat().st_mtime)
    newest = {p.suffix: p for p in logs}
    error = job.folder / ERROR_FILE
    parts = []
    for path in [newest.get(".out"), error if error.is_file() else newest.get(".err")]:
        if path is not None and path.is_file():
            text = path.read_text(errors="replace").splitlines()
            if text:
                parts.append(f"--- {path} (last {min(lines, len(text))} of {len(text)} lines)")
                parts.extend(text[-lines:])
    return "\n".join(parts)
