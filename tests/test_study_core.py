"""echo_utils.study: the Study (profile + run paths + resolved cohort, built once, serialisable) and its stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from echo_utils import compute
from echo_utils.config import load_config
from echo_utils.data import cohort as cohort_data
from echo_utils.rundir import RunPaths
from echo_utils.study import Study, open_study, stages

PARAMS = Path(__file__).resolve().parent.parent / "notebooks" / "params" / "ci.yaml"
SMALL = {"data": {"n_patients": 4, "frames": [4, 5], "size": 48}}


def _study(tmp_path) -> Study:
    return Study.of(load_config(PARAMS, SMALL), RunPaths(tmp_path / "run"))


def test_cohort_is_the_profile_resolved_once(tmp_path):
    study = _study(tmp_path)
    cfg, paths = study.cfg, study.paths
    assert study.resolved
    root = cohort_data.cohort_root(cfg.data, paths.data, generate=False)  # the plain functions, called directly
    split = cohort_data.cohort_split(cfg.data, root, paths.data, write=False)
    assert study.cohort.root == str(root)
    assert dict(study.cohort.split) == {k: tuple(v) for k, v in split.items()}
    for name in ("train", "val", "test", "all"):
        assert study.cohort.keys(name) == cohort_data.split_keys(split, ("2CH", "4CH"), name)
    assert [s.key for s in study.sequences("train")] == [f"{p}_{v}" for p in split["train"] for v in ("2CH", "4CH")]
    assert study.cohort.exclusions == ()  # synthetic: the registration leaves nobody out
    with pytest.raises(cohort_data.EchoDataError, match="unknown split 'training set'"):
        study.cohort.keys("training set")


def test_study_round_trips_through_json_without_resolving_again(tmp_path, monkeypatch):
    study = _study(tmp_path)
    blob = json.dumps(study.to_dict())  # plain JSON: what a job's kwargs carry
    # a rebuilt study must not work the cohort out again: every resolver fails from here on
    for name in ("cohort_root", "cohort_split", "ted_pairs", "ted_exclusions"):
        monkeypatch.setattr(cohort_data, name, lambda *a, **k: pytest.fail("the cohort was resolved again"))
    again = Study.from_dict(json.loads(blob))
    assert again.cohort == study.cohort and again.cfg == study.cfg and again.paths.root == study.paths.root
    assert [s.key for s in again.sequences("val")] == [f"{p}_{v}" for p, v in study.cohort.keys("val")]


def test_unresolved_study_resolves_on_first_use_and_serialises_without_cohort(tmp_path):
    study = Study(load_config(PARAMS, SMALL), RunPaths(tmp_path / "run"))
    assert not study.resolved and study.to_dict()["cohort"] is None
    assert not (tmp_path / "run").exists()  # nothing generated yet
    assert Study.from_dict(study.to_dict()).resolved is False
    assert study.cohort.keys("test")  # now generated and resolved
    assert study.resolved and study.to_dict()["cohort"]["split"]["test"]


def test_open_study_checks_the_run_directory_then_resolves(tmp_path):
    study = open_study(PARAMS, SMALL, tmp_path / "run")
    assert study.resolved and (tmp_path / "run" / "run.json").is_file()
    assert study.paths.root == (tmp_path / "run").resolve()


def test_the_trained_registration_is_assembled_by_the_stage(tmp_path, monkeypatch):
    """stages.registration hands registration_from_config the train split, the val split, the cohort's
    exclusions, the registration folder and a monitor that is built only when a training calls it."""
    from echo_utils import registration

    study = _study(tmp_path)
    calls = []
    monkeypatch.setattr(registration, "registration_from_config", lambda name, config, **kw: calls.append(
        (name, config, kw)) or "net")
    built = []
    from echo_utils.registration import evidence

    monkeypatch.setattr(evidence, "epe_monitor", lambda root, val, kind: built.append((root, kind)) or (lambda m: {}))
    assert stages.registration(study, "cpu") == "net"
    (name, config, kw), = calls
    assert name == "dlir" and config == study.cfg.registration
    assert [s.key for s in kw["train"]] == [f"{p}_{v}" for p, v in study.cohort.keys("train")]
    assert [s.key for s in kw["val"]] == [f"{p}_{v}" for p, v in study.cohort.keys("val")]
    assert kw["run_dir"] == study.paths.registration and kw["device"] == "cpu"
    assert kw["exclude_patients"] == list(study.cohort.exclusions)
    assert built == []  # a network read back from the cache never builds the monitor
    assert kw["monitor"](object()) == {} and built == [(study.cohort.root, "step")]
    stages.registration(study, "cpu", name="instance")
    assert calls[-1][0] == "instance" and calls[-1][2] == {}


def test_jobs_carry_the_resolved_study_and_keep_their_keys(tmp_path):
    from echo_utils.compute.jobs import job_key

    study = _study(tmp_path)
    jobs = compute.study_jobs(study, "cpu", stages=("dir_training", "pseudo_labels"))
    for job in (j for stage in jobs for j in stage):
        assert Study.from_dict(job.kwargs["study"]).cohort == study.cohort
    # the key names the job function by the module's earlier name: done markers of earlier runs stay valid; it
    # holds the sections the work depends on without the speed-only keys (rundir.RUNTIME_KEYS)
    from echo_utils.rundir.settings import without_runtime_keys

    full = study.cfg.model_dump(mode="json")
    dump = without_runtime_keys(full)
    assert "threads" not in dump["registration"] and "workers" not in dump["registration"]["elastix"]
    assert "threads" in full["registration"] and "workers" in full["registration"]["elastix"]  # a copy was cut
    sections = {k: dump.get(k) for k in ("seed", "data", "registration", "pseudo_labels", "nnunet")}
    assert jobs[0][0].key == job_key("echo_utils.compute.study:task_dir_training", [sections])
    # the earlier (cfg, paths) form is refused (tests/test_compute.py): the builders take the study
    with pytest.raises(TypeError, match="Study"):
        compute.study_jobs(study.cfg, "cpu", stages=("dir_training", "pseudo_labels"))


def test_a_job_folder_planned_before_the_study_gets_a_clear_error(tmp_path):
    """job.json of an earlier run (job functions in echo_utils.compute.study, taking config + run_dir): resubmit
    names the file and how to plan it again, instead of a TypeError in the job."""
    from echo_utils.compute.jobs import load_spec

    folder = tmp_path / "jobs" / "dir-training"
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"job": {
        "name": "dir-training", "fn": "echo_utils.compute.study:task_dir_training", "kwargs": {"config": {},
        "run_dir": str(tmp_path), "device": "cpu"}, "kind": "dir_training", "run_dir": str(tmp_path), "key": "k",
        "after": []}, "compute": {}}))
    with pytest.raises(ValueError, match=r"job\.json was planned before .* plan it again"):
        load_spec(folder)
