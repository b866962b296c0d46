"""The run directory package (echo_utils.rundir): one concept per module, the old import path kept, and the run
directory's path worked out from the profile's name alone."""

from __future__ import annotations

import pytest

from echo_utils import rundir
from echo_utils.config import PROJECT_ROOT, ConfigError
from echo_utils.rundir import lock, opening, paths, resume, settings


def test_the_package_keeps_the_names_its_callers_import():
    # the names the rest of the package, the tests and the benchmarks import from echo_utils.rundir
    homes = {"RunPaths": paths, "run_dir_path": paths, "resolve_run_dir": paths, "writable_problem": paths,
             "RunDirNotWritable": paths, "RunLock": lock, "RunLocked": lock, "lock_holder": lock, "LOCK_ENV": lock,
             "assert_not_locked_by_other": lock, "SettingsMismatch": settings, "settings_record": settings,
             "settings_diff": settings, "check_settings": settings, "read_settings": settings,
             "RUNTIME_KEYS": settings, "open_run": opening, "open_run_dir": opening, "load_profile": opening,
             "resume_command": resume}
    for name, home in homes.items():
        assert getattr(rundir, name) is getattr(home, name), name
    assert set(homes) <= set(rundir.__all__)
    assert rundir._not_writable_message is paths.not_writable_message  # preflight.py imports it by that name


def test_the_run_directory_needs_only_the_profile_name(tmp_path):
    assert rundir.run_dir_path("ci") == (PROJECT_ROOT / "runs" / "ci").resolve()
    assert rundir.run_dir_path("ci", tmp_path / "x") == (tmp_path / "x").resolve()
    made = rundir.resolve_run_dir("ci", tmp_path / "new")
    assert made.is_dir() and made == (tmp_path / "new").resolve()
    with pytest.raises(ConfigError, match="does not exist"):
        rundir.resolve_run_dir("ci", tmp_path / "missing", create=False)


def test_check_settings_compares_the_records_profile_and_writes_it_only_when_asked(tmp_path, ci_params):
    from echo_utils.config import load_config

    record = rundir.settings_record(load_config(ci_params))
    assert rundir.check_settings(tmp_path, record) is None and rundir.read_settings(tmp_path) is None
    assert rundir.check_settings(tmp_path, record, write=True) == record
    assert rundir.read_settings(tmp_path)["profile"] == record["profile"]
    other = rundir.settings_record(load_config(ci_params, overrides=["registration.alpha=0.25"]))
    with pytest.raises(rundir.SettingsMismatch, match="registration.alpha"):
        rundir.check_settings(tmp_path, other, write=True)
    assert rundir.read_settings(tmp_path)["profile"] == record["profile"]  # refused: nothing rewritten
