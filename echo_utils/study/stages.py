"""One function per pipeline step of a :class:`~echo_utils.study.core.Study`, each returning its cached artifact.

==========================  ===================================================================================
stage                       returns (cached where the step caches it; a rerun reads it back)
==========================  ===================================================================================
:func:`registration`        the study's registration (``registration.method``, or ``name``); for ``'dlir'`` the
                            network trained on the train split, validated on val, the registration's excluded
                            patients left out: **the one place that assembles it** (notebooks 02 and 03, the
                            compute jobs and the learning benchmark call it)
:func:`pseudo_labels`       the pseudo-label files of the given sequences (``pseudo_labels/<method>/``)
:func:`nnunet_datasets`     every model's exported, planned and preprocessed nnU-Net dataset (its plans files)
:func:`model`               one trained fold of one nnU-Net model (its fold folder)
:func:`predictions`         one prediction set: a model on some splits (its NIfTI files)
:func:`fig2_predictions`    2D sparse on the Fig. 2 sequences that are in no split (the paper's TED patients)
:func:`evaluation_set`      the sequences the pseudo-labels are scored on (Fig. 2)
==========================  ===================================================================================

The profile is translated here, at the edge: the algorithm packages get its sections and plain arguments
(:func:`nnunet_run` is everything :mod:`echo_utils.segmentation` needs of a study, :func:`pseudo_label_store` the
folder notebook 03's pseudo-labels are read from). The compute jobs (:mod:`echo_utils.compute.pipeline`) call these
functions where the job runs.
"""

from __future__ import annotations

from pathlib import Path

from .core import Study

__all__ = ["registration", "training_monitor", "pseudo_labels", "pseudo_label_store", "nnunet_run",
           "nnunet_datasets", "model", "predictions", "fig2_predictions", "evaluation_set"]


class _LazyMonitor:
    """The training monitor, built on its first call: a network read back from the cache never builds it (the
    phantom's pairs are read only when a training runs)."""

    def __init__(self, build):
        self._build, self._monitor = build, None

    def __call__(self, model) -> dict:
        if self._monitor is None:
            self._monitor = self._build()
        return self._monitor(model)


def training_monitor(study: Study, val) -> _LazyMonitor | None:
    """The monitor the study trains with: the end-point error of the network on the validation sequences'
    consecutive-frame pairs against the phantom's exact motion
    (:func:`echo_utils.registration.evidence.epe_monitor`), for the synthetic cohort only (``None`` otherwise)."""
    if study.cfg.data.source != "synthetic" or not val:
        return None
    from ..registration.evidence import epe_monitor

    root = study.cohort.root
    return _LazyMonitor(lambda: epe_monitor(root, val, "step"))


def registration(study: Study, device: str | None = None, *, name: str | None = None, train=None, val=None,
                 monitor=None, progress: bool = False):
    """The study's registration ``name`` (default ``registration.method``), built by
    :func:`echo_utils.registration.registration_from_config` from the profile's ``registration`` section.

    For ``'dlir'``: the network trained on the ``train`` split and validated on ``val`` (read now unless given),
    without the cohort's excluded patients (the paper's TED patients), in ``paths.registration``, with
    ``monitor`` (default :func:`training_monitor`; a benchmark logs more); trained now or read back from its cache
    (the key covers the settings and the data, not the device or the monitor).  ``device``: ``None`` is the
    profile's device.
    """
    from .. import registration as reg

    cfg = study.cfg
    name = name or cfg.registration.method
    if name != "dlir":
        return reg.registration_from_config(name, cfg.registration)
    train = study.sequences("train") if train is None else train
    val = study.sequences("val") if val is None else val
    return reg.registration_from_config("dlir", cfg.registration, train=train, val=val,
                                        run_dir=study.paths.registration, device=device or cfg.torch_device,
                                        progress=progress, exclude_patients=list(study.cohort.exclusions),
                                        monitor=training_monitor(study, val) if monitor is None else monitor)


def pseudo_label_store(study: Study) -> Path:
    """The folder of the study's pseudo-labels (and their confidence maps): ``<run>/pseudo_labels/<registration.
    method>``, where :func:`pseudo_labels` writes them and the nnU-Net export reads them."""
    return Path(study.paths.pseudo_labels) / study.cfg.registration.method


