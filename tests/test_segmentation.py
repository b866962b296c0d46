"""echo_utils.segmentation: nnU-Net v2 export format, splits, bad input, seeding, and (slow) CPU training."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from echo_utils import segmentation as nnunet
from echo_utils.camus import EchoSequence
from echo_utils.config import load_config
from echo_utils.rundir import RunPaths
from echo_utils.study import Study, stages


def run_of(cfg, root) -> nnunet.NnUNetRun:
    """The segmentation package's view of a run directory ``root`` with the profile ``cfg``, built at the edge as the
    stages build it (:func:`echo_utils.study.stages.nnunet_run`)."""
    return stages.nnunet_run(Study(cfg, RunPaths(root)))


def toy_sequence(patient: str, view: str, n_frames: int = 6, size: int = 32, seed: int = 0) -> EchoSequence:
    """A contracting LV (cavity 1 inside a myocardium ring 2) above an expanding LA (3), with exact dense labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images, labels = [], []
    for t in range(n_frames):
        s = 1 - 0.3 * t / (n_frames - 1)
        d = np.hypot((yy - 0.4) / 1.6, xx - 0.5)
        lab = np.zeros((size, size), np.uint8)
        lab[d < 0.18 * s + 0.06] = 2
        lab[d < 0.18 * s] = 1
        lab[(np.hypot(yy - 0.8, xx - 0.5) < 0.12 * (2 - s)) & (lab == 0)] = 3
        img = 0.15 + 0.05 * rng.standard_normal((size, size))
        img[lab == 2], img[lab == 1], img[lab == 3] = 0.8, 0.05, 0.1
        images.append(np.clip(img, 0, 1).astype(np.float32))
        labels.append(lab)
    dense = np.stack(labels)
    return EchoSequence(patient=patient, view=view, images=np.stack(images), spacing=(0.5, 0.5), ed=0,
                        es=n_frames - 1, labels={0: dense[0], n_frames - 1: dense[-1]}, dense=dense,
                        dense_kind="exact")


def toy_cohort(n_patients: int = 4, size: int = 32) -> list[EchoSequence]:
    return [toy_sequence(f"patient{p:04d}", v, n_frames=5 + p % 3, size=size, seed=p)
            for p in range(1, n_patients + 1) for v in ("2CH", "4CH")]


@pytest.fixture()
def cfg():
    return load_config("notebooks/params/ci.yaml", overrides={"nnunet": {"n_proc": 1}})


@pytest.fixture()
def cohort():
    seqs = toy_cohort(4)
    return {"train": seqs[:4], "val": seqs[4:6], "test": seqs[6:], "dense": {s.key: s.dense for s in seqs}}


