"""The 3D nnU-Nets: time planned against space as for the paper's volumes, honest 3D sparse supervision (padding
ignored, deep supervision at full time resolution, no early stop while a class is unlearned), the even/odd
component of Fig. 3, per-patient volume errors, and nnU-Net trainings run two at once (issue 22)."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from echo_utils import segmentation as nnunet
from echo_utils.config import ComputeConfig, load_config
from echo_utils.rundir import RunPaths
from echo_utils.report import smoothness, tables

from test_segmentation import run_of, toy_cohort, toy_sequence


def _parent(time_spacing: float, in_plane: float = 1.4, size: int = 128) -> dict:
    """A 3d_fullres configuration as nnU-Net plans it for the demo's data (spacing (t, y, x), 20 frames)."""
    return {"spacing": [time_spacing, in_plane, in_plane], "patch_size": [20, 128, 128], "batch_size": 2,
            "median_image_size_in_voxels": [20, size, size],
            "architecture": {"arch_kwargs": {"n_conv_per_stage": [2] * 6, "n_conv_per_stage_decoder": [2] * 5,
                                             "features_per_stage": [32, 64, 128, 256, 320, 320]}}}



# ----------------------------------------------------------------------------------------------------------------
# time spacing and the 3D plan
# ----------------------------------------------------------------------------------------------------------------


def test_volume_time_spacing_keeps_the_reference_ratio():
    cfg = load_config("notebooks/params/ci.yaml")  # small, no in_plane_size: the data's own grid
    seqs = toy_cohort(2, size=32)  # spacing 0.5 x 0.5, 32 px
    t, y, x = cfg.nnunet.time_reference_spacing
    assert nnunet.volume_time_spacing(cfg.nnunet, seqs) == pytest.approx(t / min(y, x) * 0.5, rel=1e-3)
    coarse = cfg.model_copy(update={"nnunet": cfg.nnunet.model_copy(update={"in_plane_size": 16})})
    # resampled to 16 px across: in-plane spacing 0.5 * 32 / 16 = 1.0
    assert nnunet.volume_time_spacing(coarse.nnunet, seqs) == pytest.approx(t / min(y, x) * 1.0, rel=1e-3)
    stored = cfg.model_copy(update={"nnunet": cfg.nnunet.model_copy(update={"time_reference_spacing": None})})
    assert nnunet.volume_time_spacing(stored.nnunet, seqs) == cfg.nnunet.time_spacing
    with pytest.raises(ValueError, match="positive"):
        load_config("notebooks/params/ci.yaml", overrides={"nnunet": {"time_reference_spacing": [1, 0, 0.3]}})


def test_demo_3d_plan_convolves_in_plane_first_and_pools_time_once():
    """The demo's 3D network: first stage 1x3x3 (space only), time pooled exactly once; with the stored time
    spacing 1 (the control) nnU-Net's topology convolves time only in its first stage."""
    cfg = load_config("notebooks/params/demo.yaml")
    nn = cfg.nnunet
    spacing = 1.4  # the synthetic cohort at 128 px (about 180 mm across), 64 px after the small resampling
    seqs = [toy_sequence(f"patient{p:04d}", "2CH", n_frames=12, size=128, seed=p) for p in range(1, 4)]
    seqs = [dataclasses.replace(s, spacing=(spacing, spacing)) for s in seqs]
    ts = nnunet.volume_time_spacing(cfg.nnunet, seqs)
    plans = {"configurations": {"3d_fullres": _parent(ts, spacing)}, "transpose_forward": [0, 1, 2]}
    arch = nnunet.small_configuration(plans, "3d_fullres", nn)["architecture"]["arch_kwargs"]
    assert arch["kernel_sizes"][0] == [1, 3, 3]
    strides = np.array(arch["strides"])
    assert int(np.sum(strides[:, 0] == 2)) == 1 and list(strides[1]) == [1, 2, 2]  # in plane first, time once
    plans["configurations"]["3d_fullres"] = _parent(nn.time_spacing, spacing)
    control = nnunet.small_configuration(plans, "3d_fullres", nn)["architecture"]["arch_kwargs"]
    assert control["kernel_sizes"][0] == [3, 1, 1]  # time first: the plan the issue measured


