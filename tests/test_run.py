"""The papermill runner: order, parameters and overrides, failure reporting, keeping finished work, refusing a
run directory made with other settings or held by another runner, and a one-line Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from echo_utils.config import PROJECT_ROOT, ConfigError, display_path
from echo_utils.rundir import LOCK_FILE, SETTINGS_FILE, RunLock, SettingsMismatch, resume_command
from echo_utils.run import NotebookFailed, discover_notebooks, main, run_notebooks, setup_notebook

PARAMS_CELL = 'params = "notebooks/params/demo.yaml"\nrun_dir = None\ndevice = None\noverrides = None'
QUIET = dict(log=lambda *a, **k: None)


def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell(PARAMS_CELL)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), p, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def nb_dir(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    _notebook(d / "01_ok.ipynb", "import json, pathlib\n"
              "pathlib.Path(run_dir, 'ok.json').write_text(json.dumps([params, run_dir, overrides]))")
    _notebook(d / "02_fail.ipynb", "x = 1\nraise ValueError('boom from cell')")
    _notebook(d / "03_never.ipynb", "pathlib.Path(run_dir, 'never').write_text('ran')")
    (d / "README.ipynb").write_text("{}")  # not an NN_ notebook: ignored
    return d


def _cli(*args: str, cwd: Path = PROJECT_ROOT, **kw) -> subprocess.Popen:
    """The real entry point, ``python -m echo_utils.run``, as a user starts it (Ctrl-C not ignored)."""
    return subprocess.Popen(
        [sys.executable, "-m", "echo_utils.run", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw,
    )


def _snapshot(*roots: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for r in roots for p in sorted(r.rglob("*")) if p.is_file()}


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, f"runner ended early: {proc.communicate()}"
        assert time.monotonic() - t0 < seconds, f"{path} did not appear"
        time.sleep(0.2)


def test_discover_orders_and_filters(nb_dir):
    assert [p.name for p in discover_notebooks(None, nb_dir)] == ["01_ok.ipynb", "02_fail.ipynb", "03_never.ipynb"]
    assert [p.name for p in discover_notebooks(["03", "01_ok"], nb_dir)] == ["01_ok.ipynb", "03_never.ipynb"]
    with pytest.raises(ConfigError, match="07"):
        discover_notebooks(["07"], nb_dir)


def test_parameters_and_overrides_are_injected_and_recorded(nb_dir, tmp_path, ci_params):
    out, run = tmp_path / "out", tmp_path / "run"
    executed = run_notebooks(ci_params, only=["01"], run_dir=run, output_dir=out, notebook_dir=nb_dir,
                             overrides=["registration.alpha=0", "data.n_patients=8"], **QUIET)
    assert executed == [out / "01_ok.ipynb"]
    params, run_dir, overrides = json.loads((run / "ok.json").read_text())
    # the book shows project-relative paths; a run directory outside the project stays absolute
    assert params == "notebooks/params/ci.yaml" and run_dir == str(run.resolve())
    assert overrides == {"registration": {"alpha": 0}, "data": {"n_patients": 8}}
    record = json.loads((run / SETTINGS_FILE).read_text())
    assert record["profile"]["registration"]["alpha"] == 0 and record["profile"]["data"]["n_patients"] == 8
    assert record["overrides"] == overrides and record["params"] == "notebooks/params/ci.yaml"
    assert not (run / LOCK_FILE).exists(), "the lock is released at the end"
    nb = nbformat.read(out / "01_ok.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and str(PROJECT_ROOT) not in injected[0].source
    assert nb.metadata.papermill["output_path"] == display_path(out / "01_ok.ipynb")  # not the .partial copy


def test_failure_names_notebook_and_cell_and_keeps_previous_copy(nb_dir, tmp_path, ci_params):
    out = tmp_path / "out"
    out.mkdir()
    previous = out / "02_fail.ipynb"
    previous.write_text("previous successful run")
    with pytest.raises(NotebookFailed) as e:
        run_notebooks(ci_params, run_dir=tmp_path / "run", output_dir=out, notebook_dir=nb_dir, **QUIET)
    msg = str(e.value)
    assert "02_fail.ipynb" in msg and "cell 3" in msg and "boom from cell" in msg
    partial = out / "02_fail.partial.ipynb"
    assert partial.exists() and str(partial) in msg
    # the partial copy holds the traceback, the previous copy is untouched, and the run stopped there
    assert "boom from cell" in json.dumps(nbformat.read(partial, as_version=4).cells[-1].outputs)
    assert previous.read_text() == "previous successful run"
    assert not (tmp_path / "run" / "never").exists()
    assert (out / "01_ok.ipynb").exists()
    assert not (tmp_path / "run" / LOCK_FILE).exists(), "a failed run releases the lock"


def test_kernel_output_goes_to_the_run_log(nb_dir, tmp_path, ci_params, capfd):
    """What the kernel process itself prints outside any cell (C libraries, subprocesses) lands in logs/, not
    between the runner's own lines; a failure names that log."""
    _notebook(nb_dir / "02_fail.ipynb", "import os\nos.write(2, b'kernel fd 2 says hello\\n')\nraise ValueError('boom')")
    run = tmp_path / "run"
    with pytest.raises(NotebookFailed) as e:
        run_notebooks(ci_params, run_dir=run, output_dir=tmp_path / "o", notebook_dir=nb_dir, **QUIET)
    log = run / "logs" / "02_fail.kernel.log"
    assert f"the kernel's own output is in {log}" in str(e.value), str(e.value)
    assert "kernel fd 2 says hello" in log.read_text()
    assert "kernel fd 2 says hello" not in capfd.readouterr().err
    assert (run / "logs" / "01_ok.kernel.log").is_file()


