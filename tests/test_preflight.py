"""echo_utils.preflight (plain checks), echo_utils.study.checks.preflight (the profile's) and the run directory's write checks: what ``--check`` (and the runner, before it locks)
finds without running: an unwritable run directory, a missing GPU, a missing or foreign data root, an empty split.
Each ends in one line on the console, naming the path or the key, and no traceback."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from echo_fixtures import write_nifti_patient

from echo_utils import rundir
from echo_utils.config import load_config
from echo_utils import preflight as preflight_module
from echo_utils.preflight import PreflightError, check_device, check_split
from echo_utils.study.checks import preflight
from echo_utils.run import main
from echo_utils.rundir import RunDirNotWritable, RunLock, writable_problem


def _profile(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "profile.yaml"
    p.write_text("name: probe\ndevice: cpu\n" + body)
    return p


def _check(capsys, params: Path, run: Path, *extra: str) -> tuple[int, str]:
    code = main(["--params", str(params), "--run-dir", str(run), "--check", *extra])
    said = capsys.readouterr()
    return code, said.err.strip() if code else said.out.strip()


def _one_line(text: str) -> str:
    assert "\n" not in text and "Traceback" not in text, text
    return text


def test_check_reports_device_and_split_of_a_good_profile(tmp_path, capsys, ci_params):
    code, said = _check(capsys, ci_params, tmp_path / "run")
    assert code == 0 and "device cpu; split 3 train, 1 val, 2 test patients" in _one_line(said)
    assert not (tmp_path / "run").exists()


def test_cuda_without_a_gpu_is_refused(tmp_path, capsys, ci_params, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, said = _check(capsys, ci_params, tmp_path / "run", "--device", "cuda")
    assert code == 1 and "device 'cuda'" in _one_line(said) and "torch sees no GPU" in said
    assert _check(capsys, ci_params, tmp_path / "run", "--device", "auto")[0] == 0  # control


def test_missing_or_foreign_camus_root_is_named(tmp_path, capsys):
    missing = tmp_path / "no_such_camus"
    code, said = _check(capsys, _profile(tmp_path, f"data:\n  source: camus\n  root: {missing}\n"), tmp_path / "r")
    assert code == 1 and f"data.root = '{missing}'" in _one_line(said) and "folder not found" in said

    foreign = tmp_path / "photos"
    (foreign / "holiday").mkdir(parents=True)
    code, said = _check(capsys, _profile(tmp_path, f"data:\n  source: camus\n  root: {foreign}\n"), tmp_path / "r")
    assert code == 1 and f"{foreign}: unknown dataset layout" in _one_line(said)

    camus = tmp_path / "camus"  # the control: a root with the CAMUS 2023 layout passes, and its split is counted
    for i in range(1, 6):
        write_nifti_patient(camus, f"patient{i:04d}")
    body = f"data:\n  source: camus\n  root: {camus}\n  test_fraction: 0.2\n  val_fraction: 0.25\n"
    code, said = _check(capsys, _profile(tmp_path, body), tmp_path / "r")
    assert code == 0 and "split 3 train, 1 val, 1 test patients" in said, said
    assert not (tmp_path / "r").exists()  # the seeded split was computed, not written

    lost = camus / "database_nifti" / "patient0001" / "patient0001_4CH_half_sequence.nii.gz"
    lost.rename(lost.with_name("moved.nii.gz"))  # the first patient lacks its 4CH sequence
    code, said = _check(capsys, _profile(tmp_path, body), tmp_path / "r")
    assert code == 1 and "patient0001: unknown layout for view 4CH" in _one_line(said)
    lost.with_name("moved.nii.gz").rename(lost)

    ted = tmp_path / "no_ted"
    code, said = _check(capsys, _profile(tmp_path, body + f"  ted_root: {ted}\n"), tmp_path / "r")
    assert code == 1 and "data.ted_root" in _one_line(said)


def test_a_split_without_a_validation_patient_is_refused(tmp_path):
    cfg = load_config("notebooks/params/ci.yaml", overrides={"data": {"n_patients": 2}})
    with pytest.raises(PreflightError, match=r"the split leaves no val patient \(2 patients: 1 train, 0 val, 1 test"):
        check_split(cfg.data, tmp_path / "data")
    no_val = load_config("notebooks/params/ci.yaml", overrides={"data": {"n_patients": 2, "val_fraction": 0}})
    assert check_split(no_val.data, tmp_path / "data") == {"train": 1, "val": 0, "test": 1}  # none asked for: fine


def _read_only(monkeypatch, root: Path):
    """Simulate a read-only mount under ``root`` (the tests may run as root, whom chmod does not stop): access()
    and statvfs() report it, and every write below it fails with EROFS as the kernel's would."""
    root = root.resolve()
    below = lambda p: Path(p).resolve() == root or root in Path(p).resolve().parents  # noqa: E731
    real_access, real_statvfs = os.access, os.statvfs

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if below(p) and mode & os.W_OK
                        else real_access(p, mode, **kw))
    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly() if below(p) else real_statvfs(p))

    def refuse(original):
        def write(self, *a, **k):
            if below(self):
                raise OSError(errno.EROFS, "Read-only file system", str(self))
            return original(self, *a, **k)
        return write

    monkeypatch.setattr(Path, "write_text", refuse(Path.write_text))
    monkeypatch.setattr(Path, "mkdir", refuse(Path.mkdir))


def test_read_only_run_directory_is_one_line_from_check_and_runner(tmp_path, capsys, ci_params, monkeypatch):
    run = tmp_path / "mount" / "run"
    run.mkdir(parents=True)
    _read_only(monkeypatch, tmp_path / "mount")
    assert writable_problem(run) == "read-only file system"
    assert writable_problem(run / "new" / "deeper") == "read-only file system"  # would be created there
    code, said = _check(capsys, ci_params, run)
    assert code == 1 and f"run directory {run} is not writable (read-only file system)" in _one_line(said)
    assert "--run-dir" in said
    code = main(["--params", str(ci_params), "--run-dir", str(run), "--only", "01"])  # the runner itself
    err = capsys.readouterr().err.strip()
    assert code == 1 and "is not writable (read-only file system)" in _one_line(err)
    # the lock, reached past the check (a mount that turns read-only in between): the same one line
    with pytest.raises(RunDirNotWritable, match=r"run directory .*run is not writable \(read-only file system\)"):
        RunLock(run).acquire()
    with pytest.raises(RunDirNotWritable):  # the settings record
        rundir.check_settings(run, rundir.settings_record(load_config(ci_params)), write=True)
    with pytest.raises(RunDirNotWritable, match="read-only file system"):  # a notebook opened by hand
        rundir.open_run(ci_params, run_dir=run)
    assert list(run.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod; the simulated mount above covers it")
def test_unwritable_run_directory_by_permission(tmp_path, capsys, ci_params):
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o555)
    try:
        code, said = _check(capsys, ci_params, run)
        assert code == 1 and "is not writable (no write permission" in _one_line(said)
        with pytest.raises(RunDirNotWritable, match="permission denied"):
            RunLock(run).acquire()
    finally:
        run.chmod(0o755)


def test_preflight_returns_what_it_found(tmp_path, ci_params, monkeypatch):
    found = preflight(load_config(ci_params), tmp_path / "run")
    assert found == {"device": "cpu", "split": {"train": 3, "val": 1, "test": 2}}
    from echo_utils import run

    assert run.preflight is preflight and not hasattr(preflight_module, "preflight")  # one home: study.checks
    check_device("cpu")
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PreflightError, match="device 'cuda' .* torch sees no GPU"):
        check_device("cuda")