def _read(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_configure_sets_run_paths_and_process_counts(cfg, tmp_path):
    from nnunetv2.paths import nnUNet_preprocessed

    env = nnunet.configure_nnunet(run_of(cfg, tmp_path))
    assert env["nnUNet_raw"] == str(tmp_path / "nnunet" / "raw") == os.environ["nnUNet_raw"]
    assert str(nnUNet_preprocessed) == str(tmp_path / "nnunet" / "preprocessed")  # read lazily by nnU-Net
    assert os.environ["nnUNet_def_n_proc"] == "1"
    assert os.environ["nnUNet_n_proc_DA"] == "0" and os.environ["nnUNet_compile"] == "0"


def test_cli_finds_the_trainer_by_name(cfg, tmp_path):
    """nnUNetv2_train -tr EchoTrainer: nnU-Net's own lookup finds our class through nnUNet_extTrainer."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from echo_utils.segmentation.trainer import EchoTrainer

    nnunet.configure_nnunet(run_of(cfg, tmp_path))
    found = recursive_find_trainer_class_by_name("EchoTrainer")
    assert found is EchoTrainer


def test_model_seeds_differ_by_model_and_profile_seed():
    a = load_config("notebooks/params/ci.yaml")
    b = load_config("notebooks/params/ci.yaml", overrides={"seed": 1})
    seeds = {m: nnunet.model_seed(a.nnunet, m) for m in nnunet.MODELS}
    assert len(set(seeds.values())) == 4
    assert seeds == {m: nnunet.model_seed(a.nnunet, m) for m in nnunet.MODELS}  # a pure function of (seed, name)
    assert all(nnunet.model_seed(b.nnunet, m) != seeds[m] for m in nnunet.MODELS)


def test_convergence_verdicts_from_training_logs():
    import pandas as pd

    n = 30
    rising = np.linspace(0.1, 0.8, n)  # +0.024 per epoch: rose 0.15 over the last 6 epochs
    flat = 0.9 - 0.5 * np.exp(-np.arange(n) / 3.0)  # after 20 epochs: rose 0.0025 over the last 4
    logs = pd.concat([pd.DataFrame({"model": m, "fold": 0, "epoch": np.arange(len(e)), "ema_pseudo_dice": e})
                      for m, e in (("2d_sparse", rising), ("3d_dense", flat[:20]))])
    v = nnunet.convergence(logs, budget_epochs=n)
    assert v.loc[("2d_sparse", 0), "verdict"] == "still improving" and not v.loc[("2d_sparse", 0), "stopped early"]
    assert v.loc[("3d_dense", 0), "verdict"] == "converged" and v.loc[("3d_dense", 0), "stopped early"]
    rise = v.loc[("2d_sparse", 0)].filter(like="rise").iloc[0]
    np.testing.assert_allclose(rise, rising[-1] - rising[-7])  # k = ceil(0.2 * 30) = 6 epochs back
    assert v.loc[("3d_dense", 0), "epochs"] == 20


def test_each_model_is_judged_against_its_own_budget():
    """nnunet.epochs_3d / min_epochs_3d give the 3D models their own budget (None: the 2D one); the trainer's
    settings and the convergence table's "stopped early" read that budget."""
    import pandas as pd

    same = load_config("notebooks/params/ci.yaml", overrides={"nnunet": {"epochs": 30, "min_epochs": 10}}).nnunet
    own = load_config("notebooks/params/ci.yaml", overrides={"nnunet": {
        "epochs": 30, "min_epochs": 10, "epochs_3d": 50, "min_epochs_3d": 20}}).nnunet
    assert [nnunet.model_budget(same, m) for m in ("2d_sparse", "3d_dense")] == [(30, 10), (30, 10)]
    assert [nnunet.model_budget(own, m) for m in ("2d_dense", "3d_dense", "3d_sparse")] == [(30, 10), (50, 20), (50, 20)]
    s = nnunet.training_settings(own, "3d_sparse")
    assert (s["epochs"], s["min_epochs"], s["save_every"]) == (50, 20, 2)
    assert nnunet.training_settings(own, "2d_sparse")["epochs"] == 30
    budgets = nnunet.epoch_budgets(own)
    assert budgets == {m: 50 if m.startswith("3d") else 30 for m in own.models}
    logs = pd.concat([pd.DataFrame({"model": m, "fold": 0, "epoch": np.arange(40), "ema_pseudo_dice": 0.8})
                      for m in ("2d_sparse", "3d_dense")])
    v = nnunet.convergence(logs, {"2d_sparse": 30, "3d_dense": 50})
    assert not v.loc[("2d_sparse", 0), "stopped early"] and v.loc[("3d_dense", 0), "stopped early"]
    assert not nnunet.convergence(logs, None)["stopped early"].any()


def test_plateau_rule():
    from echo_utils.segmentation.trainer import plateaued

    rising = np.linspace(0.2, 0.9, 50)
    assert not plateaued(rising)  # rose 0.7 * 10/49 = 0.14 over the last 20 %
    flat = np.concatenate([rising, np.full(50, 0.9) + 0.001 * np.sin(np.arange(50))])
    assert plateaued(flat)  # the last 20 of 100 epochs rose at most 0.002
    assert not plateaued([0.5])
    assert plateaued([0.5, 0.505]) and not plateaued([0.5, 0.52])


def test_export_3d_sparse_format_and_ignore_label(cfg, cohort, tmp_path):
    run = run_of(cfg, tmp_path)
    folder = nnunet.export_dataset(run, "3d_sparse", cohort["train"], cohort["val"], cohort["test"])
    ds = json.loads((folder / "dataset.json").read_text())
    assert {"channel_names", "labels", "numTraining", "file_ending"} <= set(ds)
    assert ds["labels"]["ignore"] == nnunet.IGNORE_LABEL == max(ds["labels"].values())
    assert ds["numTraining"] == 6 and ds["file_ending"] == ".nii.gz"
    assert len(list((folder / "imagesTs").glob("*.nii.gz"))) == 2
    seq = cohort["train"][1]
    label = _read(folder / "labelsTr" / f"{seq.key}.nii.gz")
    image = sitk.ReadImage(str(folder / "imagesTr" / f"{seq.key}_0000.nii.gz"))
    k = nnunet.dataset_time_padding(run, "3d_sparse")  # ci mirrors k frames past each end (test_time_padding)
    assert label.shape == (seq.n_frames + 2 * k, *seq.shape)
    assert image.GetSpacing() == pytest.approx((0.5, 0.5, nnunet.volume_time_spacing(cfg.nnunet, cohort["train"] + cohort["val"])))  # (x, y, time)
    np.testing.assert_array_equal(label[k + seq.ed], seq.labels[seq.ed])
    np.testing.assert_array_equal(label[k + seq.es], seq.labels[seq.es])
    from echo_utils.segmentation.time_padding import padded_sources

    source = padded_sources(seq.n_frames, k)  # a padded frame carries what the frame it copies carries
    middle = [t for t in range(label.shape[0]) if source[t] not in (seq.ed, seq.es)]
    assert np.all(label[middle] == nnunet.IGNORE_LABEL)
    # nnU-Net's own integrity check passes on the published folder too
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(folder), num_processes=1)
    # and so do its per-case checks run in threads, which reject a label value that is not declared
    nnunet.verify_dataset(cfg.nnunet, folder, tmp_path / "verify.log")
    bad = sitk.GetImageFromArray(np.full(label.shape, 7, np.uint8))
    bad.CopyInformation(image)
    sitk.WriteImage(bad, str(folder / "labelsTr" / f"{seq.key}.nii.gz"))
    with pytest.raises(nnunet.NnUNetError, match="integrity check failed"):
        nnunet.verify_dataset(cfg.nnunet, folder, tmp_path / "verify.log")


