"""The run directory: its folders, the settings it was made with (``run.json``) and the lock of its runner.

A run directory caches every expensive step, keyed by settings. The package, one concept per module:

* :mod:`~echo_utils.rundir.paths`: where it is (:func:`run_dir_path`, :func:`resolve_run_dir`), its sub-folders
  (:class:`RunPaths`) and whether it can be written (:func:`writable_problem`, :class:`RunDirNotWritable`);
* :mod:`~echo_utils.rundir.settings`: **recorded settings.** The first run writes ``run.json`` with the resolved
  profile and its hash (:func:`settings_record`). Every later run (the runner, or a notebook opened by hand)
  compares its own with it *before writing anything* (:func:`check_settings`); a difference is a
  :class:`SettingsMismatch` that names the differing keys and suggests another ``--run-dir``. Keys that change only
  the speed (:data:`RUNTIME_KEYS`) are recorded but not compared;
* :mod:`~echo_utils.rundir.lock`: **one runner at a time.** :class:`RunLock` creates ``run.lock`` atomically
  (holder's PID, host, start time and command). A second runner gets :class:`RunLocked` naming the holder; a lock
  whose process is gone on this host is stale and taken over with a note;
* :mod:`~echo_utils.rundir.opening`: :func:`open_run` checks a profile against its run directory (what
  :func:`echo_utils.study.open_study` builds the study on);
* :mod:`~echo_utils.rundir.resume`: :func:`resume_command`, the shell command that resumes a run.

>>> with RunLock("runs/ci"):                                  # doctest: +SKIP
...     check_settings("runs/ci", settings_record(cfg), write=True)
"""

from __future__ import annotations

from ..artifacts.files import LOCK_FILE, SETTINGS_FILE
from .lock import LOCK_ENV, RunLock, RunLocked, assert_not_locked_by_other, lock_holder
from .opening import load_profile, open_run, open_run_dir
from .paths import RunDirNotWritable, RunPaths, resolve_run_dir, run_dir_path, writable_problem
from .paths import not_writable_message as _not_writable_message  # the name preflight.py imports
from .resume import resume_command
from .resume import set_items as _set_items  # the name run.py imported
from .settings import (RUNTIME_KEYS, SettingsMismatch, check_settings, read_settings, settings_diff, settings_file,
                       settings_record)

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
    "settings_file",
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