def test_a_kernel_that_dies_ends_the_notebook_with_its_log(nb_dir, tmp_path, ci_params):
    """A kernel process that ends mid-cell (the OOM killer, a crash in a C library) is reported within seconds,
    with what it printed; the run stops there as for a failing cell."""
    _notebook(nb_dir / "02_fail.ipynb", "import os\nos.write(2, b'last words\\n')\nos._exit(3)")
    run = tmp_path / "run"
    t0 = time.monotonic()
    with pytest.raises(NotebookFailed) as e:
        run_notebooks(ci_params, run_dir=run, output_dir=tmp_path / "o", notebook_dir=nb_dir, **QUIET)
    msg = str(e.value)
    assert "02_fail.ipynb failed in a dead kernel" in msg and str(run / "logs" / "02_fail.kernel.log") in msg, msg
    assert "last words" in (run / "logs" / "02_fail.kernel.log").read_text()
    assert time.monotonic() - t0 < 60 and not (run / "never").exists() and not (run / LOCK_FILE).exists()


def test_cli_exit_codes(nb_dir, tmp_path, ci_params, capsys):
    args = ["--params", str(ci_params), "--run-dir", str(tmp_path / "r"), "--output-dir", str(tmp_path / "o"),
            "--notebook-dir", str(nb_dir)]
    assert main(args + ["--only", "01"]) == 0
    assert main(args) == 1
    assert "02_fail.ipynb failed in cell 3" in capsys.readouterr().err


@pytest.mark.parametrize(
    "bad, named",
    [
        (["--set", "nnunet.epochz=3"], "nnunet.epochz"),  # unknown key
        (["--set", "registration.iterations=true"], "registration.iterations"),  # wrong type (strict)
        (["--set", "registration.grid_spacing=7"], "power of two"),
        (["--set", "alpha"], "section.key=value"),
    ],
)
def test_bad_profile_or_override_stops_before_any_work(nb_dir, tmp_path, capsys, ci_params, bad, named):
    assert main(["--params", str(ci_params), "--run-dir", str(tmp_path / "r"), "--output-dir",
                 str(tmp_path / "o"), "--notebook-dir", str(nb_dir), *bad]) == 1
    assert named in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()