def test_reference_plan_is_nnunets_own_for_camus_like_volumes():
    """nnU-Net's planner on a CAMUS-like fingerprint (512 px, 0.3 mm, time 1): in plane first, time pooled once."""
    from echo_utils.segmentation import plans

    conf = plans.reference_plan()
    table = plans.stage_table(conf)
    assert table["kernel"].iloc[0] == "1x3x3"
    assert [s.split("x")[0] for s in table["stride into stage"]].count("2") == 1
    assert conf["spacing"] == [1.0, 0.3, 0.3]  # target = stored: nothing resampled along time
    fine = plans.stage_table(plans.reference_plan((1.0, 0.15, 0.15)))  # r = 6.7: two in-plane stages
    assert list(fine["kernel"].iloc[:2]) == ["1x3x3", "1x3x3"]
    # the feature maps are the patch divided by the strides so far
    first = [int(v) for v in table["feature map"].iloc[-1].split("x")]
    assert first == list(np.array(conf["patch_size"]) // np.prod(
        np.array(conf["architecture"]["arch_kwargs"]["strides"]), axis=0))


@pytest.mark.slow
def test_time_spacing_changes_the_plan_only(tmp_path):
    """Exported with the derived time spacing, planned and preprocessed: the configuration's time spacing is the
    stored one and every preprocessed volume keeps all its frames (nothing resampled along time)."""
    cfg = load_config("notebooks/params/ci.yaml")
    run = run_of(cfg, tmp_path)
    seqs = toy_cohort(3, size=48)
    train, val = seqs[:4], seqs[4:]
    nnunet.export_dataset(run, "3d_dense", train, val, [], {s.key: s.dense for s in seqs})
    ts = nnunet.dataset_time_spacing(run, "3d_dense")
    assert ts == nnunet.volume_time_spacing(cfg.nnunet, train + val) != cfg.nnunet.time_spacing
    plans = nnunet.plan_and_preprocess(run, "3d_dense")
    conf = plans["configurations"][nnunet.configuration_name(cfg.nnunet, "3d_dense")]
    parent = plans["configurations"]["3d_fullres"]
    assert parent["spacing"][0] == pytest.approx(ts, rel=1e-6)
    assert conf["architecture"]["arch_kwargs"]["kernel_sizes"][0][0] == 1  # the first stage convolves in plane
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    pre = run.preprocessed / nnunet.dataset_name(cfg.nnunet, "3d_dense") / parent["data_identifier"]
    ds = infer_dataset_class(str(pre))(str(pre))
    for seq in train + val:
        data, seg, _, props = ds.load_case(seq.key)
        k = nnunet.dataset_time_padding(run, "3d_dense")  # frames mirrored past each end (ci: reflect)
        assert data.shape[1] == seq.n_frames + 2 * k and seg.shape[1] == seq.n_frames + 2 * k
    table = nnunet.plans_table(run, ["3d_dense"])
    t, y, x = cfg.nnunet.time_reference_spacing
    assert table.loc["3d_dense", "time / in-plane spacing"] == pytest.approx(t / min(y, x), rel=0.01)


# ----------------------------------------------------------------------------------------------------------------
# 3D sparse supervision and the early stop
# ----------------------------------------------------------------------------------------------------------------


def test_class_ema_is_nnunets_rule_per_class():
    from echo_utils.segmentation.trainer import class_ema

    d = np.zeros((10, 2))
    d[3:, 0] = 1.0  # a step at epoch 3
    d[:, 1] = 0.4
    d[5, 1] = np.nan  # the class absent in one epoch: the EMA stays
    e = class_ema(d)
    np.testing.assert_allclose(e[:3, 0], 0)
    np.testing.assert_allclose(e[3:, 0], 1 - 0.9 ** np.arange(1, 8))
    np.testing.assert_allclose(e[:, 1], 0.4)
    late = class_ema(np.array([[np.nan], [0.5], [1.0]]))
    assert np.isnan(late[0, 0]) and late[1, 0] == 0.5 and late[2, 0] == pytest.approx(0.55)


