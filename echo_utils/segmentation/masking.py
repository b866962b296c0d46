"""The confidence-masked 3D dense training set (``3d_dense_masked``): doubtful pseudo-labelled pixels are ignored.

The 3D dense model learns every pseudo-labelled pixel as if it were true. The pseudo-label confidence
(:mod:`echo_utils.pseudolabels.confidence`, stored beside the labels by notebook 03) says where the two
propagation directions disagree or the fused boundary is near. ``3d_dense_masked`` is the 3D dense dataset in which
every pseudo-labelled pixel whose confidence is below a threshold becomes nnU-Net's ignore label
(:data:`~echo_utils.segmentation.env.IGNORE_LABEL`): the loss skips it. The ED and ES frames keep their manual
labels in full.

The threshold (:func:`masking_record`):

* ``nnunet.masked_confidence_threshold`` when the profile sets it;
* otherwise chosen on the **validation** patients (never the test patients): the candidate of :data:`CANDIDATES`
  that maximises the F1 score of "confidence below the threshold" as a detector of the pseudo-label errors
  (fused label != the phantom's exact truth) over their pseudo-labelled frames (:func:`select_threshold`; ties:
  the lowest threshold, which ignores the fewest pixels);
* without exact truth on the validation patients (real data): :data:`FALLBACK_THRESHOLD` = 0.5, the confidence at
  the edge of the band where the forward and backward labels disagree (by the confidence's definition), i.e.
  "ignore where the two directions do not agree on the class".

The chosen threshold, how it was chosen, its F1 / precision / recall on the validation patients and the share of
ignored pixels are written into the dataset's export record (``echo_export.json``) and shown by
:func:`~echo_utils.segmentation.export.datasets_table`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..config import NnUNetConfig
from .env import NnUNetError, _section

if TYPE_CHECKING:  # pragma: no cover
    from ..data.camus import EchoSequence

__all__ = [
    "CANDIDATES",
    "FALLBACK_THRESHOLD",
    "pseudo_frames",
    "select_threshold",
    "study_confidence_maps",
    "masking_record",
    "ignore_masks",
    "ignored_shares",
]

#: Thresholds tried on the validation patients (confidence is in [0, 1]).
CANDIDATES: tuple[float, ...] = tuple(float(v) for v in np.round(np.arange(0.05, 1.0, 0.05), 2))
#: The threshold without exact truth: the edge of the forward/backward disagreement band (confidence 0.5).
FALLBACK_THRESHOLD = 0.5


def pseudo_frames(seq: "EchoSequence") -> np.ndarray:
    """The indices of the frames of ``seq`` that carry pseudo-labels in a dense training set (all but ED and ES)."""
    return np.array([t for t in range(seq.n_frames) if t not in (seq.ed, seq.es)], dtype=int)


def select_threshold(confidences: Iterable[np.ndarray], errors: Iterable[np.ndarray],
                     candidates: Iterable[float] = CANDIDATES) -> dict:
    """The threshold whose "confidence < threshold" best detects the errors (maximum F1).

    Parameters
    ----------
    confidences : float arrays (any shapes) of confidence in [0, 1], e.g. one ``(F, H, W)`` per sequence.
    errors : boolean arrays of the same shapes: the pixel's pseudo-label is wrong.
    candidates : thresholds to try.

    Returns
    -------
    ``{"threshold", "f1", "precision", "recall", "n_pixels", "n_errors", "table"}`` where ``table`` lists every
    candidate as ``{"threshold", "f1", "precision", "recall", "flagged"}`` (``flagged``: share of the pixels
    below it). Ties go to the lowest threshold (fewest pixels ignored). No pixels or no errors: a
    :class:`NnUNetError`.
    """
    confidences, errors = list(confidences), list(errors)
    conf = np.concatenate([np.asarray(c, np.float64).ravel() for c in confidences]) if confidences else np.empty(0)
    err = np.concatenate([np.asarray(e, bool).ravel() for e in errors]) if errors else np.empty(0, bool)
    if conf.shape != err.shape:
        raise NnUNetError(f"confidence ({conf.size} pixels) and errors ({err.size}) do not match")
    n_err = int(err.sum())
    if not conf.size or not n_err:
        raise NnUNetError(f"cannot choose a confidence threshold: {conf.size} pixels, {n_err} errors")
    table = []
    for t in sorted(float(c) for c in candidates):
        low = conf < t
        n_low = int(low.sum())
        tp = int((low & err).sum())
        precision = tp / n_low if n_low else 0.0
        recall = tp / n_err
        f1 = 2 * tp / (n_low + n_err)
        table.append({"threshold": t, "f1": f1, "precision": precision, "recall": recall,
                      "flagged": n_low / conf.size})
    best = max(table, key=lambda r: (round(r["f1"], 12), -r["threshold"]))
    return {**{k: best[k] for k in ("threshold", "f1", "precision", "recall")}, "n_pixels": int(conf.size),
            "n_errors": n_err, "table": table}


def study_confidence_maps(root: Path, sequences: Iterable["EchoSequence"], weights: str = "authors"):
    """``({key: PseudoLabels}, {key: (T, H, W) float32 confidence})`` of ``sequences`` (train / val).

    ``root``: the pseudo-label store of notebook 03 (``<run>/pseudo_labels/<registration.method>``); the confidence
    maps are the stored ones beside the labels (:func:`echo_utils.pseudolabels.confidence.sequence_confidence`
    with the Eq. 1 ``weights``, the profile's ``pseudo_labels.weights``: read back, or computed from the stored
    labels and written there when missing or stale)."""
    from ..pseudolabels import load_pseudo_labels
    from ..pseudolabels.confidence import sequence_confidence

    root = Path(root)
    labels, conf = {}, {}
    for seq in sequences:
        try:
            labels[seq.key] = load_pseudo_labels(root, seq)
        except FileNotFoundError as exc:
            raise NnUNetError(f"3d_dense_masked needs the pseudo-labels of {seq.key}: {exc}") from None
        conf[seq.key] = sequence_confidence(root, seq, labels[seq.key], weights=weights)
    return labels, conf


def masking_record(nn: NnUNetConfig, val: Iterable["EchoSequence"], labels: Mapping, confidences: Mapping) -> dict:
    """How the threshold of ``3d_dense_masked`` is set (module docstring): ``{"threshold", "source", ...}``.

    ``val``: the validation sequences; ``labels``: ``{key: PseudoLabels}`` (or ``(T, H, W)`` fused labels);
    ``confidences``: ``{key: (T, H, W)}``. With the phantom's exact truth the record also holds the validation
    F1, precision and recall of the chosen threshold and the number of pixels and errors it was chosen on.
    """
    from ..pseudolabels.confidence import exact_truth

    fixed = _section(nn).masked_confidence_threshold
    if fixed is not None:
        return {"threshold": float(fixed), "source": "nnunet.masked_confidence_threshold (set in the profile)"}
    val = list(val)
    exact = [s for s in exact_truth(val) if s.key in labels and s.key in confidences]
    confs, errs = [], []
    for seq in exact:
        frames = pseudo_frames(seq)
        fused = getattr(labels[seq.key], "bidirectional", labels[seq.key])
        confs.append(np.asarray(confidences[seq.key])[frames])
        errs.append(np.asarray(fused)[frames] != np.asarray(seq.dense)[frames])
    if not exact or not any(e.any() for e in errs):
        return {"threshold": FALLBACK_THRESHOLD,
                "source": f"fallback {FALLBACK_THRESHOLD:g}: the edge of the forward/backward disagreement band "
                          f"(no exact truth with errors on the {len(val)} validation sequences)"}
    best = select_threshold(confs, errs)
    return {"threshold": best["threshold"],
            "source": f"maximum F1 for the pseudo-label errors on {len(exact)} validation sequences (exact truth)",
            "val_f1": round(best["f1"], 4), "val_precision": round(best["precision"], 4),
            "val_recall": round(best["recall"], 4), "val_pixels": best["n_pixels"], "val_errors": best["n_errors"]}


def ignore_masks(sequences: Iterable["EchoSequence"], confidences: Mapping, threshold: float) -> dict:
    """``{key: (T, H, W) bool}``: the pseudo-labelled pixels whose confidence is below ``threshold``; never a pixel
    of the ED or ES frame (their manual labels are kept whole)."""
    out = {}
    for seq in sequences:
        if seq.key not in confidences:
            raise NnUNetError(f"3d_dense_masked: no confidence map for {seq.key}")
        conf = np.asarray(confidences[seq.key])
        if conf.shape != tuple(np.asarray(seq.images).shape):
            raise NnUNetError(f"{seq.key}: confidence map has shape {conf.shape}, images {seq.images.shape}")
        mask = conf < float(threshold)
        mask[[seq.ed, seq.es]] = False
        out[seq.key] = mask
    return out


def ignored_shares(sequences: Iterable["EchoSequence"], ignore: Mapping) -> dict:
    """How much of the training set :func:`ignore_masks` ignores: ``ignored_pixels``, and their share of the
    pseudo-labelled pixels (:func:`pseudo_frames`) and of all training voxels (rounded to 6 digits)."""
    sequences = list(sequences)
    pseudo = sum(len(pseudo_frames(s)) * int(np.prod(s.images.shape[1:])) for s in sequences)
    ignored = sum(int(ignore[s.key].sum()) for s in sequences)
    total = sum(int(np.prod(s.images.shape)) for s in sequences)
    return {"ignored_pixels": ignored, "ignored_fraction_of_pseudo": round(ignored / max(pseudo, 1), 6),
            "ignored_fraction_of_all": round(ignored / total, 6)}