def test_export_2d_sparse_and_dense_cases(cfg, cohort, tmp_path):
    run = run_of(cfg, tmp_path)
    seqs = cohort["train"] + cohort["val"]
    sparse = nnunet.export_dataset(run, "2d_sparse", cohort["train"], cohort["val"])
    assert json.loads((sparse / "dataset.json").read_text())["numTraining"] == 2 * len(seqs)
    dense_labels = {k: v.copy() for k, v in cohort["dense"].items()}
    seq = seqs[0]
    dense_labels[seq.key][seq.ed] = 0  # the manual label must win at ED
    dense = nnunet.export_dataset(run, "2d_dense", cohort["train"], cohort["val"], (), dense_labels)
    ds = json.loads((dense / "dataset.json").read_text())
    assert ds["numTraining"] == sum(s.n_frames for s in seqs) and "ignore" not in ds["labels"]
    np.testing.assert_array_equal(_read(dense / "labelsTr" / f"{seq.key}_f000.nii.gz"), seq.labels[seq.ed])
    np.testing.assert_array_equal(_read(dense / "labelsTr" / f"{seq.key}_f002.nii.gz"), seq.dense[2])
    np.testing.assert_allclose(_read(dense / "imagesTr" / f"{seq.key}_f002_0000.nii.gz"), seq.images[2])