def test_early_stop_waits_for_every_class():
    from echo_utils.segmentation.trainer import EchoTrainer

    n = 100
    mean = np.concatenate([np.linspace(0, 0.6, 40), np.full(n - 40, 0.6)])  # a plateau of the mean EMA
    per_class = np.column_stack([np.full(n, 0.9), np.full(n, 0.9), np.zeros(n)])  # LA never learned

    class Log:
        def __init__(self, per):
            self.values = {"ema_fg_dice": list(mean), "dice_per_class_or_region": per.tolist()}

        def get_value(self, key, step=None):
            return self.values[key]

    fake = SimpleNamespace(echo={"min_epochs": 10, "min_class_dice": 0.05}, logger=Log(per_class))
    assert not EchoTrainer.should_stop(fake)
    per_class[:, 2] = 0.3
    fake.logger = Log(per_class)
    assert EchoTrainer.should_stop(fake)
    fake.echo["min_epochs"] = n + 1
    assert not EchoTrainer.should_stop(fake)


def test_convergence_verdict_names_unlearned_classes():
    n = 60
    ema = np.concatenate([np.linspace(0.1, 0.3, 20), np.full(n - 20, 0.3)])
    logs = pd.DataFrame({"model": "3d_sparse", "fold": 0, "epoch": np.arange(n), "ema_pseudo_dice": ema,
                         "ema dice LV": 0.0, "ema dice MYO": 0.62, "ema dice LA": 0.01})
    v = nnunet.convergence(logs, 200, min_class_dice=0.05).loc[("3d_sparse", 0)]
    assert v["verdict"] == "plateaued, LV, LA not learned"
    assert v["EMA MYO"] == pytest.approx(0.62) and v["EMA LV"] == 0.0
    logs[["ema dice LV", "ema dice LA"]] = 0.5
    assert nnunet.convergence(logs, 200, min_class_dice=0.05).loc[("3d_sparse", 0), "verdict"] == "converged"


def test_padding_becomes_the_ignore_label_only_when_asked():
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from echo_utils.segmentation.trainer import EchoTrainer

    # (c, t, y, x), nnU-Net's padding -1: frame 0 padded throughout (past the sequence), frame 1 padded at one pixel
    # (past the image's edge in plane)
    seg = torch.tensor([[[[-1, -1], [-1, -1]], [[-1, 0], [1, 3]]]])

    def run(padding_as_ignore: bool):
        fake = SimpleNamespace(echo={"padding_as_ignore": padding_as_ignore},
                               label_manager=SimpleNamespace(ignore_label=4))
        t = EchoTrainer._padding_as_ignore(fake, nnUNetTrainer.get_validation_transforms(None, ignore_label=4))
        return t(image=torch.zeros(1, 2, 2, 2), segmentation=seg.clone())["segmentation"]

    assert run(True).flatten().tolist() == [4, 4, 4, 4, 0, 0, 1, 3]  # the frame ignored, the in-plane pixel background
    assert run(False).flatten().tolist() == [0, 0, 0, 0, 0, 0, 1, 3]  # nnU-Net's default: padding is background


def test_padded_frames_as_ignore_on_2d_and_3d_patches():
    import torch

    from echo_utils.segmentation.trainer import PaddedFramesAsIgnore

    t = PaddedFramesAsIgnore(ignore=4)
    seg = -torch.ones(2, 3, 4, 4, dtype=torch.int16)  # two channels, three frames
    seg[0, 1, 2, 2], seg[1, 2] = 2, 1
    out = t(segmentation=seg.clone())["segmentation"]
    assert (out[0, 0] == 4).all() and (out[0, 2] == 4).all()  # frames padded throughout
    assert out[0, 1, 2, 2] == 2 and int((out[0, 1] == 0).sum()) == 15  # a frame with a label: padding -> background
    assert (out[1, :2] == 4).all() and (out[1, 2] == 1).all()  # per channel
    flat = t(segmentation=-torch.ones(1, 4, 4))["segmentation"]  # 2D: no frames, all background
    assert (flat == 0).all()


def test_deep_supervision_keeps_only_full_time_outputs():
    from echo_utils.segmentation.trainer import full_time_weights

    # the demo's 3D plan: strides 1x1x1 1x2x2 2x2x2 1x2x2 1x2x2 -> four supervised scales, nnU-Net's weights
    scales = [[1, 1, 1], [1, 0.5, 0.5], [0.5, 0.25, 0.25], [0.5, 0.125, 0.125]]
    w = np.array([1, 0.5, 0.25, 0]) / 1.75
    np.testing.assert_allclose(full_time_weights(w, scales), [2 / 3, 1 / 3, 0, 0])
    with pytest.raises(ValueError, match="no deep-supervision output"):
        full_time_weights([0, 0, 1, 0], scales)


