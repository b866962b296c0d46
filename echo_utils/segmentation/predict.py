"""Prediction with the trained nnU-Nets: every frame of every sequence, written as NIfTI and read back.

:func:`predict_all` uses nnU-Net's ``nnUNetPredictor`` in this process (``manual_initialization`` and
``predict_single_npy_array``): about 2 s per sequence on CPU, against 12-16 s for ``nnUNetv2_predict``, which
starts worker processes for every call. Predictions go to ``<run>/predictions/<model>/<patient>_<view>.nii.gz``,
(T, H, W) uint8 aligned with the sequence, and are cached with the digest of the checkpoints that made them.

A 3D model whose dataset was exported with ``nnunet.time_padding: reflect`` predicts the sequence padded the same
way (``k`` reflected frames at each end, :mod:`~echo_utils.segmentation.time_padding`), and the ``k`` frames are
cropped off its output before it is written: every prediction has exactly the sequence's frames.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .env import (FILE_ENDING, TRAINER, NnUNetError, NnUNetRun, configuration_name, configure_nnunet, cpu_threads,
                  dataset_name, file_digest, quiet, read_json, write_json, write_nifti)
from .checkpoint import load_checkpoint
from .export import dataset_time_padding, dataset_time_spacing
from .time_padding import crop_time, pad_time
from .train import fold_folder, results_folder

if TYPE_CHECKING:  # pragma: no cover
    from ..data.camus import EchoSequence

__all__ = ["load_checkpoint", "load_predictor", "predict_sequence", "predict_all", "prediction_path", "load_prediction"]

PREDICTION_MARKER = "echo_predictions.json"


def load_predictor(run: NnUNetRun, model: str, device: str = "cpu", *, checkpoint: str = "checkpoint_final.pth",
                   mirroring: bool | None = None):
    """An in-process ``nnUNetPredictor`` for ``model``, averaging the folds in ``nnunet.folds``.

    The network is built with nnU-Net's ``nnUNetTrainer.build_network_architecture`` (``EchoTrainer`` keeps it)
    and handed over with ``manual_initialization``: about 2 s per sequence on CPU, against 12-16 s for
    ``nnUNetv2_predict``, which starts worker processes for every call. Test-time mirroring follows
    ``nnunet.mirroring`` (off on CPU: it doubles the time per mirrored axis).
    """
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    nn = run.nn
    configure_nnunet(run, device)
    folder = results_folder(run, model)
    params, axes = [], None
    for fold in nn.folds:
        ckpt = folder / f"fold_{fold}" / checkpoint
        if not ckpt.is_file():
            raise NnUNetError(f"{model}: no trained model at {ckpt}; run train_model first")
        state = load_checkpoint(ckpt)
        params.append(state["network_weights"])
        axes = state.get("inference_allowed_mirroring_axes", axes)
    plans_manager = PlansManager(load_json(str(folder / "plans.json")))
    dataset_json = load_json(str(folder / "dataset.json"))
    conf = plans_manager.get_configuration(configuration_name(nn, model))
    network = nnUNetTrainer.build_network_architecture(
        plans_manager, conf, determine_num_input_channels(plans_manager, conf, dataset_json),
        plans_manager.get_label_manager(dataset_json).num_segmentation_heads, enable_deep_supervision=False,
    )
    network.load_state_dict(params[0])
    use_mirroring = nn.mirroring if mirroring is None else mirroring
    with quiet(Path(os.devnull)):  # the predictor prints a note about perform_everything_on_device on CPU
        predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=use_mirroring,
                                    perform_everything_on_device=str(device).startswith("cuda"),
                                    device=torch.device(device), verbose=False, verbose_preprocessing=False,
                                    allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, conf, params, dataset_json, TRAINER, axes)
    return predictor


def predict_sequence(predictor, seq: "EchoSequence", time_spacing: float = 1.0, time_padding: int = 0) -> np.ndarray:
    """Segment every frame of ``seq``: (T, H, W) uint8 label map aligned with ``seq.images``.

    The sequence goes in as one (1, T, H, W) volume with spacing (time_spacing, sy, sx): a 3D model slides its
    patch over the volume; a 2D model predicts it frame by frame (nnU-Net's 2D inference is slice-wise). A 3D model
    needs the time spacing its dataset was exported with (:func:`~echo_utils.segmentation.export.
    dataset_time_spacing`): with any other, nnU-Net would resample the frames along time. ``time_padding``: the
    frames its dataset was padded with at each end (:func:`~echo_utils.segmentation.export.dataset_time_padding`):
    the volume goes in as (1, T + 2k, H, W), reflected along time, and the ``k`` padded frames are cropped off the
    output, which is (T, H, W) again.
    """
    image = pad_time(np.asarray(seq.images, np.float32), int(time_padding))[None]
    props = {"spacing": [float(time_spacing), *(float(s) for s in seq.spacing)]}
    with quiet(Path(os.devnull)):
        seg = predictor.predict_single_npy_array(image, props, None, None, False)
    seg = np.asarray(seg).astype(np.uint8)
    if seg.shape != image.shape[1:]:
        raise NnUNetError(f"{seq.key}: prediction has shape {seg.shape}, its input {image.shape[1:]}")
    seg = crop_time(seg, int(time_padding))
    if seg.shape != seq.images.shape:
        raise NnUNetError(f"{seq.key}: prediction has shape {seg.shape}, images {seq.images.shape}")
    return seg


def _predictions_folder(predictions) -> Path:
    """The folder of the prediction sets: ``predictions`` itself, or the ``predictions`` folder of an
    :class:`~echo_utils.segmentation.env.NnUNetRun` (or of an object naming one, as the run directory's
    ``RunPaths`` does: the earlier form of the report's callers)."""
    return Path(getattr(predictions, "predictions", predictions))


def prediction_path(predictions: Path, model: str, seq: "EchoSequence") -> Path:
    """``<predictions>/<model>/<patient>_<view>.nii.gz`` (``predictions``: the run's ``predictions`` folder, or an
    :class:`~echo_utils.segmentation.env.NnUNetRun`)."""
    return _predictions_folder(predictions) / model / f"{seq.key}{FILE_ENDING}"


def predict_all(
    run: NnUNetRun,
    model: str,
    sequences: list["EchoSequence"],
    device: str = "cpu",
    *,
    out_name: str | None = None,
    progress: bool = True,
) -> Path:
    """Predict every frame of every sequence with ``model``; returns ``run.predictions / (out_name or model)``.

    Predictions that exist are reused. The folder records the checkpoint it was made with (and the time spacing
    and padding of its dataset); predicting into it with a different model is a :class:`NnUNetError` (nothing is
    overwritten). A record written before the padding was recorded reads as padding 0.
    """
    nn = run.nn
    out = run.predictions / (out_name or model)
    out.mkdir(parents=True, exist_ok=True)
    ckpts = [fold_folder(run, model, f) / "checkpoint_final.pth" for f in nn.folds]
    missing = [str(c) for c in ckpts if not c.is_file()]
    if missing:
        raise NnUNetError(f"{model}: no trained model at {missing}; run train_model first")
    key = {"model": model, "dataset": dataset_name(nn, model), "configuration": configuration_name(nn, model),
           "checkpoints": [file_digest(c) for c in ckpts], "mirroring": nn.mirroring,
           "time_spacing": dataset_time_spacing(run, model),
           "time_padding_frames": dataset_time_padding(run, model)}
    marker = out / PREDICTION_MARKER
    old = {"time_padding_frames": 0, **read_json(marker)} if marker.is_file() else key
    if old != key:
        raise NnUNetError(f"{out} holds predictions of another model ({old}); "
                          "finished work is never overwritten: remove the folder yourself or use a new run directory")
    write_json(marker, key)
    todo = [s for s in sequences if not (out / f"{s.key}{FILE_ENDING}").is_file()]
    if not todo:
        return out
    predictor = load_predictor(run, model, device)
    with cpu_threads(nn, device):
        _predict_into(out, predictor, todo, key["time_spacing"], progress, key["time_padding_frames"])
    return out


def _predict_into(out: Path, predictor, todo: list, time_spacing: float, progress: bool,
                  time_padding: int = 0) -> None:
    from tqdm import tqdm

    for seq in tqdm(todo, desc=f"predict {out.name}", unit="seq", disable=not progress, mininterval=2.0,
                    file=sys.stderr):
        seg = predict_sequence(predictor, seq, time_spacing, time_padding)
        write_nifti(out / f"{seq.key}{FILE_ENDING}", seg, (time_spacing, *map(float, seq.spacing)))


def load_prediction(predictions: Path, model: str, seq: "EchoSequence") -> np.ndarray:
    """The (T, H, W) uint8 prediction of ``model`` for ``seq`` (see :func:`predict_all`), read from the run's
    ``predictions`` folder (or an :class:`~echo_utils.segmentation.env.NnUNetRun`'s)."""
    import SimpleITK as sitk

    path = prediction_path(predictions, model, seq)
    if not path.is_file():
        raise NnUNetError(f"no {model} prediction for {seq.key}: {path} is missing; run notebook 04 first")
    from ..safe_load import check_gzip, rerun_hint

    check_gzip(path, rebuild=lambda: rerun_hint(path, "04", delete=True))  # ITK would read a truncated file
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.uint8)
    if seg.shape != tuple(seq.images.shape):
        raise NnUNetError(f"{path}: shape {seg.shape} does not match the sequence {tuple(seq.images.shape)}")
    return seg
