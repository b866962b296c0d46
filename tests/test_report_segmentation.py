"""echo_utils.report.segmentation: notebook 04's figures, tables and sentences, computed from what the segmentation
package wrote (toy runs; the numbers checked against values constructed by hand)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from echo_utils import segmentation as seg
from echo_utils.config import load_config
from echo_utils.labels import MODEL_NAMES
from echo_utils.report import segmentation as R

from test_segmentation import run_of, toy_cohort, toy_sequence


def _cfg(**nn):
    return load_config("notebooks/params/ci.yaml", overrides={"nnunet": {"n_proc": 1, **nn}})


def test_frame_roles_figure_codes_every_frame_of_every_model():
    seq = toy_sequence("patient0001", "2CH", n_frames=6)
    models = ["2d_sparse", "2d_dense", "3d_dense", "3d_sparse"]
    heat = R.frame_roles_figure(seq, models).data[0]
    codes = {r: i for i, r in enumerate(R.ROLE_COLORS)}
    # ED (0) and ES (5) manual everywhere; between them: 2D sparse unused, dense pseudo, 3D sparse ignored
    expected = {"2d_sparse": "unused", "2d_dense": "pseudo", "3d_dense": "pseudo", "3d_sparse": "ignore"}
    for row, m in zip(heat.z, models):
        assert list(row) == [codes["manual"], *[codes[expected[m]]] * 4, codes["manual"]]
    assert list(heat.y) == [MODEL_NAMES[m] for m in models] and heat.zmax - heat.zmin == len(R.ROLE_COLORS)
    assert [c for _, c in heat.colorscale[::2]] == list(R.ROLE_COLORS.values())  # one colour band per role


def _verdicts():
    return pd.DataFrame({"model": ["3d_dense", "3d_sparse"], "fold": [0, 0],
                         "verdict": ["converged", "plateaued, LV not learned"]}).set_index(["model", "fold"])


def test_training_and_convergence_statements():
    rows = [{"skipped": False, "seconds": 30.0}, {"skipped": False, "seconds": 50.0}, {"skipped": True, "seconds": 9}]
    line = R.training_statement(rows, 40.0, "local")
    assert line.startswith("2 trainings on backend local") and "add up to 80 s" in line and "(2.00 jobs'" in line
    assert R.training_statement(rows[2:], 1.0, "inline") == "nothing ran: the 1 training was done before (read back)"
    # trainings and predictions as one pipelined set (notebook 04)
    both = [{"kind": "nnunet_training", "skipped": False, "seconds": 60.0, "model": "3d_dense", "fold": 0,
             "name": "nnunet-train-Dataset802_x-small_3d-fold0"},
            {"kind": "nnunet_prediction", "skipped": False, "seconds": 15.0, "model": "3d_dense", "fold": None,
             "name": "nnunet-predict-3d_dense-test"},
            {"kind": "nnunet_prediction", "skipped": False, "seconds": 25.0, "model": "2d_sparse",
             "name": "nnunet-predict-2d_sparse-trainval"}]
    line = R.training_statement(both, 50.0, "local")
    assert line.startswith("1 training and 2 predictions on backend local: their own times add up to 100 s")
    assert "(2.00 jobs' worth" in line
    assert R.prediction_statement(both) == (f"2 prediction sets, each started once its model was trained: "
                                            f"{MODEL_NAMES['3d_dense']} (test) 15 s, {MODEL_NAMES['2d_sparse']} "
                                            "(trainval) 25 s")
    assert "read back" in R.prediction_statement([dict(r, skipped=True) for r in both])
    assert R.job_timings(both) == [("3d_dense", "train fold 0", 60.0), ("3d_dense", "predict test", 15.0),
                                   ("2d_sparse", "predict trainval", 25.0)]
    text = R.convergence_statement(_verdicts())
    assert "1 of 2 trainings converged" in text and f"{MODEL_NAMES['3d_sparse']} (fold 0): plateaued, LV" in text
    assert R.convergence_statement(_verdicts().iloc[:1]).endswith("(every class learned).")


def _logs():
    n = 5
    parts = []
    for m in ("3d_dense", "3d_sparse"):
        parts.append(pd.DataFrame({"model": m, "fold": 0, "epoch": np.arange(n), "train_loss": np.linspace(1, 0, n),
                                   "val_loss": np.linspace(1.1, 0.2, n), "pseudo_dice": np.linspace(0, 0.8, n),
                                   "ema_pseudo_dice": np.linspace(0, 0.7, n), "ema dice LV": np.linspace(0, 0.9, n),
                                   "ema dice MYO": np.linspace(0, 0.5, n)}))
    return pd.concat(parts, ignore_index=True)


def test_training_curves_and_class_dice_figures():
    logs = _logs()
    fig = R.training_curves_figure(logs, _verdicts(), title="curves")
    assert len(fig.data) == 4 * 2 and fig.layout.title.text == "curves"
    names = [t.name for t in fig.data]
    assert f"{MODEL_NAMES['3d_sparse']}: plateaued, LV not learned" in names
    np.testing.assert_allclose(fig.data[2].y, logs.ema_pseudo_dice[:5])  # the EMA of the first model, right panel
    classes = R.class_dice_figure(logs)
    assert len(classes.data) == 2 * 2 and [a.text for a in classes.layout.annotations] == ["LV", "MYO"]
    assert [t.showlegend for t in classes.data] == [True, False, True, False]


def test_plan_comparison_statements_follow_the_plans(monkeypatch, tmp_path):
    run = run_of(_cfg(models=["2d_sparse", "3d_dense", "3d_sparse"]), tmp_path)
    written = {"3d_dense": 2.0, "3d_sparse": 2.0}
    monkeypatch.setattr(seg, "dataset_time_spacing", lambda r, m: written[m])
    monkeypatch.setattr(seg, "plan_stages", lambda r, m: pd.DataFrame({"kernel": ["1x3x3", "3x3x3"]}))
    plans = pd.DataFrame({"spacing": [(2.0, 0.5, 0.5), (2.5, 0.5, 0.5)], "kernels": ["1x3x3 3x3x3", "3x3x3 3x3x3"],
                          "time / in-plane spacing": [4.0, 5.0]}, index=pd.Index(["3d_dense", "3d_sparse"]))
    reference = {"spacing": [1.0, 0.3, 0.3], "patch_size": [16, 64, 64],
                 "architecture": {"arch_kwargs": {"strides": [[1, 1, 1], [1, 2, 2]], "kernel_sizes": [[1, 3, 3]] * 2,
                                                  "features_per_stage": [32, 64]}}}
    table, lines = R.plan_comparison(run, plans, reference)
    assert table.columns.get_level_values(0)[0].startswith(f"{MODEL_NAMES['3d_dense']}, this run (3d_fullres_small)")
    assert len(lines) == 2
    assert "written 2, planned (target) 2 -> equal: no frame is resampled" in lines[0]
    assert "(reference 3.33)" in lines[0] and "first stage 1x3x3 (in plane)" in lines[0]
    assert "planned (target) 2.5 -> DIFFERENT: frames are resampled" in lines[1] and "NOT in plane" in lines[1]
    assert R.plan_comparison(run_of(_cfg(models=["2d_sparse"]), tmp_path), plans) == (None, [])


def test_predictions_slider_reads_every_models_saved_prediction(tmp_path):
    run = run_of(_cfg(), tmp_path)
    seq = toy_sequence("patient0001", "2CH")
    for i, m in enumerate(("2d_sparse", "3d_dense")):
        seg.env.write_nifti(seg.prediction_path(run.predictions, m, seq), (seq.dense + i) % 4, (1.0, 0.5, 0.5))
    fig = R.predictions_slider(run, ["2d_sparse", "3d_dense"], seq)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["reference (exact)", MODEL_NAMES["2d_sparse"], MODEL_NAMES["3d_dense"]]
    with pytest.raises(seg.NnUNetError, match="notebook 04"):
        R.predictions_slider(run, ["2d_dense"], seq)


def test_timing_summary_sums_steps_per_model():
    t = R.timings_table([("all", "load", 1.0), ("3d_dense", "train fold 0", 60.0), ("3d_dense", "train fold 0", 30.0),
                         ("3d_dense", "predict test", 6.04)])
    assert list(t.columns) == ["model", "step", "seconds"]
    pivot, line = R.timing_summary(t, 120.0)
    assert pivot.loc["3d_dense", "train fold 0"] == 90.0 and pivot.loc["3d_dense", "predict test"] == 6.0
    assert line.startswith("notebook wall time 2.0 min; the steps above add up to 1.6 min")


def test_cli_commands_name_the_runs_datasets_and_its_padding(tmp_path):
    cfg = _cfg(models=["2d_sparse", "3d_dense"], time_padding="reflect", time_padding_frames=2)
    run = run_of(cfg, tmp_path)
    seqs = toy_cohort(3)
    seg.export_dataset(run, "3d_dense", seqs[:4], seqs[4:], [], {s.key: s.dense for s in seqs})
    lines = R.cli_commands(run, {"nnUNet_raw": "/r"}, "cpu")
    assert lines[0] == "export nnUNet_raw=/r"
    assert f"nnUNetv2_train 802 3d_fullres_small 0 -tr EchoTrainer -device cpu" in lines
    assert any(ln.startswith("nnUNetv2_predict -d 800 -c 2d_small -f 0") and ln.endswith("--disable_tta -device cpu")
               for ln in lines)
    notes = [ln for ln in lines if "mirrored frames" in ln]
    assert notes == ["# imagesTs holds the sequences with 2 mirrored frames at each end (nnunet.time_padding): "
                     "crop them off the predictions, as predict_all does"]  # the exported 3D set only


def test_budget_text_names_each_budget_once():
    assert R.budget_text({"2d_sparse": 200, "3d_dense": 200}, 4) == "at most 200 epochs of 4 iterations"
    text = R.budget_text({"2d_sparse": 200, "2d_dense": 200, "3d_dense": 400}, 4)
    assert text == (f"{MODEL_NAMES['2d_sparse']}, {MODEL_NAMES['2d_dense']}: at most 200 epochs; "
                    f"{MODEL_NAMES['3d_dense']}: at most 400; 4 iterations per epoch")
