"""The run directory: its folders, the settings it was made with (``run.json``) and the lock of its runner.

:class:`RunPaths` names the sub-folders the notebooks exchange, :func:`resolve_run_dir` decides the directory, and
:func:`open_run` checks a profile against its run directory (what :func:`echo_utils.study.open_study` builds the
study on). A run directory
caches every expensive step, keyed by settings. Two things keep it consistent:

* **Recorded settings.** The first run writes ``run.json`` with the resolved profile and its hash. Every later
  run (the runner, or a notebook opened by hand) compares its own resolved profile with it *before writing
  anything*; a difference is a :class:`SettingsMismatch` that names the differing keys and suggests another
  ``--run-dir``. Keys that change only the speed (:data:`RUNTIME_KEYS`) are recorded but not compared.
* **One runner at a time.** :class:`RunLock` creates ``run.lock`` atomically (holder's PID, host, start time and
  command). A second runner gets :class:`RunLocked` naming the holder; a lock whose process is gone on this host
  is stale and taken over with a note.

>>> with RunLock("runs/ci"):                                  # doctest: +SKIP
...     check_settings("runs/ci", cfg, record=True)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import shlex
import socket
import sys
import uuid
from pathlib import Path

from .artifacts.files import LOCK_FILE, SETTINGS_FILE
from .artifacts.read import DamagedFile
from .artifacts.record import KeyedRecord, RecordMismatch, flatten_settings
from .config import (
    PROJECT_ROOT,
    ConfigError,
    StudyConfig,
    deep_merge,
    config_hash,
    display_path,
    load_config,
    parse_overrides,
    resolve_params_path,
)

__all__ = [
    "SETTINGS_FILE",
    "LOCK_FILE",
    "RUNTIME_KEYS",
    "SettingsMismatch",
    "RunLocked",
    "RunDirNotWritable",
    "writable_problem",
    "settings_record",
    "settings_diff",
    "check_settings",
    "RunLock",
    "lock_holder",
    "read_settings",
    "assert_not_locked_by_other",
    "LOCK_ENV",
    "RunPaths",
    "resolve_run_dir",
    "run_dir_path",
    "open_run",
    "load_profile",
    "open_run_dir",
    "resume_command",
]

# SETTINGS_FILE ("run.json") and LOCK_FILE ("run.lock") are named with every other file in echo_utils.artifacts.files.
# The runner exports its lock token to the notebooks' kernels, which then know the lock is their own runner's.
LOCK_ENV = "ECHO_RUN_LOCK_TOKEN"
# Profile keys that change how fast a run goes, not what it computes: recorded, never compared.
RUNTIME_KEYS = frozenset({"nnunet.threads", "nnunet.pools", "nnunet.n_proc", "registration.threads"})
# Whole sections that only say where the work runs (echo_utils.compute: backend, shards, Slurm): never compared.
RUNTIME_SECTIONS = ("compute.",)


class SettingsMismatch(ConfigError, RecordMismatch):
    """The run directory was made with other settings: names the differing keys (the artifact store's
    :class:`~echo_utils.artifacts.record.RecordMismatch` of ``run.json``, and a :class:`ConfigError`)."""


class RunLocked(ConfigError):
    """Another runner holds the run directory's lock: names its PID, host and start time."""


class RunDirNotWritable(ConfigError):
    """The run directory (or the folder it would be created in) cannot be written: names it and what to do."""