def test_splits_keep_patients_together(cfg, cohort, tmp_path):
    run = run_of(cfg, tmp_path)
    nnunet.export_dataset(run, "2d_sparse", cohort["train"], cohort["val"])
    splits = json.loads((tmp_path / "nnunet/preprocessed/Dataset800_Echo2DSparse/splits_final.json").read_text())
    assert len(splits) == 1
    assert {c.split("_")[0] for c in splits[0]["val"]} == {"patient0003"}
    assert {c.split("_")[0] for c in splits[0]["train"]} == {"patient0001", "patient0002"}
    # five folds: every patient in exactly one validation fold, with both views
    cfg5 = load_config("notebooks/params/ci.yaml",
                       overrides={"nnunet": {"folds": [0, 1, 2, 3, 4]}, "data": {"n_patients": 12}})
    many = toy_cohort(10, size=8)
    folds = nnunet.make_splits(cfg5.nnunet.folds, many[:16], many[16:])
    assert len(folds) == 5
    val = [p for f in folds for p in f["val"]]
    assert sorted(val) == sorted({s.patient for s in many})
    for f in folds:
        assert not set(f["train"]) & set(f["val"])
    cases = nnunet.export._case_splits(folds, [s.key for s in many])
    for f in cases:
        patients = {c.split("_")[0] for c in f["val"]}
        assert len(f["val"]) == 2 * len(patients)  # 2CH and 4CH together


def test_missing_pseudo_labels_is_a_clear_error(cfg, cohort, tmp_path):
    run = run_of(cfg, tmp_path)
    dense = dict(cohort["dense"])
    del dense[cohort["train"][2].key]
    with pytest.raises(nnunet.NnUNetError, match=r"pseudo-labels for patient0002_2CH.*notebook 03"):
        nnunet.export_dataset(run, "3d_dense", cohort["train"], cohort["val"], (), dense)
    assert not list((tmp_path / "nnunet" / "raw").iterdir())  # nothing written
    bad = dict(cohort["dense"])
    bad[cohort["train"][0].key] = bad[cohort["train"][0].key][:-1]
    with pytest.raises(nnunet.NnUNetError, match="shape"):
        nnunet.export_dataset(run, "2d_dense", cohort["train"], cohort["val"], (), bad)


def test_dataset_id_clash_keeps_existing_work(cfg, cohort, tmp_path):
    run = run_of(cfg, tmp_path)
    folder = nnunet.export_dataset(run, "2d_sparse", cohort["train"], cohort["val"])
    stamp = (folder / "echo_export.json").stat().st_mtime_ns
    assert nnunet.export_dataset(run, "2d_sparse", cohort["train"], cohort["val"]) == folder  # reused
    changed = [toy_sequence(s.patient, s.view, s.n_frames, seed=99) for s in cohort["train"]]
    with pytest.raises(nnunet.NnUNetError, match="already holds a different dataset"):
        nnunet.export_dataset(run, "2d_sparse", changed, cohort["val"])
    assert (folder / "echo_export.json").stat().st_mtime_ns == stamp
    (tmp_path / "nnunet" / "raw" / "Dataset801_SomethingElse").mkdir()
    with pytest.raises(nnunet.NnUNetError, match="id 801 is already used"):
        nnunet.export_dataset(run, "2d_dense", cohort["train"], cohort["val"], (), cohort["dense"])