def test_relative_params_resolve_like_load_config(nb_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # notebooks/params/ci.yaml is not under the working directory: project root
    run_notebooks("notebooks/params/ci.yaml", only=["01"], run_dir="r", output_dir="o", notebook_dir=nb_dir, **QUIET)
    assert json.loads((tmp_path / "r" / "ok.json").read_text())[:2] == ["notebooks/params/ci.yaml",
                                                                       str(tmp_path / "r")]


def test_changed_setting_into_a_finished_run_dir_is_refused_untouched(nb_dir, tmp_path, ci_params):
    """Issue: a rerun with another registration value must not overwrite anything before it is refused."""
    run, out = tmp_path / "run", tmp_path / "out"
    base = ["--params", "notebooks/params/ci.yaml", "--run-dir", str(run), "--output-dir", str(out),
            "--notebook-dir", str(nb_dir), "--only", "01"]
    first = _cli(*base)
    assert first.wait(120) == 0, first.communicate()
    before = _snapshot(run, out)
    assert str(run / SETTINGS_FILE) in before and str(out / "01_ok.ipynb") in before
    time.sleep(0.05)  # a rewrite would show in the modification times
    rerun = _cli(*base, "--set", "registration.alpha=0.5")
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 1
    assert "registration.alpha" in err and "1.0 there, 0.5 now" in err and "--run-dir" in err
    assert "Traceback" not in err
    assert _snapshot(run, out) == before, "a refused run changed files"
    # the same settings are accepted (a rerun resumes), and the recorded settings keep their bytes and time
    assert main(base) == 0
    assert _snapshot(run)[str(run / SETTINGS_FILE)] == before[str(run / SETTINGS_FILE)]


def test_second_runner_gets_the_lock_message(nb_dir, tmp_path, ci_params):
    run, release = tmp_path / "run", tmp_path / "release"
    _notebook(nb_dir / "01_ok.ipynb", "import pathlib, time\npathlib.Path(run_dir, 'started').write_text('')\n"
              f"while not pathlib.Path({str(release)!r}).exists(): time.sleep(0.1)")
    args = ["--params", str(ci_params), "--run-dir", str(run), "--notebook-dir", str(nb_dir), "--only", "01"]
    first = _cli(*args, "--output-dir", str(tmp_path / "o1"))
    try:
        _wait_for(run / "started", first)
        second = _cli(*args, "--output-dir", str(tmp_path / "o2"))
        _, err = second.communicate(timeout=120)
        assert second.returncode == 1
        assert "in use by another runner" in err and f"PID {first.pid} on host {socket.gethostname()}" in err
        assert not (tmp_path / "o2").exists()
        # a notebook opened by hand into the locked run directory is refused too (its token is not the runner's)
        os.environ.pop("ECHO_RUN_LOCK_TOKEN", None)
        with pytest.raises(ConfigError, match="in use by another runner"):
            setup_notebook(ci_params, run, create=False)
    finally:
        release.write_text("")
        assert first.wait(120) == 0, first.communicate()
    assert not (run / LOCK_FILE).exists()


def test_stale_lock_is_taken_over(nb_dir, tmp_path, ci_params):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "x"}))
    notes = []
    run_notebooks(ci_params, only=["01"], run_dir=run, output_dir=tmp_path / "o", notebook_dir=nb_dir,
                  log=lambda *a, **k: notes.append(" ".join(map(str, a))))
    assert any(f"stale lock of PID {dead.pid}" in n for n in notes)
    assert (run / "ok.json").exists() and not (run / LOCK_FILE).exists()