def _not_writable_message(path: Path, reason: str) -> str:
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
def _writes(run_dir: Path):
    """Turn a refused write into the run directory (read-only, no permission) into :class:`RunDirNotWritable`."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise RunDirNotWritable(_not_writable_message(run_dir, (exc.strerror or str(exc)).lower())) from None
        raise


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _compared(profile: dict) -> dict[str, object]:
    return {k: v for k, v in flatten_settings(profile).items()
            if k not in RUNTIME_KEYS and not k.startswith(RUNTIME_SECTIONS)}


def settings_record(cfg: StudyConfig, *, params: str | Path | None = None, overrides: dict | None = None) -> dict:
    """What ``run.json`` holds: the resolved profile, its hash (runtime keys excluded), where it came from."""
    profile = cfg.model_dump(mode="json")
    return {
        "profile_hash": config_hash(_compared(profile)),
        "profile": profile,
        "params": display_path(params) if params is not None else None,
        "overrides": overrides or {},
        "created": _now(),
    }


def settings_diff(recorded: dict, current: dict) -> list[tuple[str, object, object]]:
    """Differing keys of two dumped profiles, as ``(dotted key, recorded value, current value)``, sorted.

    The profile schema grows: a key the record lacks (an option added since) counts only when its current value
    is not the option's default (the default keeps the earlier behaviour), and a recorded key the schema no longer
    has (an option removed since) is not compared.
    """
    a, b = _compared(recorded), _compared(current)
    defaults = _compared(StudyConfig(name="defaults").model_dump(mode="json"))
    rows = []
    for key in sorted(b):
        if key not in a:
            if key in defaults and b[key] == defaults[key]:
                continue
            rows.append((key, None, b[key]))
        elif a[key] != b[key]:
            rows.append((key, a[key], b[key]))
    return rows


def settings_file(run_dir: str | Path) -> KeyedRecord:
    """``run_dir/run.json`` as the artifact store's keyed record: the resolved profile under ``"profile"``, compared
    by :func:`settings_diff`, written as ``json.dumps(indent=2, sort_keys=True)`` and a line break."""
    run_dir = Path(run_dir)
    return KeyedRecord(
        run_dir / SETTINGS_FILE,
        what=f"run directory {display_path(run_dir)}",
        field="profile",
        advice=(f"Nothing was changed. Use another run directory for these settings (--run-dir runs/<new name>), "
                f"or rerun with the recorded ones ({display_path(run_dir / SETTINGS_FILE)})."),
        error=SettingsMismatch,
        diff=settings_diff,
        rebuild="move it away or use another --run-dir",
        indent=2, sort_keys=True, newline=True,
    )


def read_settings(run_dir: str | Path) -> dict | None:
    """The recorded ``run.json`` of ``run_dir``, or ``None`` when there is none yet; a damaged one (or one without
    a profile) is a :class:`ConfigError` naming it."""
    try:
        return settings_file(run_dir).read()
    except DamagedFile as exc:
        raise ConfigError(str(exc)) from None


def check_settings(
    run_dir: str | Path,
    cfg: StudyConfig,
    *,
    record: bool = False,
    params: str | Path | None = None,
    overrides: dict | None = None,
) -> dict | None:
    """Refuse a profile that differs from the one ``run_dir`` was made with; nothing is written on refusal.

    Parameters
    ----------
    run_dir : the run directory (it may not exist yet).
    cfg : the resolved profile of this run.
    record : write ``run.json`` when the directory has none yet (the directory must exist then).
    params, overrides : where the profile came from, recorded for the reader.

    Returns the recorded settings (``None`` when none were recorded and ``record`` is false).

    Raises
    ------
    SettingsMismatch naming every differing key with both values, and suggesting ``--run-dir``.
    """
    run_dir = Path(run_dir)
    store = settings_file(run_dir)
    if run_dir.is_dir():
        try:
            recorded = store.check(cfg.model_dump(mode="json"))
        except DamagedFile as exc:
            raise ConfigError(str(exc)) from None
        if recorded is not None:
            return recorded
    if not record:
        return None
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {display_path(run_dir)} does not exist; its settings cannot be recorded")
    with _writes(run_dir):
        return store.write(settings_record(cfg, params=params, overrides=overrides))


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
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now(), "command": self.command,
                "token": self.token}
        tmp = self.path.with_name(f".{LOCK_FILE}.{self.token}.tmp")
        with _writes(self.run_dir):  # a read-only or foreign run directory: one line, not a traceback
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


def resolve_run_dir(cfg: StudyConfig, run_dir: str | Path | None = None, *, create: bool = True) -> Path:
    """The run directory: ``run_dir`` if given, else ``<project>/runs/<profile name>``.

    With ``create=False`` a missing directory is a :class:`ConfigError` (a notebook run alone must find the
    artifacts of the earlier notebooks).
    """
    path = run_dir_path(cfg, run_dir)
    if not path.exists():
        if not create:
            raise ConfigError(f"run directory {display_path(path)} does not exist; run the earlier notebooks first")
        with _writes(path):
            path.mkdir(parents=True)
    elif not path.is_dir():
        raise ConfigError(f"run directory {display_path(path)} exists and is not a directory")
    return path


def run_dir_path(cfg: StudyConfig, run_dir: str | Path | None = None) -> Path:
    """Absolute run directory: ``run_dir`` (relative to the working directory) or ``<project>/runs/<name>``."""
    path = Path(run_dir) if run_dir else PROJECT_ROOT / "runs" / cfg.name
    return path.expanduser().resolve()


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


def open_run(
    params: str | Path,
    overrides: object = None,
    run_dir: str | Path | None = None,
    device: str | None = None,
    *,
    create: bool = True,
) -> tuple[StudyConfig, RunPaths]:
    """The validated profile and the run's folders, consistent with the run (what
    :func:`echo_utils.study.open_study` builds a study on; ``run.setup_notebook`` and ``--submit`` call it).

    Loads ``params`` with ``overrides`` (and ``device`` if given), resolves the run directory, refuses it when a
    runner other than the one executing this notebook holds its lock, and compares the profile with the settings
    recorded in its ``run.json`` (written here when the directory has none), all before anything is written.

    Parameters
    ----------
    params : the YAML profile (see :func:`load_config`).
    overrides : profile overrides in any form :func:`parse_overrides` accepts.
    run_dir : run directory; default ``runs/<profile name>``.
    device : ``"cpu"``, ``"cuda"`` or ``"auto"``; ``None`` keeps the profile's choice.
    create : create a missing run directory (notebook 01) or require it (later notebooks).

    Raises
    ------
    ConfigError (a bad profile, a missing run directory), ``rundir.SettingsMismatch``, ``rundir.RunLocked`` or
    ``rundir.RunDirNotWritable``.
    """
    cfg = load_profile(params, overrides, device)
    return cfg, open_run_dir(cfg, run_dir, params=params, overrides=overrides, create=create)


def load_profile(params: str | Path, overrides: object = None, device: str | None = None) -> StudyConfig:
    """``params`` loaded and validated with ``overrides`` and, if given, ``device`` (:func:`load_config`)."""
    extra = parse_overrides(overrides)
    if device:
        extra = deep_merge(extra, {"device": device})
    return load_config(params, overrides=extra)


def open_run_dir(
    cfg: StudyConfig,
    run_dir: str | Path | None = None,
    *,
    params: str | Path,
    overrides: object = None,
    create: bool = True,
) -> RunPaths:
    """The run directory of the loaded profile ``cfg`` (from ``params`` with ``overrides``), checked as
    :func:`open_run` describes: its recorded settings, its lock, whether it can be written; ``run.json`` recorded."""
    target = run_dir_path(cfg, run_dir)
    check_settings(target, cfg)  # read-only: a mismatch is refused before the directory is touched
    problem = writable_problem(target)
    if problem:  # every notebook writes into it (a finished run on a read-only mount too)
        raise RunDirNotWritable(_not_writable_message(target, problem))
    paths = RunPaths(resolve_run_dir(cfg, target, create=create))
    assert_not_locked_by_other(paths.root)
    check_settings(paths.root, cfg, record=True, params=resolve_params_path(params),
                   overrides=parse_overrides(overrides))
    return paths


def _set_items(tree: dict, prefix: str = "") -> list[str]:
    items = []
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            items += _set_items(v, f"{prefix}{k}.")
        else:
            items.append(f"{prefix}{k}={json.dumps(v) if not isinstance(v, str) else v}")
    return items


def resume_command(
    params: str | Path,
    overrides: dict | None,
    run_dir: str | Path,
    device: str | None = None,
    only: list[str] | None = None,
) -> str:
    """The shell command that reruns (and so resumes) a run: finished notebooks' steps are cached."""
    args = ["python", "-m", "echo_utils.run", "--params", display_path(params)]
    for item in _set_items(overrides or {}):
        args += ["--set", item]
    args += ["--run-dir", display_path(run_dir)]
    if device:
        args += ["--device", device]
    if only:
        args += ["--only", *only]
    return shlex.join(args)