def test_small_configuration_topology():
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    cfg = load_config("notebooks/params/demo.yaml")
    parent = {"spacing": [1.0, 1.4, 1.4], "patch_size": [32, 128, 128], "batch_size": 2,
              "median_image_size_in_voxels": [20, 128, 128],
              "architecture": {"arch_kwargs": {"n_conv_per_stage": [2] * 6, "n_conv_per_stage_decoder": [2] * 5,
                                               "features_per_stage": [32, 64, 128, 256, 320, 320]}}}
    plans = {"configurations": {"3d_fullres": parent}, "transpose_forward": [0, 1, 2]}
    small = nnunet.small_configuration(plans, "3d_fullres", cfg.nnunet)
    assert small["inherits_from"] == "3d_fullres"
    # 128 px resampled to in_plane_size px: in-plane spacing x 128 / in_plane_size, time spacing kept
    factor = 128 / cfg.nnunet.in_plane_size
    np.testing.assert_allclose(small["spacing"], [1.0, 1.4 * factor, 1.4 * factor])
    assert small["data_identifier"] != "nnUNetPlans_3d_fullres"  # its own preprocessed data
    assert small["patch_size"] == list(cfg.nnunet.patch_3d) and small["batch_size"] == cfg.nnunet.batch_3d
    arch = small["architecture"]["arch_kwargs"]
    n = arch["n_stages"]
    assert arch["features_per_stage"] == [min(320, 32 * 2**i) // cfg.nnunet.features_divisor for i in range(n)]
    strides = np.prod(np.array(arch["strides"]), axis=0)
    assert np.all(np.array(small["patch_size"]) % strides == 0)  # the patch fits the pooling
    assert len(arch["n_conv_per_stage"]) == n and len(arch["n_conv_per_stage_decoder"]) == n - 1
    expected = get_pool_and_conv_props(small["spacing"], list(cfg.nnunet.patch_3d), 4, 999999)[1]
    assert arch["strides"] == [list(v) for v in expected]
    # without in_plane_size: the parent's spacing and preprocessed data
    native = nnunet.small_configuration(plans, "3d_fullres", cfg.nnunet.model_copy(update={"in_plane_size": None}))
    assert "spacing" not in native and "data_identifier" not in native


def test_load_prediction_checks_shape(tmp_path):
    predictions = tmp_path / "predictions"
    seq = toy_sequence("patient0001", "2CH")
    with pytest.raises(nnunet.NnUNetError, match="notebook 04"):
        nnunet.load_prediction(predictions, "3d_dense", seq)
    path = nnunet.prediction_path(predictions, "3d_dense", seq)
    assert path == predictions / "3d_dense" / "patient0001_2CH.nii.gz"
    # the run directory's RunPaths (report.fig2_summary's form) names the same file
    assert nnunet.prediction_path(RunPaths(tmp_path), "3d_dense", seq) == path
    path.parent.mkdir(parents=True)
    sitk.WriteImage(sitk.GetImageFromArray(seq.dense[:-1]), str(path))
    with pytest.raises(nnunet.NnUNetError, match="does not match"):
        nnunet.load_prediction(predictions, "3d_dense", seq)


def test_the_whole_profile_is_refused_with_a_message(cfg, tmp_path):
    """The package takes the nnunet section or an NnUNetRun: a whole profile is a TypeError that says what to pass
    (a caller not moved to the new form fails at once, not deep inside nnU-Net)."""
    for call in (lambda: nnunet.dataset_name(cfg, "3d_dense"), lambda: nnunet.model_seed(cfg, "3d_dense"),
                 lambda: nnunet.training_settings(cfg, "3d_dense"), lambda: nnunet.NnUNetRun(cfg, tmp_path, tmp_path),
                 lambda: nnunet.time_padding.time_padding_frames(cfg)):
        with pytest.raises(TypeError, match=r"cfg\.nnunet"):
            call()
    run = run_of(cfg, tmp_path)  # the edge: the section and the run directory's nnunet/ and predictions/ folders
    assert run.nn is cfg.nnunet and run.root == tmp_path / "nnunet" and run.predictions == tmp_path / "predictions"
    assert nnunet.env.nnunet_dirs(run) == {"nnUNet_raw": run.raw, "nnUNet_preprocessed": run.preprocessed,
                                           "nnUNet_results": run.results}
    assert nnunet.train.fold_folder(run, "3d_dense", 0) == (
        tmp_path / "nnunet/results/Dataset802_Echo3DDense/EchoTrainer__nnUNetPlans__3d_fullres_small/fold_0")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["2d_sparse", "3d_sparse"])
