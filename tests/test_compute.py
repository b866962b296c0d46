"""echo_utils.compute: jobs, markers, the inline / local backends, kill-and-resubmit, the Slurm dry run.

The stand-in jobs (tests/compute_tasks.py) cost milliseconds; the real job set (DIR training and one pseudo-label
shard of the ci cohort) runs once inline and once through submitit's local executor, and the two runs' files must
be identical byte for byte.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml

from echo_utils import compute
from echo_utils.compute import Job, JobsFailed, is_done, run_jobs
from echo_utils.config import ComputeConfig, ConfigError, load_config
from echo_utils.rundir import RunPaths
from echo_utils.study import Study

TESTS = Path(__file__).resolve().parent
PARAMS = TESTS.parent / "notebooks" / "params"


@pytest.fixture(autouse=True)
def _standins_importable(monkeypatch):
    """Job subprocesses import the stand-ins by module name."""
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))


def _square_jobs(run_dir: Path, n: int = 3, block: Path | None = None) -> list[Job]:
    return [
        Job(name=f"square-{i}", fn="compute_tasks:write_value", run_dir=str(run_dir),
            kwargs={"path": str(run_dir / f"out{i}.txt"), "value": i,
                    "block_while": str(block) if block and i == n - 1 else None})
        for i in range(n)
    ]


def _local(**kw) -> ComputeConfig:
    return ComputeConfig(backend="local", poll_seconds=0.2, local=kw)


def _starts(path: Path) -> int:
    runs = Path(f"{path}.runs")
    return len(runs.read_text().splitlines()) if runs.exists() else 0


# ----------------------------------------------------------------------------------------------------------------
# jobs and markers
# ----------------------------------------------------------------------------------------------------------------


def test_job_names_and_keys():
    with pytest.raises(ValueError, match="letters, digits"):
        Job(name="a b", fn="m:f")
    with pytest.raises(ValueError, match="module:function"):
        Job(name="a", fn="m.f")
    a = Job(name="a", fn="m:f", kwargs={"x": 1})
    assert a.key == Job(name="other", fn="m:f", kwargs={"x": 1}).key  # the key is the work, not the name
    assert a.key != Job(name="a", fn="m:f", kwargs={"x": 2}).key
    assert Job.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_inline_writes_markers_and_skips_done_jobs(tmp_path):
    jobs = _square_jobs(tmp_path)
    report = run_jobs(jobs, ComputeConfig())
    assert [(tmp_path / f"out{i}.txt").read_text() for i in range(3)] == ["0", "1", "4"]
    assert report.counts()["done"] == 3 and not any(r["skipped"] for r in report.rows)
    marker = json.loads((tmp_path / "jobs" / "square-1" / "done.json").read_text())
    assert marker["key"] == jobs[1].key and marker["outputs"] == ["out1.txt"]  # relative to the run directory
    report = run_jobs(jobs, ComputeConfig())
    assert all(r["skipped"] for r in report.rows)
    assert [_starts(tmp_path / f"out{i}.txt") for i in range(3)] == [1, 1, 1]
    # a deleted output or other settings make a job not done again
    (tmp_path / "out2.txt").unlink()
    assert not is_done(jobs[2]) and is_done(jobs[1])
    changed = Job(name="square-1", fn=jobs[1].fn, kwargs={**jobs[1].kwargs, "value": 5}, run_dir=str(tmp_path))
    assert not is_done(changed)


def test_inline_failure_propagates_unchanged(tmp_path):
    job = Job(name="bad", fn="compute_tasks:fail", kwargs={"message": "boom"}, run_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match="^boom$"):
        run_jobs([job], ComputeConfig())
    assert "RuntimeError: boom" in (tmp_path / "jobs" / "bad" / "error.txt").read_text()
    assert not is_done(job)


def test_duplicate_names_refused(tmp_path):
    jobs = _square_jobs(tmp_path, 1) * 2
    with pytest.raises(ValueError, match="unique"):
        run_jobs(jobs, ComputeConfig())


# ----------------------------------------------------------------------------------------------------------------
# local backend (submitit subprocesses)
# ----------------------------------------------------------------------------------------------------------------


def test_local_backend_same_results_and_failure_report(tmp_path):
    a, b = tmp_path / "inline", tmp_path / "local"
    run_jobs(_square_jobs(a), ComputeConfig())
    report = run_jobs(_square_jobs(b), _local(max_parallel=2), progress=False)
    assert [(b / f"out{i}.txt").read_bytes() for i in range(3)] == [(a / f"out{i}.txt").read_bytes() for i in range(3)]
    assert {r["state"] for r in report.rows} == {"done"} and all(r["job_id"] for r in report.rows)
    assert list((b / "jobs" / "square-0" / "logs").glob("*_log.out"))  # submitit's logs in the job's folder
    # pid of the job process != this process: it really ran elsewhere
    assert json.loads((b / "jobs" / "square-0" / "done.json").read_text())["pid"] != os.getpid()

    bad = Job(name="bad", fn="compute_tasks:fail", kwargs={"message": "boom"}, run_dir=str(b))
    with pytest.raises(JobsFailed) as err:
        run_jobs([bad, *_square_jobs(b)], _local(), progress=False)
    msg = str(err.value)
    assert "1 of 4 jobs failed" in msg
    assert "stand-in job starting: boom" in msg and "RuntimeError: boom" in msg  # the log tail
    assert f"python -m echo_utils.compute resubmit {bad.folder}" in msg
    assert err.value.report.counts() == {"pending": 0, "running": 0, "done": 3, "failed": 1}


def test_run_stages_reports_the_backend_each_stage_ran_on(tmp_path, monkeypatch):
    """An inline profile whose local_kinds send one stage to the local backend: the report names the backend that
    ran each job (the local stage's jobs in other processes), not the profile's."""
    from echo_utils.compute import runner

    from echo_utils.study import Study

    def stage_jobs(stage, study, device):
        kind = {"a": "nnunet_training", "b": "nnunet_prediction"}[stage]
        return [Job(name=f"{stage}-{i}", fn="compute_tasks:write_value", kind=kind, run_dir=str(tmp_path),
                    kwargs={"path": str(tmp_path / f"{stage}{i}.txt"), "value": i}) for i in range(2)]

    monkeypatch.setattr(runner, "stage_jobs", stage_jobs)
    cfg = load_config(PARAMS / "ci.yaml", {"compute": {"backend": "inline", "local_kinds": ["nnunet_training"],
                                                       "poll_seconds": 0.2}})
    study = Study(cfg, RunPaths(tmp_path))  # its cohort is never resolved: the stand-in jobs do not need it
    report = runner.run_stages(["a"], study, progress=False)
    assert report.backend == "local" and [r["backend"] for r in report.rows] == ["local", "local"]
    assert "(local)" in report.summary()
    pids = {json.loads((tmp_path / "jobs" / f"a-{i}" / "done.json").read_text())["pid"] for i in range(2)}
    assert os.getpid() not in pids  # they did run as processes
    report = runner.run_stages(["b", "a"], study, progress=False)
    assert report.backend == "inline, local"
    assert [(r["name"], r["backend"]) for r in report.rows] == [
        ("b-0", "inline"), ("b-1", "inline"), ("a-0", "local"), ("a-1", "local")]
    assert runner.run_stages([], study).backend == "inline"
    assert not study.resolved


class _TimedHandle:
    """A stand-in handle that is running for ``polls`` polls, then ends in ``end`` ('done' or 'failed')."""

    def __init__(self, job: Job, polls: int, end: str, clock: list):
        self.job, self.job_id, self.polls, self.end, self.clock = job, f"fake-{job.name}", polls, end, clock
        self.started = clock[0]

    def state(self) -> str:
        return self.end if self.clock[0] - self.started >= self.polls else "running"


def _fake_pool(jobs: list[Job], polls: dict, ends: dict | None = None, max_parallel: int = 2):
    """wait_for on ``jobs`` with stand-in handles; returns (report or JobsFailed, {name: poll it started at})."""
    from echo_utils.compute.progress import wait_for

    clock, started = [0], {}

    def submit(job):
        started[job.name] = clock[0]
        return _TimedHandle(job, polls[job.name], (ends or {}).get(job.name, "done"), clock)

    def tick(_seconds):
        clock[0] += 1

    import echo_utils.compute.progress as progress_module

    original = progress_module.time.sleep
    progress_module.time.sleep = tick
    try:
        try:
            out = wait_for({}, jobs, submit, backend="local", max_parallel=max_parallel, progress=False,
                           log=lambda *a, **k: None)
        except JobsFailed as err:
            out = err
    finally:
        progress_module.time.sleep = original
    return out, started


def test_pool_starts_a_job_once_the_jobs_it_needs_are_done(tmp_path):
    """Two slots, a long and a short training, a prediction after each: the short one's prediction takes the slot
    the short training freed while the long one still trains (run_stages(..., pipelined=True) in notebook 04);
    nothing starts before what it needs is done."""
    def job(name, after=()):
        return Job(name=name, fn="compute_tasks:write_value", run_dir=str(tmp_path), after=tuple(after))

    jobs = [job("train-long"), job("train-short"), job("predict-long", ["train-long"]),
            job("predict-short", ["train-short"]), job("summary", ["predict-long", "predict-short"])]
    polls = {"train-long": 10, "train-short": 3, "predict-long": 2, "predict-short": 2, "summary": 1}
    report, started = _fake_pool(jobs, polls)
    assert started["train-long"] == started["train-short"] == 0
    assert started["predict-short"] == 3 < started["predict-long"]  # not left waiting for the long training
    assert started["predict-long"] == 10 and started["summary"] == 12
    assert [r["state"] for r in report.rows] == ["done"] * 5
    # a job outside the set (an earlier stage, waited for before) does not hold a job back
    report, started = _fake_pool([job("alone", ["an-earlier-stage"])], {"alone": 1})
    assert started == {"alone": 0} and report.rows[0]["state"] == "done"


def test_pool_does_not_run_a_job_whose_prerequisite_failed(tmp_path):
    def job(name, after=()):
        return Job(name=name, fn="compute_tasks:write_value", run_dir=str(tmp_path), after=tuple(after))

    jobs = [job("train-a"), job("train-b"), job("predict-a", ["train-a"]), job("predict-b", ["train-b"])]
    err, started = _fake_pool(jobs, {n.name: 2 for n in jobs}, ends={"train-a": "failed"})
    assert isinstance(err, JobsFailed)
    assert "predict-a" not in started and "predict-b" in started  # the other model goes on
    assert err.report.counts() == {"pending": 0, "running": 0, "done": 2, "failed": 2}
    assert "== job predict-a (task) was not run: it needs train-a, which failed" in str(err)
    cycle = [job("x", ["y"]), job("y", ["x"])]
    with pytest.raises(ValueError, match="cycle.*x, y"):
        _fake_pool(cycle, {"x": 1, "y": 1})


def test_killed_job_resubmitted_alone(tmp_path):
    """Three jobs; the third is killed (SIGKILL, like a node failure) mid-run. Resubmitting the set reruns only it."""
    block = tmp_path / "block"
    block.touch()
    jobs = _square_jobs(tmp_path, 3, block=block)
    report = run_jobs(jobs, _local(max_parallel=3), wait=False)
    assert {r["state"] for r in report.rows} == {"pending"}
    deadline = time.time() + 90
    while not (is_done(jobs[0]) and is_done(jobs[1]) and _starts(tmp_path / "out2.txt")):
        assert time.time() < deadline, "the jobs did not start"
        time.sleep(0.2)
    assert not is_done(jobs[2])
    pid = int(json.loads((jobs[2].folder / "submitted.json").read_text())["job_id"])
    controller = psutil.Process(pid)
    for p in [*controller.children(recursive=True), controller]:
        p.send_signal(signal.SIGKILL)
    controller.wait(10)
    mtimes = {j.name: (j.folder / "done.json").stat().st_mtime_ns for j in jobs[:2]}

    block.unlink()
    report = run_jobs(jobs, _local(max_parallel=3), progress=False)
    assert {r["name"]: r["skipped"] for r in report.rows} == {"square-0": True, "square-1": True, "square-2": False}
    assert (tmp_path / "out2.txt").read_text() == "4"
    assert [_starts(tmp_path / f"out{i}.txt") for i in range(3)] == [1, 1, 2]  # only the killed job ran again
    assert {j.name: (j.folder / "done.json").stat().st_mtime_ns for j in jobs[:2]} == mtimes


def test_resubmit_command_line(tmp_path, capsys):
    from echo_utils.compute.__main__ import main

    bad = Job(name="bad", fn="compute_tasks:fail", kwargs={"message": "boom"}, run_dir=str(tmp_path))
    with pytest.raises(RuntimeError):
        run_jobs([bad], ComputeConfig())
    job = _square_jobs(tmp_path, 1)[0]
    compute.jobs.write_spec(job, {"compute": ComputeConfig().model_dump(mode="json")})
    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "not run" in out
    assert main(["resubmit", str(job.folder)]) == 0 and is_done(job)
    assert main(["resubmit", str(bad.folder)]) == 1
    assert "RuntimeError: boom" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# the compute section and the Slurm dry run
# ----------------------------------------------------------------------------------------------------------------


def test_compute_section_validated(tmp_path):
    cfg = load_config(PARAMS / "ci.yaml")
    assert cfg.compute.backend == "inline"
    bad = yaml.safe_load((PARAMS / "ci.yaml").read_text())
    bad["compute"] = {"backend": "slurm", "slurm": {"gpus": 2}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="compute.slurm.gpus"):
        load_config(tmp_path / "bad.yaml")
    bad["compute"] = {"slurm": {"per_kind": {"nnunet_trainig": {"mem_gb": 8}}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="per_kind"):
        load_config(tmp_path / "bad.yaml")


def _paper_slurm(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CAMUS_ROOT", str(tmp_path / "camus"))
    monkeypatch.setenv("TED_ROOT", str(tmp_path / "ted"))
    (tmp_path / "camus").mkdir()
    (tmp_path / "ted").mkdir()
    raw = yaml.safe_load((PARAMS / "paper.yaml").read_text())
    raw["compute"] = {"backend": "slurm", "slurm": {"partition": "gpu", "account": "echo", "mem_gb": 40,
                                                    "per_kind": {"nnunet_prepare": {"gpus_per_job": 0, "mem_gb": 16}},
                                                    "extra": {"qos": "normal"}}}
    path = tmp_path / "paper_slurm.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_slurm_dry_run_lists_jobs_without_slurm(tmp_path, monkeypatch, capsys):
    from echo_utils.run import main

    params = _paper_slurm(tmp_path, monkeypatch)
    monkeypatch.setenv("PATH", str(tmp_path))  # certainly no sbatch
    run = ["--params", str(params), "--run-dir", str(tmp_path / "run"), "--submit"]
    assert main([*run, "--dry-run", "--set", "compute.slurm.mem_gb=48"]) == 0
    out = capsys.readouterr().out
    cfg = load_config(params)
    n_train = len(cfg.nnunet.models) * len(cfg.nnunet.folds)
    assert out.count("nnunet-train-Dataset") >= n_train == 20
    assert "dir-training" in out and "nnunet-predict-3d_dense-test" in out
    assert "1 GPU, 8 CPU, 48 GB, 2880 min" in out and "0 GPU, 8 CPU, 16 GB, 2880 min" in out
    assert "#SBATCH --partition=gpu" in out and "#SBATCH --qos=normal" in out and "#SBATCH --account=echo" in out
    assert "Nothing was submitted" in out and "no Slurm" in out
    assert not (tmp_path / "run").exists()
    # a real submission on this machine: one clear error line, exit 1, no traceback
    assert main(run) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "no Slurm" in err and "Traceback" not in err


# ----------------------------------------------------------------------------------------------------------------
# the real job set: DIR training + one pseudo-label shard, inline vs local, byte for byte
# ----------------------------------------------------------------------------------------------------------------


def _files(root: Path, sub: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / sub).rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_ci_jobs_local_equal_inline(tmp_path):
    overrides = {"data": {"root": str(tmp_path / "cohort")}, "compute": {"shard_size": 100, "poll_seconds": 0.5}}
    cfg = load_config(PARAMS / "ci.yaml", overrides)
    cfg_local = load_config(PARAMS / "ci.yaml", {**overrides, "compute": {**overrides["compute"], "backend": "local"}})
    runs = {}
    for name, c in (("inline", cfg), ("local", cfg_local)):
        paths = RunPaths(tmp_path / name)
        report = compute.run_stages(["dir_training", "pseudo_labels"], Study(c, paths), "cpu", progress=False)
        assert [r["name"] for r in report.rows] == ["dir-training", "pseudo-labels-dlir-000"]
        runs[name] = paths
    a, b = runs["inline"].root, runs["local"].root
    for sub in ("registration", "pseudo_labels"):
        fa, fb = _files(a, sub), _files(b, sub)
        assert fa.keys() == fb.keys()
        assert any(k.endswith("model.pt") for k in fa) if sub == "registration" else len(fa) > 3
        differ = [k for k in fa if fa[k] != fb[k] and not k.endswith("log.csv")]
        assert not differ, f"local and inline runs differ in {differ}"
    # the training log is equal but for its wall-clock column
    log_a, log_b = (pd.read_csv(next((r / "registration").rglob("log.csv"))) for r in (a, b))
    pd.testing.assert_frame_equal(log_a.drop(columns="seconds"), log_b.drop(columns="seconds"))
    n_seqs = len(json.loads((b / "jobs" / "pseudo-labels-dlir-000" / "job.json").read_text())["job"]["kwargs"]["keys"])
    # forward, backward and bidirectional labels per sequence (the confidence maps live in their own folder)
    label_files = [p for p in (b / "pseudo_labels" / "dlir").rglob("*.nii.gz") if "confidence" not in p.parts]
    assert len(label_files) == 3 * n_seqs
    # notebook 03's own call reads the jobs' cache back (same registration fingerprint, nothing recomputed)
    from echo_utils import pseudolabels, registration
    local = Study(cfg, runs["local"])
    train, val = local.sequences("train"), local.sequences("val")
    dlir = registration.registration_from_config("dlir", cfg.registration, train=train, val=val,
                                                 run_dir=runs["local"].registration, device="cpu")
    before = {p: p.stat().st_mtime_ns for p in (b / "pseudo_labels").rglob("*.nii.gz")}
    labels = pseudolabels.generate_pseudo_labels(train + val, dlir, runs["local"].pseudo_labels / "dlir",
                                           cfg_pl=cfg.pseudo_labels, progress=False)
    assert len(labels) == n_seqs
    assert {p: p.stat().st_mtime_ns for p in (b / "pseudo_labels").rglob("*.nii.gz")} == before
    assert np.isin(labels[train[0].key].bidirectional, [0, 1, 2, 3]).all()


def test_compute_section_never_a_settings_mismatch():
    """Switching the backend (or any compute key) on an existing run directory is allowed; other keys are not."""
    from echo_utils.rundir import settings_diff

    base = load_config(PARAMS / "ci.yaml").model_dump(mode="json")
    moved = load_config(PARAMS / "ci.yaml", {"compute": {"backend": "slurm", "shard_size": 3,
                                                         "slurm": {"partition": "gpu"}}}).model_dump(mode="json")
    assert settings_diff(base, moved) == []
    other = load_config(PARAMS / "ci.yaml", {"registration": {"alpha": 0.5}}).model_dump(mode="json")
    assert [k for k, _, _ in settings_diff(base, other)] == ["registration.alpha"]


def test_study_jobs_stable_names_and_keys(tmp_path):
    """The ci study's jobs: one per shard / (model, fold) / prediction set; names and keys do not depend on the
    backend, keys follow the settings the work depends on."""
    over = {"data": {"root": str(tmp_path / "cohort")}, "compute": {"shard_size": 3}}
    cfg = load_config(PARAMS / "ci.yaml", over)
    paths = RunPaths(tmp_path / "run")
    study = Study(cfg, paths)
    stages = compute.study_jobs(study, "cpu")
    n_seqs = len(study.cohort.keys("train")) + len(study.cohort.keys("val"))
    shards = stages[1]
    assert len(shards) == -(-n_seqs // 3) and [j.name for j in shards][0] == "pseudo-labels-dlir-000"
    assert sum(len(j.kwargs["keys"]) for j in shards) == n_seqs
    assert stages[2][0].after == tuple(j.name for j in shards)
    nn = cfg.nnunet
    assert len(stages[3]) == len(nn.models) * len(nn.folds)
    assert {j.name for j in stages[4]} == {f"nnunet-predict-{m}-test" for m in nn.models} | {
        "nnunet-predict-2d_sparse-trainval"}
    assert all(set(j.after) <= {t.name for t in stages[3]} for j in stages[4])
    slurm = load_config(PARAMS / "ci.yaml", {**over, "compute": {"shard_size": 3, "backend": "slurm"}})
    again = compute.study_jobs(Study(slurm, paths), "cpu")
    assert [[(j.name, j.key) for j in s] for s in again] == [[(j.name, j.key) for j in s] for s in stages]
    assert again[0][0].kwargs["device"] == "auto"  # decided on the node
    other = load_config(PARAMS / "ci.yaml", {**over, "registration": {"alpha": 0.5}})
    assert compute.dir_training_jobs(Study(other, paths))[0].key != stages[0][0].key
    # speed-only keys (rundir.RUNTIME_KEYS) leave every job's key alone: a run with more threads reuses the jobs
    faster = load_config(PARAMS / "ci.yaml", {**over, "registration": {"threads": 3, "elastix": {"workers": 4}},
                                              "nnunet": {"threads": 2, "n_proc": 3}})
    assert [[j.key for j in s] for s in compute.study_jobs(Study(faster, paths), "cpu")] == [
        [j.key for j in s] for s in stages]
    # the jobs of one model (the builders name them after the nnunet section's datasets and configurations)
    names = [j.name for j in stages[3]]
    assert "nnunet-train-Dataset802_Echo3DDense-3d_fullres_small-fold0" in names
    # the earlier (cfg, paths) form is gone: a profile is refused with a message naming what to pass
    for call in (lambda: compute.study_jobs(cfg, paths, "cpu"), lambda: compute.nnunet_training_jobs(cfg),
                 lambda: compute.pseudo_label_jobs(cfg), lambda: compute.stage_jobs("nnunet_prepare", cfg),
                 lambda: compute.run_stages("nnunet_prepare", cfg, paths)):
        with pytest.raises(TypeError, match="Study"):
            call()


def test_second_caller_attaches_instead_of_resubmitting(tmp_path):
    """A job submitted earlier (``--submit``, then a notebook) and still running is waited for, not run twice."""
    import threading

    block = tmp_path / "block"
    block.touch()
    job = _square_jobs(tmp_path, 1, block=block)[0]
    run_jobs([job], _local(), wait=False)
    deadline = time.time() + 90
    while not _starts(tmp_path / "out0.txt"):
        assert time.time() < deadline, "the job did not start"
        time.sleep(0.2)
    threading.Timer(1.0, block.unlink).start()
    report = run_jobs([job], _local(), progress=False, log=lambda *a, **k: None)
    assert report.rows[0]["state"] == "done" and not report.rows[0]["skipped"]
    assert _starts(tmp_path / "out0.txt") == 1 and (tmp_path / "out0.txt").read_text() == "0"


def test_slurm_submission_chains_stages_with_fake_sbatch(tmp_path, monkeypatch, capsys):
    """With stand-in ``sbatch``/``srun`` on the PATH, ``--submit`` writes one sbatch script per job, each stage
    ``afterok`` the jobs of the one before, and returns; a second ``--submit`` attaches instead of resubmitting."""
    from echo_utils.run import main

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    counter = tmp_path / "next_id"
    counter.write_text("100")
    (bin_dir / "sbatch").write_text(
        "#!/bin/sh\n"
        f'id=$(cat {counter}); echo $((id + 1)) > {counter}\n'
        f'cp "$1" {tmp_path}/script_$id.sh\n'
        'echo "Submitted batch job $id"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    # sacct: every job is pending (the second --submit must attach to it)
    (bin_dir / "sacct").write_text("#!/bin/sh\nfor a in \"$@\"; do :; done\n"
                                   "echo 'JobID|State'\n"
                                   f"for i in $(seq 100 $(cat {counter})); do echo \"$i|PENDING\"; done\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    raw = yaml.safe_load((PARAMS / "ci.yaml").read_text())
    raw["data"]["root"] = str(tmp_path / "cohort")
    raw["compute"] = {"backend": "slurm", "shard_size": 4, "slurm": {"partition": "gpu", "timeout_min": 30,
                                                                      "per_kind": {"nnunet_prepare": {"gpus_per_job": 0}}}}
    params = tmp_path / "ci_slurm.yaml"
    params.write_text(yaml.safe_dump(raw))
    run_dir = tmp_path / "run"
    assert main(["--params", str(params), "--run-dir", str(run_dir), "--submit"]) == 0
    out = capsys.readouterr().out
    scripts = {}
    for p in tmp_path.glob("script_*.sh"):
        text = p.read_text()
        name = next(ln.split("=", 1)[1] for ln in text.splitlines() if ln.startswith("#SBATCH --job-name="))
        scripts[name] = (p.stem.split("_")[1], text)
    cfg = load_config(params)
    stages = compute.study_jobs(Study(cfg, RunPaths(run_dir)), "cpu")
    assert set(scripts) == {j.name for s in stages for j in s} and f"submitted {len(scripts)} Slurm jobs" in out

    def deps(name):
        line = [ln for ln in scripts[name][1].splitlines() if ln.startswith("#SBATCH --dependency=")]
        return set(line[0].split("afterok:")[1].strip("'").split(":")) if line else set()

    ids = {n: v[0] for n, v in scripts.items()}
    assert deps("dir-training") == set()
    for j in stages[1]:
        assert deps(j.name) == {ids["dir-training"]}
    assert deps("nnunet-prepare") == {ids[j.name] for j in stages[1]}
    assert "--gpus-per-node" not in scripts["nnunet-prepare"][1] and "--gpus-per-node=1" in scripts["dir-training"][1]
    for j in stages[3]:
        assert deps(j.name) == {ids["nnunet-prepare"]}
    for j in stages[4]:
        assert deps(j.name) == {ids[a] for a in j.after}
    assert all("#SBATCH --partition=gpu" in t and "#SBATCH --time=30" in t for _, t in scripts.values())
    # submitted again while everything is still pending: attached, nothing new submitted
    n_before = len(scripts)
    assert main(["--params", str(params), "--run-dir", str(run_dir), "--submit"]) == 0
    assert len(list(tmp_path.glob("script_*.sh"))) == n_before
