"""nnU-Net raw datasets: the four training sets built from the same sequences, their splits and frame roles.

==============  ====  =====================================================================================
model           dim   training labels
==============  ====  =====================================================================================
``2d_sparse``   2D    the ED and ES frames with their manual labels (the usual CAMUS setting)
``2d_dense``    2D    every frame: manual labels at ED/ES, bidirectional pseudo-labels elsewhere (notebook 03)
``3d_dense``    3D    each sequence as one (T, H, W) volume, time as the first axis, the same dense labels
``3d_sparse``   3D    each sequence as one volume, labelled at ED/ES only; every other frame is nnU-Net's
                      *ignore* label (a baseline the paper did not run)
``3d_dense_     3D    optional: the 3D dense labels, with every pseudo-labelled pixel whose confidence is below
masked``              a threshold chosen on the validation patients as the *ignore* label
                      (:mod:`~echo_utils.segmentation.masking`)
==============  ====  =====================================================================================

:func:`export_dataset` writes nnU-Net's raw format (``imagesTr``/``labelsTr``/``imagesTs``, a ``dataset.json``
that lists every case explicitly, so nnU-Net needs no process pool to find the files), checks it with nnU-Net's
own per-case checks and writes the patient-wise ``splits_final.json``.

With ``nnunet.time_padding: reflect`` every 3D volume (training images and labels, and the ``imagesTs`` volumes)
is padded along time by reflection, ``k`` frames at each end (:mod:`~echo_utils.segmentation.time_padding`: the
heart before ED was filling and after ES re-expands, which the mirrored frames continue); the 2D datasets are
untouched. The export record holds ``k`` (:func:`dataset_time_padding`), which prediction reads to pad and crop
the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np

from ..config import NnUNetConfig
from . import masking as masking_rules
from .env import (FILE_ENDING, IGNORE_LABEL, LABEL_VALUES, ModelSpec, NnUNetError, NnUNetRun, _section,
                  configure_nnunet, dataset_id, dataset_name, jsonable, marker_record, pools, quiet, read_json,
                  write_json, write_nifti)
from .env import spec as _spec
from .time_padding import pad_time, time_padding_frames

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..data.camus import EchoSequence

__all__ = [
    "export_dataset",
    "datasets_table",
    "make_splits",
    "dense_pseudo_labels",
    "frame_roles",
    "verify_dataset",
    "volume_time_spacing",
    "dataset_time_spacing",
    "dataset_masking",
    "dataset_time_padding",
    "export_marker",
]

CHANNELS = {"0": "echo"}  # any name but 'CT' selects nnU-Net's per-image z-score normalisation
EXPORT_MARKER = "echo_export.json"


def _check_sequence(seq: "EchoSequence") -> None:
    img = np.asarray(seq.images)
    if img.ndim != 3 or img.shape[0] < 2:
        raise NnUNetError(f"{seq.key}: images must be (T, H, W) with T >= 2, got shape {img.shape}")
    for t in (seq.ed, seq.es):
        if t not in seq.labels:
            raise NnUNetError(f"{seq.key}: no manual label for frame {t} (ED={seq.ed}, ES={seq.es})")
        if seq.labels[t].shape != img.shape[1:]:
            raise NnUNetError(f"{seq.key}: label of frame {t} has shape {seq.labels[t].shape}, images {img.shape[1:]}")


def _dense_for(seq: "EchoSequence", dense_labels: dict | None) -> np.ndarray:
    if dense_labels is None or seq.key not in dense_labels:
        raise NnUNetError(
            f"dense training needs pseudo-labels for {seq.key}, but none were given. Run notebook 03 "
            "(03_pseudo_labels) into this run directory first, so that "
            f"pseudo_labels/<method>/{seq.patient}/{seq.key}_half_sequence_bidirectional.nii.gz exists "
            "(dense_pseudo_labels reads them)."
        )
    dense = np.asarray(dense_labels[seq.key])
    if dense.shape != seq.images.shape:
        raise NnUNetError(f"{seq.key}: pseudo-labels have shape {dense.shape}, images {seq.images.shape}")
    if dense.min() < 0 or dense.max() > max(LABEL_VALUES.values()):
        raise NnUNetError(f"{seq.key}: pseudo-label values must lie in 0..3, got {np.unique(dense)}")
    return dense


def volume_time_spacing(nn: NnUNetConfig, sequences: Iterable["EchoSequence"]) -> float:
    """The time spacing of the 3D volumes: what nnU-Net plans time against (and what the predictor is given).

    nnU-Net gives an axis 3-kernels and pooling only once its spacing is within 2x of the finest one
    (``get_pool_and_conv_props``), so what shapes a 3D plan is the ratio ``r`` of the time spacing to the finest
    in-plane spacing of the grid the network trains on. The paper's CAMUS volumes at 512 px store time spacing 1
    against about 0.3 mm in plane: ``r`` about 3.3, and nnU-Net's plan convolves in plane first and pools time once,
    late (``segmentation.plans.reference_plan`` computes it). The demo's 64 px grid has about 2.8 "mm" in plane: with
    the stored time spacing 1, ``r`` = 0.36 and nnU-Net plans a network that convolves and pools *time* first.

    - ``nnunet.time_reference_spacing`` = ``(t, y, x)`` (the reference volumes' spacing): ``r = t / min(y, x)`` and
      the time spacing is ``r`` times the finest in-plane spacing of the training grid: the median spacing of
      ``sequences`` per axis, scaled by ``median size / nnunet.in_plane_size`` for a small configuration with
      ``in_plane_size`` (as :func:`~echo_utils.segmentation.plans.small_configuration` scales it), rounded to 4
      significant digits. nnU-Net's crop to the non-zero region can make the planned grid a few per cent finer;
      the plans table reports the ratio of the planned configuration.
    - ``None``: ``nnunet.time_spacing``, what the files store.

    Every volume gets the same time spacing, so nnU-Net's target spacing along time equals the stored one and no
    frame is resampled: only the plan changes.
    """
    if _section(nn).time_reference_spacing is None:
        return float(nn.time_spacing)
    seqs = list(sequences)
    if not seqs:
        raise NnUNetError("volume_time_spacing needs the training sequences (none given)")
    t_ref, *in_plane_ref = nn.time_reference_spacing
    ratio = float(t_ref) / float(min(in_plane_ref))
    spacing = np.median([[float(v) for v in s.spacing] for s in seqs], axis=0)
    if nn.configuration == "small" and nn.in_plane_size is not None:
        size = np.median([np.asarray(s.images).shape[1:] for s in seqs], axis=0)
        spacing = spacing * size / nn.in_plane_size
    return float(f"{ratio * float(np.min(spacing)):.4g}")


def export_marker(run: NnUNetRun, model: str) -> Path:
    """The export record of ``model``'s raw dataset: ``<run>/nnunet/raw/DatasetXXX_Name/echo_export.json``."""
    return run.raw / dataset_name(run.nn, model) / EXPORT_MARKER


def dataset_time_spacing(run: NnUNetRun, model: str) -> float:
    """The time spacing the exported dataset of ``model`` was written with (its export record); 2D models and
    datasets exported before it was recorded: ``nnunet.time_spacing``."""
    marker = export_marker(run, model)
    if _spec(model).dim == 3 and marker.is_file():
        return float(read_json(marker).get("time_spacing", run.nn.time_spacing))
    return float(run.nn.time_spacing)


def dataset_time_padding(run: NnUNetRun, model: str) -> int:
    """Frames the exported dataset of ``model`` was padded with at each end of time (its export record,
    :mod:`~echo_utils.segmentation.time_padding`); 2D models and datasets exported before it was recorded: 0."""
    marker = export_marker(run, model)
    if _spec(model).dim == 3 and marker.is_file():
        return int(read_json(marker).get("time_padding_frames", 0))
    return 0


def _training_label(spec: ModelSpec, seq: "EchoSequence", dense_labels: dict | None,
                    ignore: dict | None = None) -> np.ndarray:
    """(T, H, W) uint8 training label of one sequence: dense (manual at ED/ES) or sparse (ignore elsewhere);
    ``ignore`` (``3d_dense_masked``): ``{key: (T, H, W) bool}`` pixels set to the ignore label (never at ED/ES)."""
    if spec.dense:
        label = _dense_for(seq, dense_labels).astype(np.uint8, copy=True)
    else:
        label = np.full(seq.images.shape, IGNORE_LABEL, np.uint8)
    if spec.masked:
        label[ignore[seq.key]] = IGNORE_LABEL
    for t in (seq.ed, seq.es):
        label[t] = seq.labels[t]
    return label


def _training_cases(
    spec: ModelSpec, seq: "EchoSequence", dense_labels: dict | None, ignore: dict | None = None, pad: int = 0
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(case id, image, label) of one sequence: one case per frame (2D) or per sequence (3D; ``pad`` frames
    reflected at each end of time, images and labels alike, :func:`~echo_utils.segmentation.time_padding.pad_time`)."""
    label = _training_label(spec, seq, dense_labels, ignore)
    images = np.asarray(seq.images, dtype=np.float32)
    if spec.dim == 3:
        yield seq.key, pad_time(images, pad), pad_time(label, pad)
        return
    frames = range(seq.n_frames) if spec.dense else sorted({seq.ed, seq.es})
    for t in frames:
        yield f"{seq.key}_f{t:03d}", images[t], label[t]


def dense_pseudo_labels(root: Path, sequences: Iterable["EchoSequence"]) -> dict[str, np.ndarray]:
    """``{seq.key: (T, H, W) uint8}`` bidirectional pseudo-labels of notebook 03, read from its store ``root``
    (``<run>/pseudo_labels/<registration.method>``). A missing file is a :class:`NnUNetError` that names it.
    """
    from ..pseudolabels import load_pseudo_labels

    root = Path(root)
    out = {}
    for seq in sequences:
        try:
            out[seq.key] = load_pseudo_labels(root, seq).bidirectional
        except FileNotFoundError as exc:
            raise NnUNetError(f"dense training needs the pseudo-labels of {seq.key}: {exc}") from None
    return out


def frame_roles(model: str, seq: "EchoSequence") -> list[str]:
    """What each frame of ``seq`` is in the training set of ``model``: 'manual', 'pseudo', 'ignore' or 'unused'."""
    spec = _spec(model)
    roles = []
    for t in range(seq.n_frames):
        if t in (seq.ed, seq.es):
            roles.append("manual")
        elif spec.dense:
            roles.append("pseudo")
        else:
            roles.append("ignore" if spec.dim == 3 else "unused")
    return roles


def make_splits(
    folds: Sequence[int], train: Iterable["EchoSequence"], val: Iterable["EchoSequence"] = ()
) -> list[dict[str, list[str]]]:
    """Patient-wise folds, as lists of *patient ids* (both views of a patient always in the same fold).

    ``folds``: the folds trained (``nnunet.folds``). One fold (``[0]``): train on the study's training patients, validate on its validation
    patients (or on every fifth training patient when there is no validation split). Several folds: a seeded
    k-fold over all training and validation patients, ``k = max(5, max(folds) + 1)``, as nnU-Net's own 5-fold CV.
    """
    train_p = sorted({s.patient for s in train})
    val_p = sorted({s.patient for s in val} - set(train_p))
    folds = [int(f) for f in folds]
    if tuple(folds) == (0,):
        if not val_p:
            val_p = train_p[::5]
            train_p = [p for p in train_p if p not in val_p]
        if not train_p:
            raise NnUNetError("no training patients left for nnU-Net after taking the validation patients")
        return [{"train": train_p, "val": val_p}]
    patients = np.array(sorted(set(train_p) | set(val_p)))
    k = max(5, max(folds) + 1)
    if len(patients) < k:
        raise NnUNetError(f"{k}-fold cross-validation needs at least {k} patients, got {len(patients)}")
    order = np.random.RandomState(12345).permutation(len(patients))
    chunks = np.array_split(order, k)
    return [
        {"train": sorted(patients[np.concatenate(chunks[:i] + chunks[i + 1 :])].tolist()), "val": sorted(patients[c].tolist())}
        for i, c in enumerate(chunks)
    ]


def _case_splits(patient_splits: list[dict], case_ids: list[str]) -> list[dict[str, list[str]]]:
    def cases_of(patients):
        wanted = set(patients)
        return sorted(c for c in case_ids if c.split("_")[0] in wanted)

    return [{"train": cases_of(s["train"]), "val": cases_of(s["val"])} for s in patient_splits]


def _check_id_free(raw: Path, ds_id: int, name: str) -> None:
    clashes = sorted(p.name for p in raw.glob(f"Dataset{ds_id:03d}_*") if p.name != name and not p.name.endswith(".partial"))
    if clashes:
        raise NnUNetError(
            f"nnU-Net dataset id {ds_id} is already used by {clashes} in {raw}; nnU-Net needs unique ids. "
            "Choose another nnunet.dataset_id_base in the profile (nothing was changed)."
        )


def export_dataset(
    run: NnUNetRun,
    model: str,
    train: list["EchoSequence"],
    val: list["EchoSequence"] = (),
    test: list["EchoSequence"] = (),
    dense_labels: dict[str, np.ndarray] | None = None,
    *,
    confidence: dict[str, np.ndarray] | None = None,
    verify: bool = True,
) -> Path:
    """Write (or reuse) the nnU-Net raw dataset of ``model``; returns its folder ``<raw>/DatasetXXX_Name``.

    Parameters
    ----------
    run : the run's nnU-Net section and folders (:class:`~echo_utils.segmentation.env.NnUNetRun`).
    model : one of :data:`~echo_utils.segmentation.env.SPECS`.
    train, val : the sequences nnU-Net trains and validates on (``val`` becomes the validation fold, see
        :func:`make_splits`); their ``labels`` hold the manual ED/ES labels.
    test : sequences written to ``imagesTs`` as (T, H, W) volumes, for users of ``nnUNetv2_predict``.
    dense_labels : ``{seq.key: (T, H, W) uint8}`` pseudo-labels (notebook 03, :func:`dense_pseudo_labels`);
        required by the dense models. The manual labels replace them at ED and ES.
    confidence : ``3d_dense_masked`` only, and required there: ``{seq.key: (T, H, W) float}`` confidence maps of
        the train and val pseudo-labels (notebook 03's stored maps:
        :func:`~echo_utils.segmentation.masking.study_confidence_maps`). The threshold is set by
        :func:`~echo_utils.segmentation.masking.masking_record` on the ``val`` sequences.
    verify : run nnU-Net's integrity checks (:func:`verify_dataset`) before the folder is published.

    Layout: 2D models get one case per frame (``patient0001_2CH_f004``, (H, W) images with spacing (sy, sx)),
    3D models one case per sequence ((T, H, W) volumes with spacing (:func:`volume_time_spacing`, sy, sx); with
    ``nnunet.time_padding: reflect``, (T + 2k, H, W): ``k`` = :func:`~echo_utils.segmentation.time_padding.
    time_padding_frames` frames reflected at each end, every padded frame with the label of the frame it copies;
    ED and ES are the end frames of a half sequence, so their manual labels are copied only when ``k > T - 2``
    folds the mirror back onto them). The 3D sparse labels are
    :data:`IGNORE_LABEL` on every frame but ED and ES. ``dataset.json`` holds the channel, the
    labels (plus ``ignore``), ``numTraining`` and ``file_ending``; ``splits_final.json`` (patient-wise folds) goes
    to the preprocessed folder, where nnU-Net reads it.

    The export is written to ``<name>.partial``, verified and then renamed, so a published dataset is always
    complete. It is keyed by a hash of its content: the same content is reused; different content under the same
    id is a :class:`NnUNetError` and the existing dataset is left untouched.
    """
    spec = _spec(model)
    nn = run.nn
    configure_nnunet(run)
    raw, name = run.raw, dataset_name(nn, model)
    train, val, test = list(train), list(val), list(test)
    if not train:
        raise NnUNetError(f"{model}: no training sequences given")
    for seq in train + val:
        _check_sequence(seq)
    if spec.dense:  # fail early, before anything is written
        missing = [s.key for s in train + val if dense_labels is None or s.key not in dense_labels]
        if missing:
            _dense_for(next(s for s in train + val if s.key in missing), dense_labels)

    ignore, masking = None, None
    if spec.masked:
        if confidence is None:
            raise NnUNetError(f"{model} needs the confidence maps of the train and val pseudo-labels (confidence=, "
                              "e.g. segmentation.masking.study_confidence_maps of notebook 03's store)")
        masking = masking_rules.masking_record(nn, val, dense_labels, confidence)
        ignore = masking_rules.ignore_masks(train + val, confidence, masking["threshold"])
        masking |= masking_rules.ignored_shares(train + val, ignore)

    patient_splits = make_splits(nn.folds, train, val)
    time_spacing = volume_time_spacing(nn, train + val) if spec.dim == 3 else float(nn.time_spacing)
    pad = time_padding_frames(nn) if spec.dim == 3 else 0
    digest = hashlib.sha256()
    # the padding is part of the content key; unpadded datasets hash as before the key existed (still reused)
    padding = [{"time_padding": nn.time_padding, "frames": pad}] if pad else []
    digest.update(json.dumps([spec.name, time_spacing, patient_splits, sorted(s.key for s in test), *padding]).encode())
    for seq in train + val:
        digest.update(seq.key.encode() + np.asarray(seq.spacing, np.float64).tobytes())
        digest.update(np.ascontiguousarray(seq.images, np.float32).tobytes())
        digest.update(_training_label(spec, seq, dense_labels, ignore).tobytes())
    for seq in test:
        digest.update(seq.key.encode() + np.ascontiguousarray(seq.images, np.float32).tobytes())
    content = digest.hexdigest()[:16]

    _check_id_free(raw, dataset_id(nn, model), name)
    final = raw / name
    marker = marker_record(final / EXPORT_MARKER, f"the nnU-Net dataset {name}", "content")
    if final.exists():
        stored = marker.read()
        old = None if stored is None else stored["content"]
        if old == content:
            _write_splits(run, model, patient_splits, final)
            return final
        raise NnUNetError(
            f"{final} already holds a different dataset (content {old or 'unknown'}, now {content}). "
            "Finished work is never overwritten: use a new run directory or another nnunet.dataset_id_base, "
            "or remove that folder (and its preprocessed/results folders) yourself."
        )

    partial = raw / (name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # an interrupted export: never published, safe to redo
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (partial / sub).mkdir(parents=True)
    case_ids = []
    for seq in train + val:
        sy, sx = (float(v) for v in seq.spacing)
        for case, image, label in _training_cases(spec, seq, dense_labels, ignore, pad):
            spacing = (sy, sx) if spec.dim == 2 else (time_spacing, sy, sx)
            write_nifti(partial / "imagesTr" / f"{case}_0000{FILE_ENDING}", image, spacing)
            write_nifti(partial / "labelsTr" / f"{case}{FILE_ENDING}", label, spacing)
            case_ids.append(case)
    for seq in test:
        sy, sx = (float(v) for v in seq.spacing)
        write_nifti(
            partial / "imagesTs" / f"{seq.key}_0000{FILE_ENDING}",
            pad_time(np.asarray(seq.images, np.float32), pad),
            (time_spacing, sy, sx),
        )

    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    labels = dict(LABEL_VALUES)
    if (not spec.dense and spec.dim == 3) or spec.masked:
        labels["ignore"] = IGNORE_LABEL
    generate_dataset_json(
        str(partial),
        channel_names=dict(CHANNELS),
        labels=labels,
        num_training_cases=len(case_ids),
        file_ending=FILE_ENDING,
        dataset_name=name,
        description=f"echo pseudo-labels study, model {model}: "
        + ("one case per frame" if spec.dim == 2 else "one (T, H, W) volume per sequence, time as the first axis")
        + (f"; time spacing {time_spacing}" if spec.dim == 3 else "")
        + (f"; {pad} frames reflected at each end of time (crop them off predictions)" if pad else "")
        + (f"; pseudo-labelled pixels of confidence < {masking['threshold']:g} ignored" if masking else ""),
        license="CC BY-NC-SA 4.0 for CAMUS-derived data; synthetic data: MIT",
        converted_by="echo_utils.segmentation.export_dataset",
        # every case listed explicitly: nnU-Net then finds the files without its file-listing process pool
        dataset={c: {"images": [f"imagesTr/{c}_0000{FILE_ENDING}"], "label": f"labelsTr/{c}{FILE_ENDING}"}
                 for c in case_ids},
    )
    if verify:
        verify_dataset(nn, partial, run.logs / f"{name}_verify.log")
    marker_record(partial / EXPORT_MARKER, f"the nnU-Net dataset {name}", "content").write(jsonable(
        {"content": content, "model": model, "cases": len(case_ids), "test": len(test), "splits": patient_splits,
         "time_spacing": time_spacing, "time_padding_frames": pad, **({"masking": masking} if masking else {})}))
    os.replace(partial, final)
    _write_splits(run, model, patient_splits, final)
    return final


def dataset_masking(run: NnUNetRun, model: str = "3d_dense_masked") -> dict | None:
    """The masking record of an exported ``3d_dense_masked`` dataset (threshold, how it was chosen, the ignored
    share of the pseudo-labelled pixels; :mod:`~echo_utils.segmentation.masking`), or None for the other models.
    Not exported yet: a :class:`NnUNetError`."""
    marker = export_marker(run, model)
    if not _spec(model).masked:
        return None
    if not marker.is_file():
        raise NnUNetError(f"dataset {marker.parent} has not been exported yet; call export_dataset first")
    return read_json(marker).get("masking")


def verify_dataset(nn: NnUNetConfig, folder: Path, log: Path) -> None:
    """nnU-Net's integrity check of a raw dataset folder; a failure is a :class:`NnUNetError` naming the folder.

    With ``nnunet.pools == 'process'`` this is nnU-Net's ``verify_dataset_integrity`` (a spawn pool). With
    'thread' the same per-case checks (``verify_labels``: only the declared labels; ``check_cases``: image and
    label shapes, spacings and orientations agree) run in ``nnunet.n_proc`` threads, after the dataset-level checks
    (number of cases, consecutive labels).
    """
    from nnunetv2.experiment_planning import verify_dataset_integrity as vdi
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
    from nnunetv2.utilities.label_handling.label_handling import LabelManager
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    try:
        with quiet(log):
            if pools(nn) == "process":
                vdi.verify_dataset_integrity(str(folder), num_processes=nn.n_proc)
                return
            dataset_json = read_json(folder / "dataset.json")
            cases = get_filenames_of_train_images_and_targets(str(folder), dataset_json)
            if len(cases) != dataset_json["numTraining"]:
                raise NnUNetError(f"{folder}: dataset.json declares {dataset_json['numTraining']} training cases, "
                                  f"{len(cases)} found")
            manager = LabelManager(dataset_json["labels"], regions_class_order=None)
            expected = list(manager.all_labels) + ([manager.ignore_label] if manager.has_ignore_label else [])
            if np.any(np.diff(expected) != 1):
                raise NnUNetError(f"{folder}: labels must be consecutive (0, 1, 2, ...), got {expected}")
            first = next(iter(cases.values()))["images"][0]
            rw = determine_reader_writer_from_dataset_json(dataset_json, first)
            with ThreadPool(nn.n_proc) as pool:
                ok_labels = pool.starmap(vdi.verify_labels, [(c["label"], rw, expected) for c in cases.values()])
                ok_cases = pool.starmap(vdi.check_cases, [(c["images"], c["label"], 1, rw) for c in cases.values()])
    except (AssertionError, RuntimeError) as exc:
        raise NnUNetError(f"nnU-Net's integrity check failed for {folder}: {exc} (details in {log})") from exc
    bad = [k for k, a, b in zip(cases, ok_labels, ok_cases) if not (a and b)]
    if bad:
        raise NnUNetError(f"nnU-Net's integrity check failed for {folder}: cases {bad[:5]} have unexpected labels "
                          f"or images that do not match their labels (details in {log})")


def datasets_table(run: NnUNetRun, models: Iterable[str] | None = None) -> "pd.DataFrame":
    """One row per exported dataset: folder name, training cases, labels, train / val patients per fold, the frames
    reflected at each end of time (3D, ``nnunet.time_padding``; 0: none) and, when
    a confidence-masked dataset is listed, its threshold and the share of the pseudo-labelled pixels it ignores."""
    import pandas as pd

    rows = []
    for model in models or run.nn.models:
        folder = export_marker(run, model).parent
        if not (folder / EXPORT_MARKER).is_file():
            raise NnUNetError(f"dataset {folder} has not been exported yet; call export_dataset first")
        info = read_json(folder / EXPORT_MARKER)
        rows.append({
            "model": model,
            "dataset": folder.name,
            "training cases": info["cases"],
            "test sequences": info["test"],
            "labels": ", ".join(read_json(folder / "dataset.json")["labels"]),
            "train / val patients": "; ".join(f"{len(f['train'])} / {len(f['val'])}" for f in info["splits"]),
            "time padding (frames at each end)": info.get("time_padding_frames", 0),
            **({"confidence threshold": info["masking"]["threshold"],
                "ignored (of pseudo-labelled pixels)": info["masking"]["ignored_fraction_of_pseudo"]}
               if "masking" in info else {}),
        })
    return pd.DataFrame(rows).set_index("model")


def _write_splits(run: NnUNetRun, model: str, patient_splits: list[dict], raw_folder: Path) -> Path:
    case_ids = sorted(p.name[: -len("_0000" + FILE_ENDING)] for p in (raw_folder / "imagesTr").glob(f"*{FILE_ENDING}"))
    splits = _case_splits(patient_splits, case_ids)
    out = run.preprocessed / dataset_name(run.nn, model) / "splits_final.json"
    write_json(out, splits)
    return out


