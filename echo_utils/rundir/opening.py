"""Opening a run: a profile loaded and its run directory checked, before anything is written.

:func:`open_run` is the one call a notebook makes (through ``run.setup_notebook``; what
:func:`echo_utils.study.open_study` builds the study on): :func:`load_profile`, then :func:`open_run_dir`, which
compares the profile with the directory's ``run.json``, refuses a directory it cannot write or that another runner
holds, and records ``run.json`` on the first run.
"""

from __future__ import annotations

from pathlib import Path

from ..config import StudyConfig, deep_merge, load_config, parse_overrides, resolve_params_path
from .lock import assert_not_locked_by_other
from .paths import RunDirNotWritable, RunPaths, not_writable_message, resolve_run_dir, run_dir_path, writable_problem
from .settings import check_settings, settings_record

__all__ = ["open_run", "load_profile", "open_run_dir"]


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
    record = settings_record(cfg, params=resolve_params_path(params), overrides=parse_overrides(overrides))
    target = run_dir_path(cfg.name, run_dir)
    check_settings(target, record)  # read-only: a mismatch is refused before the directory is touched
    problem = writable_problem(target)
    if problem:  # every notebook writes into it (a finished run on a read-only mount too)
        raise RunDirNotWritable(not_writable_message(target, problem))
    paths = RunPaths(resolve_run_dir(cfg.name, target, create=create))
    assert_not_locked_by_other(paths.root)
    check_settings(paths.root, record, write=True)
    return paths