def test_train_and_predict_on_cpu(model, tmp_path):
    """The ci budget: plans, trains, reuses, resumes, predicts every frame; a deleted model retrains identically."""
    import shutil

    import torch

    cfg = load_config("notebooks/params/ci.yaml")
    run = run_of(cfg, tmp_path)
    seqs = toy_cohort(3, size=48)
    train, val, test = seqs[:4], seqs[4:5], seqs[5:]
    dense = {s.key: s.dense for s in seqs}
    nnunet.export_dataset(run, model, train, val, test, dense)
    plans = nnunet.plan_and_preprocess(run, model)
    conf = plans["configurations"][nnunet.configuration_name(cfg.nnunet, model)]
    assert conf["inherits_from"] == ("2d" if model.startswith("2d") else "3d_fullres")
    assert conf["echo"] == nnunet.training_settings(cfg.nnunet, model)
    assert conf["echo"]["oversample_foreground"] == (1.0 if model == "3d_sparse" else None)
    table = nnunet.plans_table(run, [model])
    assert table.loc[model, "batch"] == (cfg.nnunet.batch_2d if model.startswith("2d") else cfg.nnunet.batch_3d)

    fold = nnunet.train_model(run, model)
    final = fold / "checkpoint_final.pth"
    assert final.is_file()
    log = nnunet.training_log(run, model)
    assert len(log) == cfg.nnunet.epochs and np.isfinite(log["train_loss"]).all()
    stamp = final.stat().st_mtime_ns
    assert nnunet.train_model(run, model) == fold and final.stat().st_mtime_ns == stamp  # reused
    out = nnunet.predict_all(run, model, test)
    for seq in test:
        pred = nnunet.load_prediction(run.predictions, model, seq)
        assert pred.shape == seq.images.shape and pred.dtype == np.uint8
        assert set(np.unique(pred)) <= {0, 1, 2, 3}
    assert (out / "echo_predictions.json").is_file()
    first = {p.name: p.read_bytes() for p in sorted(out.glob("*.nii.gz"))}
    weights = torch.load(final, map_location="cpu", weights_only=False)["network_weights"]

    # delete the trained model and its predictions, disturb every random generator, and train again: the model is
    # seeded from the profile and its name, so the weights and the prediction files come back byte for byte
    shutil.rmtree(nnunet.train.results_folder(run, model))
    shutil.rmtree(out)
    np.random.seed(123), torch.manual_seed(123), np.random.rand(7), torch.rand(7)
    nnunet.train_model(run, model)
    again = torch.load(final, map_location="cpu", weights_only=False)["network_weights"]
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    out = nnunet.predict_all(run, model, test)
    assert {p.name: p.read_bytes() for p in sorted(out.glob("*.nii.gz"))} == first

    os.replace(final, fold / "checkpoint_latest.pth")  # an interrupted run continues from nnU-Net's checkpoint
    nnunet.train_model(run, model)
    assert final.is_file() and not (fold / "checkpoint_latest.pth").exists()

    budget = load_config("notebooks/params/ci.yaml", overrides={"nnunet": {"epochs": 3}})
    with pytest.raises(nnunet.NnUNetError, match="other training settings"):
        nnunet.train_model(run_of(budget, tmp_path), model)
    nnunet.plan_and_preprocess(run_of(budget, tmp_path), model)  # new settings in the plans, nothing preprocessed again
    with pytest.raises(nnunet.NnUNetError, match="other plans or settings"):
        nnunet.train_model(run_of(budget, tmp_path), model)