def test_jittered_start_puts_the_labelled_frame_anywhere_in_view():
    from echo_utils.segmentation.trainer import jittered_time_start

    rng = np.random.RandomState(0)
    # 30 frames, a labelled frame at 15; nnU-Net's patch of 18 frames centred on it starts at 6 (the frame at its
    # place 9); the network sees the middle 14 frames (places 2..15 of the patch)
    starts = [jittered_time_start(6, 18, 14, [15, 29], -2, 14, rng) for _ in range(2000)]
    places = {15 - s - 2 for s in starts}  # the frame's place in the 14 frames seen
    assert places == set(range(14))  # every place, not only the middle (nnU-Net's 7)
    # near the start of the sequence the range [-2, 14] of starts allows only the first 8 places
    assert {7 - s - 2 for s in (jittered_time_start(-2, 18, 14, [7], -2, 14, rng) for _ in range(500))} == set(range(8))
    # the clamp keeps the frame in view: a range [0, 3] still holds frame 7 in frames 2..15 of the patch
    assert all(0 <= s <= 3 and s + 2 <= 7 < s + 16 for s in
               (jittered_time_start(0, 18, 14, [7], 0, 3, rng) for _ in range(200)))
    assert jittered_time_start(5, 18, 14, [0, 29], -2, 14, rng) == 5  # no labelled frame in view: unchanged


def _boxes(cls, locations, patch, need_to_pad, shape, seed, n):
    """``n`` boxes ``(lbs, ubs)`` of foreground patches drawn by the loader class ``cls`` (built without nnU-Net's
    dataset: only what ``get_bbox`` reads), from numpy's global generator seeded with ``seed``."""
    loader = object.__new__(cls)
    loader.patch_size, loader.need_to_pad = list(patch), np.array(need_to_pad)
    loader.has_ignore, loader.annotated_classes_key = True, (-1, 0, 1, 2, 3)
    np.random.seed(seed)
    return [loader.get_bbox(np.array(shape), True, locations) for _ in range(n)]


def test_time_jitter_loader_moves_nnunets_own_patches():
    """nnU-Net's own get_bbox centres every patch on the sampled labelled voxel (the control); the jittering loader
    keeps a labelled frame in every patch but at every place along time, and leaves the in-plane box alone."""
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader

    from echo_utils.segmentation.trainer import labelled_frame_loader, labelled_frames

    frames = (7, 16)  # ED and ES of a 10-frame sequence mirrored by 7 frames at each end: 24 frames
    voxels = np.array([[0, t, y, x] for t in frames for y in (20, 40) for x in (30, 33)])
    locations = {1: voxels, 2: voxels[:4], (-1, 0, 1, 2, 3): voxels}
    np.testing.assert_array_equal(labelled_frames(locations), frames)

    def boxes(cls):
        return _boxes(cls, locations, [14, 64, 64], [0, 0, 0], [24, 64, 64], seed=1, n=400)

    places = {f - lbs[0] for lbs, _ in boxes(nnUNetDataLoader) for f in frames if lbs[0] <= f < lbs[0] + 14}
    assert places == {7}  # nnU-Net: the labelled frame is always in the middle
    jittered = boxes(labelled_frame_loader(time_jitter=True))
    places = [[f - lbs[0] for f in frames if lbs[0] <= f < lbs[0] + 14] for lbs, _ in jittered]
    assert all(places) and len({p for ps in places for p in ps}) == 14
    # in plane nnU-Net's own centring on the voxel: y 20 or 40 -> 0 or 8, x 30 or 33 -> 0 or 1
    assert all(lbs[1] in (0, 8) and lbs[2] in (0, 1) and [u - lo for u, lo in zip(ubs, lbs)] == [14, 64, 64]
               for lbs, ubs in jittered)


def test_random_starts_are_nnunets_random_patch_bounds():
    from echo_utils.segmentation.trainer import random_starts

    rng = np.random.RandomState(0)
    # a 64-px frame, nnU-Net's 92-px augmentation patch (rotations) around the 64 px the network sees: always
    # the centred placement -14, the network's 64 px exactly on the image
    assert {tuple(random_starts([64, 64], [92, 92], [28, 28], rng)) for _ in range(200)} == {(-14, -14)}
    # a larger image: every start from -14 to 200 + 14 - 92 = 122, uniformly
    starts = np.array([random_starts([200], [92], [28], rng)[0] for _ in range(20000)])
    assert starts.min() == -14 and starts.max() == 122 and len(np.unique(starts)) == 137
    assert abs(starts.mean() - 54) < 1.5
    # an axis shorter than the patch is widened to it (pad 14 - 10 = 4): start -2
    assert random_starts([10], [14], [0], rng) == [-2]


