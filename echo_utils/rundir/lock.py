"""One runner at a time: the run directory's lock, ``run.lock``.

:class:`RunLock` creates ``run.lock`` atomically (holder's PID, host, start time and command). A second runner gets
:class:`RunLocked` naming the holder; a lock whose process is gone on this host is stale and taken over with a note.
The runner exports its lock token (:data:`LOCK_ENV`) to the notebooks' kernels, which then know the lock is their own
runner's (:func:`assert_not_locked_by_other`).

>>> with RunLock("runs/ci"):                                  # doctest: +SKIP
...     run_the_notebooks()
"""

from __future__ import annotations

import json
import os
import socket
import sys
import uuid
from pathlib import Path

from ..artifacts.files import LOCK_FILE
from ..config import ConfigError, display_path
from .paths import utc_now, writes

__all__ = ["LOCK_ENV", "RunLocked", "RunLock", "lock_holder", "assert_not_locked_by_other"]

# The runner exports its lock token to the notebooks' kernels, which then know the lock is their own runner's.
LOCK_ENV = "ECHO_RUN_LOCK_TOKEN"


class RunLocked(ConfigError):
    """Another runner holds the run directory's lock: names its PID, host and start time."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def lock_holder(run_dir: str | Path) -> dict | None:
    """The holder recorded in ``run_dir/run.lock`` (``pid``, ``host``, ``started``, ``command``), or ``None``."""
    path = Path(run_dir) / LOCK_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, OSError):
        return {"pid": None, "host": None, "started": None, "command": None, "token": None}


def _is_stale(holder: dict) -> bool:
    """A lock is stale when it names a process of this host that no longer exists."""
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid)


def _locked_message(run_dir: Path, holder: dict) -> str:
    who = f"PID {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"
    cmd = holder.get("command")
    return (
        f"run directory {display_path(run_dir)} is in use by another runner ({who}"
        + (f": {cmd}" if cmd else "")
        + f"). Wait for it to finish or use another --run-dir; if that process is gone, delete "
        f"{display_path(run_dir / LOCK_FILE)}."
    )


class RunLock:
    """An exclusive, inter-process lock on a run directory (the file ``run.lock``).

    The lock file appears atomically with its content (written aside, then hard-linked into place, which fails
    if the file exists). Releasing removes it only if it is still ours. A lock whose process no longer exists on
    this host is stale and taken over (``log`` says so); a lock of another host is never broken.

    While held, the token is exported in ``ECHO_RUN_LOCK_TOKEN`` so that the runner's notebook kernels (which
    inherit the environment) can tell their own runner's lock from another's (:func:`assert_not_locked_by_other`).
    """

    def __init__(self, run_dir: str | Path, *, command: str | None = None, log=print):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.command = command if command is not None else " ".join(sys.argv)
        self.token = uuid.uuid4().hex
        self.log = log
        self._held = False

    def acquire(self) -> "RunLock":
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": utc_now(), "command": self.command,
                "token": self.token}
        tmp = self.path.with_name(f".{LOCK_FILE}.{self.token}.tmp")
        with writes(self.run_dir):  # a read-only or foreign run directory: one line, not a traceback
            self.run_dir.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(info, indent=2) + "\n")  # not atomic on purpose: published by os.link below
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)
                except FileExistsError:
                    holder = lock_holder(self.run_dir)
                    if holder is None:  # released in between: try again
                        continue
                    if not _is_stale(holder):
                        raise RunLocked(_locked_message(self.run_dir, holder)) from None
                    self.log(
                        f"note: removing the stale lock of PID {holder['pid']} (started {holder.get('started')}), "
                        "which no longer runs"
                    )
                    self.path.unlink(missing_ok=True)
                    continue
                self._held = True
                os.environ[LOCK_ENV] = self.token
                return self
            raise RunLocked(_locked_message(self.run_dir, lock_holder(self.run_dir) or {}))
        finally:
            tmp.unlink(missing_ok=True)

    def release(self) -> None:
        if not self._held:
            return
        holder = lock_holder(self.run_dir)
        if holder is not None and holder.get("token") == self.token:
            self.path.unlink(missing_ok=True)
        if os.environ.get(LOCK_ENV) == self.token:
            del os.environ[LOCK_ENV]
        self._held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def assert_not_locked_by_other(run_dir: str | Path) -> None:
    """Raise :class:`RunLocked` if a live runner other than ours (see :class:`RunLock`) holds ``run_dir``."""
    holder = lock_holder(run_dir)
    if holder is None or _is_stale(holder):
        return
    if holder.get("token") and holder.get("token") == os.environ.get(LOCK_ENV):
        return
    raise RunLocked(_locked_message(Path(run_dir), holder))