@pytest.mark.slow
def test_resumed_training_equals_uninterrupted(tmp_path, monkeypatch):
    """Killed after epoch 2 of 4 and resumed from checkpoint_latest.pth: the same weights as a run never stopped."""
    import shutil

    import torch

    from echo_utils.segmentation.trainer import EchoTrainer

    cfg = load_config("notebooks/params/ci.yaml", overrides={"nnunet": {"epochs": 4}})
    run = run_of(cfg, tmp_path)
    seqs = toy_cohort(3, size=48)
    nnunet.export_dataset(run, "2d_sparse", seqs[:4], seqs[4:5])
    nnunet.plan_and_preprocess(run, "2d_sparse")
    final = nnunet.train_model(run, "2d_sparse") / "checkpoint_final.pth"
    uninterrupted = torch.load(final, map_location="cpu", weights_only=False)["network_weights"]
    shutil.rmtree(nnunet.train.results_folder(run, "2d_sparse"))

    original = EchoTrainer.on_epoch_end

    def killed_after_epoch_2(self):
        original(self)
        if self.current_epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(EchoTrainer, "on_epoch_end", killed_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        nnunet.train_model(run, "2d_sparse")
    latest = final.parent / "checkpoint_latest.pth"
    assert latest.is_file() and not final.is_file()
    monkeypatch.undo()

    # a planted checkpoint_latest.pth whose unpickling would run code: the resume refuses it and nothing runs
    from echo_utils.safe_load import UnsafeFile

    marker, genuine = tmp_path / "ran", latest.read_bytes()

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"network_weights": Payload(), "current_epoch": 2}, latest)
    with pytest.raises(UnsafeFile, match="checkpoint_latest.pth"):
        nnunet.train_model(run, "2d_sparse")
    assert not marker.exists()
    latest.write_bytes(genuine)
    nnunet.train_model(run, "2d_sparse")
    resumed = torch.load(final, map_location="cpu", weights_only=False)["network_weights"]
    assert all(torch.equal(uninterrupted[k], resumed[k]) for k in uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("pools", ["thread", "process"])
def test_plain_script_without_main_guard_runs_once(pools, tmp_path):
    """Export, integrity check, fingerprint and preprocessing from a script with no ``__main__`` guard: the script
    runs once (spawned workers would re-import it), also when the profile asks for nnU-Net's process pools."""
    import subprocess
    import sys
    import textwrap

    ran = tmp_path / "ran.txt"
    script = tmp_path / "plain_script.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        with open({str(ran)!r}, "a") as fh:
            fh.write("ran\\n")
        from test_segmentation import toy_cohort
        from echo_utils import segmentation
        from echo_utils.config import load_config
        from echo_utils.rundir import RunPaths
        cfg = load_config("notebooks/params/ci.yaml", overrides={{"nnunet": {{"pools": {pools!r}}}}})
        run = segmentation.NnUNetRun(cfg.nnunet, RunPaths({str(tmp_path / "run")!r}).nnunet, {str(tmp_path)!r})
        seqs = toy_cohort(3, size=32)
        segmentation.export_dataset(run, "2d_sparse", seqs[:4], seqs[4:])
        segmentation.plan_and_preprocess(run, "2d_sparse")
        print("done")
    """))
    env = {k: v for k, v in os.environ.items() if k != "ECHO_NNUNET_POOLS"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, env=env,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "done" in proc.stdout and ran.read_text() == "ran\n"
    if pools == "process":
        assert "using threads instead" in proc.stderr


def test_load_checkpoint_reads_nnunet_values_and_refuses_a_pickle_that_runs_code(tmp_path):
    """Our nnU-Net checkpoints load with weights_only=True; a payload that would run code on load is refused."""
    import pickle

    import torch

    from echo_utils.segmentation.predict import load_checkpoint

    good = tmp_path / "good.pth"
    state = {"network_weights": {"w": torch.ones(2)}, "logging": {"ema": [np.float64(0.5)], "dtype": np.dtype("f4")},
             "inference_allowed_mirroring_axes": (0, 1)}
    torch.save(state, good)
    back = load_checkpoint(good)
    assert torch.equal(back["network_weights"]["w"], torch.ones(2))
    assert back["logging"]["ema"][0] == 0.5 and back["inference_allowed_mirroring_axes"] == (0, 1)

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "bad.pth"
    torch.save({"network_weights": Payload()}, bad)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(bad)
    assert not marker.exists()