def test_random_in_plane_loader_places_labelled_patches_as_prediction_tiles():
    """nnU-Net's own foreground patch is centred on its labelled voxel in plane too, so on a 64-px frame it is
    shifted off the image (the control); with ``random_in_plane`` it keeps a labelled frame in time and lies on
    the image as a sliding-window tile."""
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader

    from echo_utils.segmentation.trainer import labelled_frame_loader

    frames = (7, 16)
    voxels = np.array([[0, t, y, x] for t in frames for y in (20, 50) for x in (30, 60)])
    locations = {1: voxels, (-1, 0, 1, 2, 3): voxels}

    def boxes(cls):
        return _boxes(cls, locations, [14, 92, 92], [0, 28, 28], [24, 64, 64], seed=3, n=300)

    own = boxes(nnUNetDataLoader)
    assert {tuple(lbs[1:]) for lbs, _ in own} == {(-14, -14), (-14, 14), (4, -14), (4, 14)}  # max(-14, v - 46)
    placed = boxes(labelled_frame_loader(random_in_plane=True))
    assert {tuple(lbs[1:]) for lbs, _ in placed} == {(-14, -14)}
    assert {lbs[0] for lbs, _ in placed} == {0, 9}  # time as nnU-Net's: centred on frame 7 or 16 (14 frames)
    assert all(any(lbs[0] <= f < ubs[0] for f in frames) for lbs, ubs in placed)
    assert all([u - lo for u, lo in zip(ubs, lbs)] == [14, 92, 92] for lbs, ubs in placed)


def test_training_settings_of_the_3d_sparse_model_only():
    cfg = load_config("notebooks/params/demo.yaml")
    s = {m: nnunet.training_settings(cfg.nnunet, m) for m in nnunet.MODELS}
    assert s["3d_sparse"]["padding_as_ignore"] and s["3d_sparse"]["deep_supervision_full_time_only"]
    assert [m for m in nnunet.MODELS if s[m]["random_in_plane"]] == ["3d_sparse"]
    assert [m for m in nnunet.MODELS if s[m]["time_jitter"]] == ["3d_sparse"]  # the demo asks (nnunet.time_jitter)
    still = load_config("notebooks/params/demo.yaml", overrides={"nnunet": {"time_jitter": False}}).nnunet
    assert not any(nnunet.training_settings(still, m)["time_jitter"] for m in nnunet.MODELS)
    assert not any(s[m]["padding_as_ignore"] or s[m]["deep_supervision_full_time_only"] or s[m]["time_jitter"]
                   for m in ("2d_sparse", "2d_dense", "3d_dense"))
    assert {v["min_class_dice"] for v in s.values()} == {cfg.nnunet.plateau_min_class_dice}


# ----------------------------------------------------------------------------------------------------------------
# Fig. 3's even/odd component, Table 2's per-patient errors
# ----------------------------------------------------------------------------------------------------------------


def test_even_odd_fit_recovers_an_analytic_alternation():
    from echo_utils import metrics

    t = np.arange(20, dtype=float)
    base = 0.01 * (t - 7) ** 3 + 300  # second difference 0.06 (t - 7)
    c, rest = smoothness.even_odd_fit(base + 3.0 * (-1) ** t)
    assert c == pytest.approx(3.0, abs=1e-9)
    np.testing.assert_allclose(rest, base, atol=1e-9)
    expected = np.trapezoid((0.06 * (t[1:-1] - 7)) ** 2)
    assert metrics.smoothness(rest) == pytest.approx(expected, rel=1e-9)
    # the alternation alone: second difference 4c(-1)^t, so Eq. 2 = 16 c^2 (T - 3)
    assert metrics.smoothness(3.0 * (-1) ** t) == pytest.approx(16 * 9 * 17)
    # a smooth curve holds (almost) none of it
    c0, _ = smoothness.even_odd_fit(200 + 50 * np.cos(np.pi * t / 19))
    assert abs(c0) < 0.05