def test_lock_of_a_live_process_is_kept(tmp_path):
    with RunLock(tmp_path, log=lambda *a: None):
        with pytest.raises(ConfigError, match=f"PID {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_FILE).exists()


def test_ctrl_c_ends_with_one_line_saying_what_was_kept(nb_dir, tmp_path, ci_params):
    run = tmp_path / "run"
    _notebook(nb_dir / "02_fail.ipynb", "import pathlib, time\npathlib.Path(run_dir, 'started').write_text('')\n"
              "time.sleep(120)")
    proc = _cli("--params", str(ci_params), "--run-dir", str(run), "--output-dir", str(tmp_path / "o"),
                "--notebook-dir", str(nb_dir))
    _wait_for(run / "started", proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted"), err  # one line, nothing else
    assert "in 02_fail.ipynb; kept: 01_ok" in lines[0]
    assert f"--run-dir {run} --only 02 03" in lines[0]
    assert not (run / LOCK_FILE).exists() and (tmp_path / "o" / "01_ok.ipynb").exists()


def test_resume_command_quotes_overrides():
    cmd = resume_command(PROJECT_ROOT / "notebooks/params/ci.yaml", {"data": {"frames": [6, 9]}}, "/tmp/r", None,
                         ["04"])
    assert cmd == "python -m echo_utils.run --params notebooks/params/ci.yaml --set 'data.frames=[6, 9]' " \
                  "--run-dir /tmp/r --only 04"


def test_setup_notebook(tmp_path, ci_params):
    ctx = setup_notebook(ci_params, tmp_path / "run", "cpu", overrides={"registration": {"alpha": 0.5}})
    assert ctx.cfg.name == "ci" and ctx.device == "cpu" and ctx.run_dir == (tmp_path / "run").resolve()
    assert ctx.cfg.registration.alpha == 0.5 and ctx.display_run_dir == display_path(tmp_path / "run")
    with pytest.raises(SettingsMismatch, match="registration.alpha"):
        setup_notebook(ci_params, tmp_path / "run", "cpu", create=False)
    with pytest.raises(ConfigError, match="does not exist"):
        setup_notebook(ci_params, tmp_path / "missing", create=False)


def test_check_only_validates_without_writing(nb_dir, tmp_path, ci_params, capsys):
    run, out = tmp_path / "run", tmp_path / "out"
    args = ["--params", str(ci_params), "--run-dir", str(run), "--output-dir", str(out), "--notebook-dir", str(nb_dir)]
    assert main(args + ["--set", "registration.alpha=0", "--check"]) == 0
    said = capsys.readouterr().out
    assert "ok: profile ci" in said and "registration.alpha=0" in said and "new run directory" in said
    assert not run.exists() and not out.exists()
    assert main(args + ["--only", "01"]) == 0
    assert main(args + ["--check"]) == 0 and "matches its run.json" in capsys.readouterr().out
    assert main(args + ["--set", "registration.alpha=0", "--check"]) == 1
    assert "registration.alpha" in capsys.readouterr().err


@pytest.mark.parametrize("notebook", discover_notebooks(), ids=lambda p: p.stem)
def test_every_notebook_takes_the_runners_parameters(notebook):
    """The runner injects params, run_dir, device and overrides; each notebook declares them and passes the
    overrides on (a notebook that drops them would run other settings than the run directory records)."""
    nb = nbformat.read(notebook, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    declared = {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line}
    assert {"params", "run_dir", "device", "overrides"} <= declared
    setup = [c.source for c in nb.cells if c.cell_type == "code" and "setup_notebook(" in c.source]
    assert len(setup) == 1 and "overrides=overrides" in setup[0]


def test_options_added_or_removed_since_the_record(tmp_path, ci_params):
    """A run directory recorded before an option existed still matches while that option keeps its default."""
    from echo_utils.config import load_config
    from echo_utils.rundir import check_settings, settings_diff, settings_record

    cfg = load_config(ci_params)
    check_settings(tmp_path, settings_record(cfg), write=True)
    record = json.loads((tmp_path / SETTINGS_FILE).read_text())
    del record["profile"]["registration"]["loss_sigma"]  # "added since": its default now
    record["profile"]["evaluation"]["myo_convention"] = "ring"  # "removed since"
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(record))
    assert check_settings(tmp_path, settings_record(cfg)) is not None
    changed = load_config(ci_params, overrides=["registration.loss_sigma=1.5"])
    assert settings_diff(record["profile"], changed.model_dump(mode="json")) == [("registration.loss_sigma", None, 1.5)]
    with pytest.raises(SettingsMismatch, match="registration.loss_sigma"):
        check_settings(tmp_path, settings_record(changed))