def nnunet_run(study: Study):
    """What the segmentation package needs of the study: its ``nnunet`` section and the run's ``nnunet/`` and
    ``predictions/`` folders (:class:`echo_utils.segmentation.NnUNetRun`)."""
    from ..segmentation import NnUNetRun

    return NnUNetRun(study.cfg.nnunet, study.paths.nnunet, study.paths.predictions)


def pseudo_labels(study: Study, registration, keys, *, progress: bool = False) -> list[Path]:
    """Pseudo-labels (forward, backward, Eq. 1) of the sequences ``keys`` (``(patient, view)`` pairs) with
    ``registration`` (:func:`registration`), cached under ``pseudo_labels/<registration.method>/`` where notebook 03
    and the nnU-Net export read them; returns their files."""
    from .. import pseudolabels

    method = study.cfg.registration.method
    out_dir = pseudo_label_store(study)
    seqs = list(study.read_sequences(keys, listed_in="this shard (the data changed since the jobs were planned)"))
    pseudolabels.generate_pseudo_labels(seqs, registration, out_dir, cfg_pl=study.cfg.pseudo_labels,
                                        method_name=method, progress=progress)
    return [pseudolabels.pseudo_label_path(out_dir, s, k) for s in seqs for k in pseudolabels.KINDS]


def nnunet_datasets(study: Study) -> list[Path]:
    """Every model's nnU-Net dataset (``nnunet.models``): the dense pseudo-labels of the train and val sequences for
    the dense models (and their confidence maps for ``3d_dense_masked``), read from :func:`pseudo_label_store`, the
    export, the planning and preprocessing (each cached); returns the models' plans files."""
    from .. import segmentation as seg

    run, store = nnunet_run(study), pseudo_label_store(study)
    train, val, test = (study.sequences(s) for s in ("train", "val", "test"))
    models = run.nn.models
    dense = seg.dense_pseudo_labels(store, train + val) if any(seg.SPECS[m].dense for m in models) else None
    confidence = None
    if any(seg.SPECS[m].masked for m in models):
        _, confidence = seg.masking.study_confidence_maps(store, train + val, study.cfg.pseudo_labels.weights)
    outputs = []
    for m in models:
        seg.export_dataset(run, m, train, val, test, dense, confidence=confidence)
        seg.plan_and_preprocess(run, m)
        outputs.append(seg.plans.plans_file(run, m))
    return outputs


def model(study: Study, name: str, fold: int, device: str | None = None) -> Path:
    """Fold ``fold`` of the nnU-Net model ``name``, trained (resumed from ``checkpoint_latest.pth``) or read back;
    returns its final checkpoint."""
    from .. import segmentation as seg

    out = seg.train_model(nnunet_run(study), name, fold, device or study.cfg.torch_device)
    return Path(out) / "checkpoint_final.pth"


def predictions(study: Study, name: str, splits, device: str | None = None, *, out_name: str | None = None,
                sequences=None) -> list[Path]:
    """The prediction set of model ``name`` on the sequences of ``splits`` (or ``sequences``), all folds averaged,
    under ``predictions/<out_name or name>/`` (cached per sequence); returns its files."""
    from .. import segmentation as seg

    run = nnunet_run(study)
    seqs = [s for split in splits for s in study.sequences(split)] if sequences is None else list(sequences)
    kw = {"out_name": out_name} if out_name else {}
    seg.predict_all(run, name, seqs, device or study.cfg.torch_device, **kw)
    return [seg.prediction_path(run.predictions, out_name or name, s) for s in seqs]


def fig2_predictions(study: Study, device: str | None = None, name: str = "2d_sparse") -> list[Path]:
    """2D sparse on the Fig. 2 sequences that are in no split (the paper: TED patients paired with CAMUS), under
    ``predictions/2d_sparse_fig2``; nothing to do (no file) when every Fig. 2 sequence is in a split."""
    known = {f"{p}_{v}" for p, v in study.cohort.keys("all")}
    seqs = [s for s in evaluation_set(study) if s.key not in known]
    if not seqs:
        return []
    return predictions(study, name, [], device, out_name="2d_sparse_fig2", sequences=seqs)


def evaluation_set(study: Study) -> list:
    """The sequences the pseudo-labels are evaluated on (Fig. 2): a dense reference, patients unseen by the
    registration, from the study's resolved cohort (:func:`echo_utils.study.cohort.evaluation_sequences`)."""
    from .cohort import evaluation_sequences

    return evaluation_sequences(study)