def test_even_odd_table_and_statements():
    seqs = [toy_sequence(f"patient{p:04d}", "2CH", n_frames=16, size=32, seed=p) for p in (1, 2)]
    preds = {"3d_dense": {s.key: s.dense for s in seqs}, "2d_sparse": {}}
    for s in seqs:  # 2D sparse: the truth with 9 extra pixels of LV on every odd frame
        p = s.dense.copy()
        p[1::2, :3, :3] = 1
        preds["2d_sparse"][s.key] = p
    table = smoothness.even_odd_table(preds, seqs, structures=("LV",))
    assert set(table["model"]) == {"reference", "3d_dense", "2d_sparse"}
    med = smoothness.even_odd_summary(table)
    assert med.loc[("LV", "2d_sparse"), "even_odd"] == pytest.approx(4.5, abs=0.3)  # +9 px on odd frames: |c| = 4.5
    assert med.loc[("LV", "3d_dense"), "even_odd"] < 0.3
    # removing it brings 2D sparse back to (about) the truth's Eq. 2
    truth = med.loc[("LV", "reference"), "smoothness"]
    assert med.loc[("LV", "2d_sparse"), "smoothness"] > 10 * truth
    assert med.loc[("LV", "2d_sparse"), "smoothness_without_even_odd"] == pytest.approx(truth, rel=0.2)
    lines = smoothness.even_odd_statements(table)
    assert len(lines) == 1 and "is below" in lines[0]


def test_volume_errors_per_patient():
    ref = pd.DataFrame({"EDV": [100.0, 120.0], "ESV": [40.0, 50.0], "EF": [60.0, 58.3]}, index=["p1", "p2"])
    auto = {"3d_dense": pd.DataFrame({"EDV": [110.0, np.nan], "ESV": [40.0, 45.0], "EF": [63.6, np.nan]},
                                     index=["p1", "p2"])}
    err = tables.volume_errors(auto, ref)
    assert err.loc[("3d_dense", "p1"), "EDV error"] == 10.0 and err.loc[("3d_dense", "p2"), "ESV error"] == -5.0
    assert np.isnan(err.loc[("3d_dense", "p2"), "EF error"])
    assert err.attrs["mae"].loc["3d_dense", "ESV error"] == 2.5


# ----------------------------------------------------------------------------------------------------------------
# two trainings at once through the job backends
# ----------------------------------------------------------------------------------------------------------------


def test_local_kinds_run_as_processes_from_an_inline_profile(tmp_path, monkeypatch):
    import os
    from pathlib import Path

    from echo_utils.compute import Job, run_jobs

    tests = str(Path(__file__).resolve().parent)  # the stand-in job functions, importable by the job's process
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")])))

    jobs = [Job(name=f"square-{i}", fn="compute_tasks:write_value", kind="nnunet_training", run_dir=str(tmp_path),
                kwargs={"path": str(tmp_path / f"out{i}.txt"), "value": i}) for i in range(2)]
    compute = ComputeConfig(backend="inline", local_kinds=("nnunet_training",), poll_seconds=0.2,
                            local={"max_parallel": 2})
    report = run_jobs(jobs, compute, progress=False)
    assert [(tmp_path / f"out{i}.txt").read_text() for i in range(2)] == ["0", "1"]
    assert report.backend == "local" and all(r["job_id"] for r in report.rows)
    assert json.loads((tmp_path / "jobs" / "square-0" / "done.json").read_text())["pid"] != os.getpid()
    other = Job(name="other", fn="compute_tasks:write_value", kind="nnunet_prediction", run_dir=str(tmp_path),
                kwargs={"path": str(tmp_path / "o.txt"), "value": 3})
    run_jobs([other], compute, progress=False)  # not a local kind: runs here
    assert json.loads((tmp_path / "jobs" / "other" / "done.json").read_text())["pid"] == os.getpid()


def test_training_jobs_3d_first():
    from echo_utils import compute
    from echo_utils.study import Study

    cfg = load_config("notebooks/params/demo.yaml")
    jobs = compute.nnunet_training_jobs(Study(cfg, RunPaths("/tmp/nonexistent-run")))
    dims = [nnunet.SPECS[j.kwargs["model"]].dim for j in jobs]
    assert dims == sorted(dims, reverse=True) and len(jobs) == 4
