"""echo_utils.safe_load and the loaders that use it: a planted pickle payload never runs, a damaged artifact is
named (and rebuilt where a rerun can rebuild it)."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

from echo_utils import pseudolabels
from echo_utils.safe_load import DamagedFile, UnsafeFile, load_torch, read_json, read_nifti, read_table, rerun_hint


def payload(marker):
    """An object whose unpickling would create ``marker`` (the code a planted checkpoint would run)."""

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return Payload()


def plant(path, marker, **state):
    torch.save({**state, "network_weights": payload(marker)}, path)
    return path


def truncate(path, keep: float = 0.5):
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


def test_load_torch_reads_checkpoints_and_refuses_a_payload_without_running_it(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"w": torch.arange(3.0), "ema": [np.float64(0.25)], "dtype": np.dtype("f4"), "epoch": 3}, good)
    back = load_torch(good)
    assert torch.equal(back["w"], torch.arange(3.0)) and back["ema"][0] == 0.25 and back["epoch"] == 3

    marker = tmp_path / "ran"
    bad = plant(tmp_path / "bad.pth", marker)
    with pytest.raises(UnsafeFile, match="bad.pth.*refusing to unpickle") as err:
        load_torch(bad)
    assert isinstance(err.value, pickle.UnpicklingError) and isinstance(err.value, ValueError)
    with open(tmp_path / "raw.pth", "wb") as fh:  # a bare pickle stream, not a torch zip archive
        pickle.dump(payload(marker), fh)
    with pytest.raises(UnsafeFile, match="raw.pth"):
        load_torch(tmp_path / "raw.pth")
    assert not marker.exists()
    # the control: the same payload through plain pickle does run (so the marker test can fail)
    pickle.loads(pickle.dumps(payload(marker)))
    assert marker.exists()


def test_load_torch_names_a_truncated_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1000)}, path)
    truncate(path)
    with pytest.raises(DamagedFile, match=r"model.pt is damaged \(RuntimeError: .*zip archive.*\); retrain") as err:
        load_torch(path, rebuild="retrain")
    assert err.value.path == path and "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_torch(tmp_path / "nothing.pt")


def test_nnunet_loaders_refuse_a_planted_checkpoint(tmp_path):
    """Prediction and resumed training (``EchoTrainer.load_checkpoint``, which nnU-Net calls with the path of
    ``checkpoint_latest.pth``) read through the same loader: the payload never runs, the trainer is not touched."""
    from echo_utils.segmentation.predict import load_checkpoint
    from echo_utils.segmentation.trainer import EchoTrainer

    marker = tmp_path / "ran"
    bad = plant(tmp_path / "checkpoint_latest.pth", marker, current_epoch=1)
    with pytest.raises(UnsafeFile, match="checkpoint_latest.pth"):
        load_checkpoint(bad)
    trainer = object.__new__(EchoTrainer)  # no plans needed: the file is refused before the trainer is used
    with pytest.raises(UnsafeFile, match="checkpoint_latest.pth"):
        trainer.load_checkpoint(str(bad))
    assert not marker.exists()
    truncate(bad)
    with pytest.raises(DamagedFile, match="checkpoint_latest.pth is damaged.*delete it and rerun notebook 04"):
        trainer.load_checkpoint(str(bad))


def test_registration_loaders_refuse_a_planted_checkpoint(tmp_path):
    from echo_utils.registration import load_registration
    from echo_utils.registration.train import _resume_state

    marker = tmp_path / "ran"
    for name in ("model.pt", "checkpoint.pt"):
        plant(tmp_path / name, marker, config={"grid_spacing": 8})
    with pytest.raises(UnsafeFile, match="model.pt"):
        load_registration(tmp_path / "model.pt")
    with pytest.raises(UnsafeFile, match="checkpoint.pt"):  # refused, not set aside as damaged
        _resume_state(tmp_path / "checkpoint.pt", "cpu")
    assert not marker.exists() and (tmp_path / "checkpoint.pt").is_file()


def test_damaged_registration_model_is_named_and_retrained(tmp_path, capsys):
    from test_registration import make_sequence, tiny_config

    from echo_utils.registration import load_registration, load_training_log, train_registration

    train = [make_sequence(f"patient{i:04d}", seed=i) for i in range(2)]
    cfg = tiny_config(iterations=4)
    model = train_registration(train, cfg, tmp_path, device="cpu", progress=False)
    final = model.run_dir / "model.pt"
    truncate(final)
    with pytest.raises(DamagedFile, match="model.pt is damaged.*delete it and rerun notebook 02"):
        load_registration(final)
    again = train_registration(train, cfg, tmp_path, device="cpu", progress=False)  # the rerun rebuilds it
    assert "model.pt is damaged" in capsys.readouterr().err and (model.run_dir / "model.pt.damaged").is_file()
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert load_registration(final).kept_iteration == model.kept_iteration

    log = model.run_dir / "log.csv"
    log.write_bytes(log.read_bytes()[:-7])
    with pytest.raises(DamagedFile, match="log.csv is damaged \\(it ends in the middle of a row\\)"):
        load_training_log(model.run_dir)


def test_damaged_pseudo_label_is_named_and_rebuilt_by_a_rerun(tmp_path, capsys):
    from test_pseudolabels import CentroidTranslation, grid_warp, moving_sequence

    seqs = [moving_sequence(t=5, patient=f"patient000{i}") for i in (1, 2)]
    reg = CentroidTranslation()
    kw = dict(method_name="test", registration_id="r1", warp=grid_warp, progress=False)
    first = pseudolabels.generate_pseudo_labels(seqs, reg, tmp_path, **kw)
    path = pseudolabels.pseudo_label_path(tmp_path, seqs[1], "bidirectional")
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DamagedFile, match=r"patient0002_2CH_half_sequence_bidirectional.nii.gz is damaged \("
                       r".*\); rerun notebook 03, which rebuilds it"):
        pseudolabels.load_pseudo_labels(tmp_path, seqs[1])
    calls = reg.calls
    again = pseudolabels.generate_pseudo_labels(seqs, reg, tmp_path, **kw)  # the rerun
    assert reg.calls == calls + 1, "only the damaged sequence is computed again"
    assert "computing patient0002_2CH again" in capsys.readouterr().err
    assert path.read_bytes() == good  # rebuilt byte for byte
    assert all(np.array_equal(again[k].bidirectional, first[k].bidirectional) for k in first)


def test_rerun_hint_gives_the_runner_command_of_the_run(tmp_path):
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    assert rerun_hint(run / "metrics" / "x.csv", "03") == "rerun notebook 03, which rebuilds it"
    (run / "run.json").write_text(json.dumps({"params": "notebooks/params/ci.yaml", "profile": {},
                                              "overrides": {"registration": {"alpha": 0}}}))
    hint = rerun_hint(run / "metrics" / "x.csv", "03", delete=True)
    assert hint == (f"delete it and rerun notebook 03, which rebuilds it: python -m echo_utils.run --params "
                    f"notebooks/params/ci.yaml --set registration.alpha=0 --run-dir {run} --only 03")


def test_damaged_metrics_table_is_named_with_the_command_that_rewrites_it(tmp_path):
    import pandas as pd

    from echo_utils.config import load_config
    from echo_utils.rundir import RunPaths
    from echo_utils.report.fig2_summary import load_fig2
    from echo_utils.study import Study

    paths = RunPaths(tmp_path)
    paths.metrics.mkdir(parents=True)
    table = paths.metrics / "pseudo_label_scores.csv"
    pd.DataFrame({"method": ["dlir"] * 3, "key": ["a", "b", "c"], "dice": [0.91, 0.92, 0.93]}).to_csv(table,
                                                                                                      index=False)
    assert len(read_table(table, columns=("method", "dice"))) == 3
    table.write_bytes(table.read_bytes()[:-3])  # cut in the last row
    with pytest.raises(DamagedFile, match="pseudo_label_scores.csv is damaged .*rerun notebook 03"):
        load_fig2(Study(load_config("notebooks/params/ci.yaml"), paths))
    table.write_text("method,key\n")
    with pytest.raises(DamagedFile, match="no column 'dice'"):
        read_table(table, columns=("method", "dice"))
    table.write_bytes(b"")
    with pytest.raises(DamagedFile, match="empty file"):
        read_table(table)


def test_read_json_and_nifti_name_the_file(tmp_path):
    import nibabel as nib

    js = tmp_path / "marker.json"
    js.write_text('{"a": [1, 2')
    with pytest.raises(DamagedFile, match="marker.json is damaged \\(not valid JSON"):
        read_json(js)
    nii = tmp_path / "x.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(4000, dtype=np.uint8).reshape(10, 20, 20), np.eye(4)), str(nii))
    assert read_nifti(nii).shape == (10, 20, 20)
    truncate(nii)
    with pytest.raises(DamagedFile, match="x.nii.gz is damaged"):
        read_nifti(nii)


def test_truncated_prediction_is_named_not_read_as_zeros(tmp_path):
    """SimpleITK reads a truncated .nii.gz without an error (the missing voxels zero): load_prediction checks the
    gzip stream first."""
    import SimpleITK as sitk

    from echo_utils import segmentation as nnunet
    from echo_utils.camus import EchoSequence
    from echo_utils.rundir import RunPaths
    from echo_utils.safe_load import check_gzip

    paths = RunPaths(tmp_path)
    seq = EchoSequence(patient="patient0001", view="2CH", images=np.zeros((4, 16, 16), np.float32),
                       spacing=(1.0, 1.0), ed=0, es=3)
    path = nnunet.prediction_path(paths, "3d_dense", seq)
    path.parent.mkdir(parents=True)
    seg = np.random.default_rng(0).integers(0, 4, (4, 16, 16)).astype(np.uint8)
    nnunet.env.write_nifti(path, seg, (1.0, 1.0, 1.0))
    assert np.array_equal(nnunet.load_prediction(paths, "3d_dense", seq), seg)
    truncate(path)
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(path))).shape == seg.shape  # the hazard: no error from ITK
    with pytest.raises(DamagedFile, match=r"patient0001_2CH.nii.gz is damaged \(EOFError: .*delete it and rerun "
                       r"notebook 04"):
        nnunet.load_prediction(paths, "3d_dense", seq)
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    assert check_gzip(plain) == plain  # not compressed: nothing to check
