"""Pseudo-label confidence: how much the method itself doubts each pixel of a fused (Eq. 1) label map.

The paper ends on the uncertain boundaries of the myocardium and the left atrium. The method already holds two
opinions about every frame between ED and ES: the forward label (from ED) and the backward label (from ES). This
module turns them into a per-pixel **confidence** in [0, 1], from quantities Eq. 1 computes anyway:

* ``d_f``, ``d_b``: the exact signed distances (px, positive inside) of class C in the forward and backward label;
* ``s = w_f d_f + w_b d_b``: the fused signed distance of Eq. 1 (its zero crossing is the fused boundary);
* ``delta = |d_f - d_b|``: the *disagreement*, how far apart the two directions put the boundary of C near the
  pixel (px).

Per class C and pixel, with ``h`` the half-width of the disagreement band on the pixel's side of the fused
boundary (the fused boundary lies ``w_b delta`` from the forward contour and ``w_f delta`` from the backward one):

    ``conf_C = min(1, |s| / (2 max(h, r0)))``

i.e. the distance to the fused boundary in units of twice the local band half-width, with a floor ``r0`` (2 px:
the rounding of nearest-neighbour warping; where the directions agree on the boundary, its neighbours are still
doubtful). Inside the disagreement band ``|s| < h``, so ``conf < 0.5`` there (exactly the band for straight
contours whose half-widths are both >= ``r0``; a band narrower than ``r0`` widens the low region to ``r0`` around
the fused boundary). It is 0 on the fused boundary and 1 (the maximum) from twice the half-width on: where both
directions agree far from the boundary. A first, two-tier version (band < 0.5, agreement > 0.5 whatever the
distance) ordered the errors worse than the plain distance to the boundary on the demo's validation patients, and
was dropped; ``r0`` = 2 was kept over 1 (worse) and 3 (within 0.01) on the validation patients.

The map is the minimum over the classes present (background included): the least certain class decision of the
pixel. Frames whose Eq. 1 weight is exactly 1 on one side carry that side's manual reference (ED and ES with the
authors' phase): confidence 1 (the method does not doubt the manual label; annotator uncertainty is not modelled).
Frames outside [ED, ES] (full-cycle sequences) have one propagated direction only: forward and backward are equal
there, so their confidence only measures the distance to the boundary. :func:`structure_confidence_map` gives
one structure's own confidence (its mask only), which scores a structure's errors better than the minimum.

**What it is not.** It is not a calibrated probability of a correct label: 0.5 is a convention (the edge of the
disagreement band), not an odds ratio. Whether the ordering predicts the errors, and how the error rate varies per
confidence bin, is measured against the phantom's exact truth by :func:`score_confidence` and
:func:`reliability_table`. The deformation's Jacobian is not part of it: on the demo (DLIR network of 2026-12-02)
``|log det J|`` of the last step into a frame scored AUROC 0.44 alone, and adding it to the map changed the AUROC
by < 0.001 (``DEFINITION['jacobian'] = False``).

Storage (:func:`sequence_confidence`): float32 NIfTI files beside the labels,
``<store>/confidence/<key>/patientXXXX/patientXXXX_<view>_half_sequence_confidence.nii.gz``, where ``<key>`` is a
hash of :data:`DEFINITION` and the Eq. 1 weights: a changed definition writes a new folder and never reads the old
one. Each file's NIfTI header records a digest of the forward and backward labels it was computed from; a file
whose labels changed is recomputed. Old stores without confidence files get them on first read (the confidence is
a function of the stored labels alone, so nothing needs to be registered again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ..artifacts import files
from ..artifacts.record import KeyedRecord, settings_key
from ..labels import structure_mask
from .fuse import Weights, _check_pair, fusion_weights, signed_distance
from .nifti import save_nifti

__all__ = [
    "DEFINITION",
    "CONFIDENCE_METRICS",
    "CONFIDENCE_RELIABILITY",
    "class_confidence",
    "frame_confidence",
    "confidence_map",
    "sequence_confidence_map",
    "structure_confidence_map",
    "confidence_key",
    "confidence_path",
    "sequence_confidence",
    "study_confidence",
    "set_confidences",
    "exact_truth",
    "error_auroc",
    "rank_auroc",
    "score_confidence",
    "reliability_table",
    "write_confidence_metrics",
]

#: The confidence definition; every value enters the cache key (:func:`confidence_key`). Change ``version`` with
#: any change of the formulas above.
DEFINITION: dict = {"version": 2, "r0_px": 2.0, "units": "px", "jacobian": False}

#: File names under the run's ``metrics/`` (notebook 03).
CONFIDENCE_METRICS = files.CONFIDENCE_AUROC
CONFIDENCE_RELIABILITY = files.CONFIDENCE_RELIABILITY

_FILE_TAG = "echo-confidence"


# ----------------------------------------------------------------------------------------------------------------
# the definition


def class_confidence(d_f: np.ndarray, d_b: np.ndarray, w_f: float, w_b: float, r0: float | None = None):
    """Confidence of one class from its two signed distance maps (any shape, px, positive inside).

    ``w_f + w_b = 1`` are the Eq. 1 weights of the frame. Returns float32 in [0, 1] of the same shape:
    ``min(1, |s| / (2 max(h, r0)))`` with ``s`` the fused distance and ``h`` the half-width of the disagreement band
    on the pixel's side of the fused boundary (module docstring).
    """
    r0 = DEFINITION["r0_px"] if r0 is None else float(r0)
    d_f = np.asarray(d_f, np.float64)
    d_b = np.asarray(d_b, np.float64)
    s = w_f * d_f + w_b * d_b
    delta = np.abs(d_f - d_b)
    disagree = (d_f > 0) != (d_b > 0)
    # the pixel's side of the fused boundary: the forward contour's side (band: s has the sign of d_b; outside
    # the band: the forward contour is the nearer one), where the band edge lies w_b delta from the fused boundary
    forward_side = np.where(disagree, (s > 0) == (d_b > 0), np.abs(d_f) <= np.abs(d_b))
    h = np.where(forward_side, w_b, w_f) * delta
    return np.minimum(1.0, np.abs(s) / (2.0 * np.maximum(h, r0))).astype(np.float32)


def frame_confidence(forward: np.ndarray, backward: np.ndarray, w_f: float, w_b: float,
                     r0: float | None = None, *, classes: Iterable[int] | None = None) -> np.ndarray:
    """Confidence map of one frame: float32 ``(H, W)`` in [0, 1], the minimum over ``classes`` of
    :func:`class_confidence` (default: every class present in either label, background included).

    ``forward``, ``backward``: uint8 ``(H, W)`` label maps; ``w_f``, ``w_b``: the frame's Eq. 1 weights. A frame
    whose weight is exactly 1 on one side is that side's label: confidence 1 everywhere.
    """
    forward = np.asarray(forward)
    backward = np.asarray(backward)
    if forward.shape != backward.shape or forward.ndim != 2:
        raise ValueError(f"forward {forward.shape} and backward {backward.shape} must be one (H, W) shape")
    out = np.ones(forward.shape, np.float32)
    if w_f == 1.0 or w_b == 1.0:
        return out
    if classes is None:
        classes = sorted(set(np.unique(forward)) | set(np.unique(backward)))
    for c in classes:
        mf, mb = forward == c, backward == c
        conf = class_confidence(signed_distance(mf), signed_distance(mb), w_f, w_b, r0)
        np.minimum(out, conf, out=out)
    return out


def confidence_map(forward: np.ndarray, backward: np.ndarray, *, weights: Weights = "authors",
                   r0: float | None = None) -> np.ndarray:
    """Confidence of Eq. 1 fused labels: float32 ``(T, H, W)`` in [0, 1] from uint8 ``(T, H, W)`` forward and
    backward labels whose frame 0 is ED and frame T-1 is ES (the weights of :func:`fusion_weights`)."""
    forward, backward = _check_pair(forward, backward)
    wf, wb = fusion_weights(forward.shape[0], weights)
    return np.stack([frame_confidence(forward[k], backward[k], float(wf[k]), float(wb[k]), r0)
                     for k in range(forward.shape[0])])


def sequence_confidence_map(seq, labels, *, weights: Weights = "authors", r0: float | None = None):
    """Confidence of a whole sequence's pseudo-labels: float32 ``(T, H, W)``.

    ``labels``: its :class:`~echo_utils.pseudolabels.propagate.PseudoLabels`. Frames ED..ES get
    :func:`confidence_map` with the Eq. 1 weights; frames outside [ED, ES] (one direction only, shared by forward and
    backward) get :func:`frame_confidence` with equal weights (distance to the boundary only).
    """
    forward, backward = _check_pair(labels.forward, labels.backward)
    ed, es = int(seq.ed), int(seq.es)
    step = 1 if es > ed else -1
    frames = np.arange(ed, es + step, step)
    out = np.empty(forward.shape, np.float32)
    inside = np.zeros(forward.shape[0], bool)
    inside[frames] = True
    for k in np.flatnonzero(~inside):
        out[k] = frame_confidence(forward[k], backward[k], 0.5, 0.5, r0)
    out[frames] = confidence_map(forward[frames], backward[frames], weights=weights, r0=r0)
    return out


def structure_confidence_map(seq, labels, structure: str, *, weights: Weights = "authors",
                             r0: float | None = None) -> np.ndarray:
    """The confidence of one structure's membership alone (:func:`class_confidence` of its mask, e.g. ``EPI`` =
    cavity + myocardium), float32 ``(T, H, W)``, on frames ED..ES (1 outside them and at the reference frames)."""
    forward, backward = _check_pair(labels.forward, labels.backward)
    ed, es = int(seq.ed), int(seq.es)
    step = 1 if es > ed else -1
    frames = np.arange(ed, es + step, step)
    wf, wb = fusion_weights(len(frames), weights)
    out = np.ones(forward.shape, np.float32)
    for k, t in enumerate(frames):
        if wf[k] in (0.0, 1.0):
            continue
        mf, mb = structure_mask(forward[t], structure), structure_mask(backward[t], structure)
        out[t] = class_confidence(signed_distance(mf), signed_distance(mb), float(wf[k]), float(wb[k]), r0)
    return out


# ----------------------------------------------------------------------------------------------------------------
# the store


def confidence_key(weights: Weights = "authors", definition: Mapping | None = None) -> str:
    """A 12-hex-digit hash of the definition and the Eq. 1 weights convention: the confidence folder's name."""
    return settings_key(_definition_record(weights, definition), 12)


def _definition_record(weights: Weights = "authors", definition: Mapping | None = None) -> dict:
    """What a confidence folder is keyed by, and its ``params.json``: the definition and the Eq. 1 weights."""
    return {"definition": dict(definition or DEFINITION), "weights": weights}


def confidence_path(root: str | Path, seq, key: str) -> Path:
    """``root/confidence/<key>/patientXXXX/patientXXXX_<view>_half_sequence_confidence.nii.gz``."""
    patient, view = (seq.rpartition("_")[0], seq.rpartition("_")[2]) if isinstance(seq, str) else (seq.patient,
                                                                                                     seq.view)
    return Path(root) / "confidence" / key / patient / f"{patient}_{view}_half_sequence_confidence.nii.gz"


def _labels_digest(labels, seq) -> str:
    h = hashlib.sha256(f"{int(seq.ed)},{int(seq.es)}".encode())
    for arr in (labels.forward, labels.backward):
        h.update(np.ascontiguousarray(arr, np.uint8).tobytes())
    return h.hexdigest()[:16]


def _write_record(folder: Path, weights: str) -> None:
    """The folder's ``params.json`` (what its key, the folder's name, hashes); one that says otherwise is refused."""
    KeyedRecord(folder / files.PARAMS_FILE, what="the confidence store", indent=2, sort_keys=True).claim(
        _definition_record(weights))


def _save(path: Path, conf: np.ndarray, spacing, tag: str) -> None:
    """One float32 confidence map, written atomically like the labels, ``tag`` (the labels digest) in its header."""
    save_nifti(path, conf, spacing, dtype=np.float32, description=tag)


def _load(path: Path, tag: str, shape) -> np.ndarray | None:
    """The stored map, or None when it was made from other labels (header tag) or has another shape."""
    import nibabel as nib

    img = nib.load(str(path))
    stored = bytes(img.header["descrip"].tobytes()).split(b"\0")[0].decode(errors="replace")
    if stored != tag:
        return None
    conf = np.ascontiguousarray(np.transpose(np.asarray(img.dataobj, np.float32), (2, 1, 0)))
    return conf if conf.shape == tuple(shape) else None


def sequence_confidence(root: str | Path | None, seq, labels, *, weights: Weights = "authors") -> np.ndarray:
    """The confidence map of ``seq``'s pseudo-labels, float32 ``(T, H, W)``, cached under ``root`` (the
    pseudo-label store of its labels, ``paths.pseudo_labels / <method>``; ``None``: compute, write nothing).

    A stored file is read back when it was made with this definition (its folder, :func:`confidence_key`) from these
    forward and backward labels (a digest in its header); otherwise the map is computed and written atomically.
    """
    if root is None:
        return sequence_confidence_map(seq, labels, weights=weights)
    key = confidence_key(weights)
    path = confidence_path(root, seq, key)
    tag = f"{_FILE_TAG} {key} {_labels_digest(labels, seq)}"
    if path.is_file():
        try:
            conf = _load(path, tag, labels.forward.shape)
        except Exception:  # noqa: BLE001 - a damaged cache file: the map is a function of the labels, recompute it
            conf = None
        if conf is not None:
            return conf
    conf = sequence_confidence_map(seq, labels, weights=weights)
    _write_record(path.parents[1], weights)
    _save(path, conf, seq.spacing, tag)
    return conf


def study_confidence(sequences: Iterable, labels: Mapping, root: str | Path | None = None, *,
                     weights: Weights = "authors", stored: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """``{key: (T, H, W) confidence}`` for the ``sequences`` in ``labels`` (``{key: PseudoLabels}``); the keys in
    ``stored`` are cached under ``root`` (:func:`sequence_confidence`), the others computed in memory."""
    stored = set(stored)
    return {s.key: sequence_confidence(root if s.key in stored else None, s, labels[s.key], weights=weights)
            for s in sequences if s.key in labels}


def set_confidences(sequences: Iterable, label_sets: Mapping[str, Mapping], root: str | Path, *,
                    weights: Weights = "authors", stored: Mapping[str, Iterable[str]] | None = None
                    ) -> dict[str, dict[str, np.ndarray]]:
    """:func:`study_confidence` of every set of ``label_sets`` (``{name: {key: PseudoLabels}}``):
    ``{name: {key: (T, H, W) confidence}}``; the keys ``stored[name]`` are cached under ``root/<name>`` (the set's
    store), the others computed in memory."""
    sequences, stored = list(sequences), stored or {}
    return {name: study_confidence(sequences, lab, Path(root) / name, weights=weights, stored=stored.get(name, ()))
            for name, lab in label_sets.items()}


# ----------------------------------------------------------------------------------------------------------------
# does it predict the errors?


def exact_truth(sequences: Iterable) -> list:
    """The sequences whose dense reference is exact (the phantom): the only ones the confidence is scored on (a
    manual or interpolated reference has its own boundary uncertainty)."""
    return [s for s in sequences if getattr(s, "dense", None) is not None and getattr(s, "dense_kind", None) == "exact"]


def rank_auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the boolean ``positives`` (Mann-Whitney U / (n_pos n_neg)),
    ties counted one half; NaN when either class is empty."""
    from scipy.stats import rankdata

    scores = np.asarray(scores, np.float64).ravel()
    positives = np.asarray(positives, bool).ravel()
    n_pos = int(positives.sum())
    n_neg = positives.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks for ties
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def error_auroc(confidence: np.ndarray, errors: np.ndarray) -> float:
    """AUROC of *low* confidence for the error pixels: the probability that a random mislabelled pixel has lower
    confidence than a random correct one (ties one half). scikit-learn's ``roc_auc_score``."""
    from sklearn.metrics import roc_auc_score

    errors = np.asarray(errors, bool).ravel()
    if errors.all() or not errors.any():
        return float("nan")
    return float(roc_auc_score(errors, -np.asarray(confidence, np.float64).ravel()))


def _between(seq) -> np.ndarray:
    """Frame indices strictly between ED and ES (where both directions were propagated and neither is manual)."""
    ed, es = int(seq.ed), int(seq.es)
    lo, hi = min(ed, es), max(ed, es)
    return np.arange(lo + 1, hi)


def _population(pseudo_s: np.ndarray, truth_s: np.ndarray, margin: int) -> np.ndarray:
    """Pixels within ``margin`` px (chessboard) of the structure in the pseudo-label or the truth, per frame."""
    from scipy import ndimage as ndi

    union = pseudo_s | truth_s
    if margin <= 0:
        return np.ones_like(union)
    return ndi.binary_dilation(union, structure=np.ones((1, 3, 3), bool), iterations=int(margin))


def _pixels(sequences, labels, confidences, structures, margin, weights):
    """Per structure: (map confidence, structure's own confidence, distance-only control, error) of every evaluated
    pixel, concatenated."""
    out = {s: ([], [], [], []) for s in structures}
    for seq in sequences:
        if seq.key not in labels or seq.dense is None:
            continue
        frames = _between(seq)
        if not len(frames):
            continue
        pl = labels[seq.key]
        fused = np.asarray(pl.bidirectional)[frames]
        truth = np.asarray(seq.dense)[frames]
        conf = np.asarray(confidences[seq.key])[frames]
        for s in structures:
            ps, ts = structure_mask(fused, s), structure_mask(truth, s)
            pop = _population(ps, ts, margin)
            own = structure_confidence_map(seq, pl, s, weights=weights)[frames]
            dist = np.abs(signed_distance(ps))  # control: distance to the fused boundary of the structure alone
            for lst, v in zip(out[s], (conf, own, dist, ps != ts)):
                lst.append(v[pop])
    return {s: tuple(np.concatenate(v) if v else np.empty(0) for v in vals) for s, vals in out.items()}


def score_confidence(sequences: Iterable, labels: Mapping[str, Mapping], confidences: Mapping[str, Mapping], *,
                     structures: Iterable[str] = ("LV", "MYO", "LA"), margin: int = 10,
                     weights: Weights = "authors") -> "pd.DataFrame":
    """AUROC of low confidence for mislabelled pixels, per registration and structure, against the exact truth.

    Parameters
    ----------
    sequences : the evaluated ``EchoSequence`` s (with ``dense`` truth; others are skipped).
    labels : ``{registration: {key: PseudoLabels}}``; confidences: ``{registration: {key: (T, H, W)}}``.
    structures : keys of :data:`echo_utils.labels.STRUCTURES`.
    margin : the evaluated pixels of a structure are those within ``margin`` px of it in the fused pseudo-label or
        the truth (all its errors lie there), so that the far background, trivially right, does not inflate the
        score. Frames strictly between ED and ES only.

    Returns
    -------
    One row per (registration, structure): ``n_pixels``, ``n_errors``, ``error_rate``, ``auroc`` (the stored map,
    the minimum over the classes), ``auroc_structure`` (the structure's own confidence,
    :func:`structure_confidence_map`), ``auroc_distance`` (the control: the distance to the fused boundary of the
    structure alone, without the two directions' disagreement), ``margin_px``.
    """
    import pandas as pd

    sequences = list(sequences)
    structures = list(structures)
    rows = []
    for name, lab in labels.items():
        pix = _pixels(sequences, lab, confidences[name], structures, margin, weights)
        for s in structures:
            conf, own, dist, err = pix[s]
            rows.append({
                "registration": name, "structure": s, "n_pixels": int(err.size), "n_errors": int(err.sum()),
                "error_rate": float(err.mean()) if err.size else float("nan"), "auroc": error_auroc(conf, err),
                "auroc_structure": error_auroc(own, err), "auroc_distance": error_auroc(dist, err),
                "margin_px": margin,
            })
    return pd.DataFrame(rows)


def reliability_table(sequences: Iterable, labels: Mapping[str, Mapping], confidences: Mapping[str, Mapping], *,
                      bins: int = 10) -> "pd.DataFrame":
    """Error rate per confidence bin (any class wrong), per registration, on the frames strictly between ED and ES.

    The evaluated pixels are those within 10 px of the heart (any foreground label in the fused pseudo-label or
    the truth). Bins are ``bins`` equal intervals of [0, 1] (the last one closed); ``confidence = 1`` gets its own
    row (``bin_lo = bin_hi = 1``) because most pixels sit there. Columns: ``registration``, ``bin_lo``, ``bin_hi``,
    ``n_pixels``, ``n_errors``, ``error_rate``, ``mean_confidence``.
    """
    import pandas as pd

    sequences = list(sequences)
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for name, lab in labels.items():
        confs, errs = [], []
        for seq in sequences:
            if seq.key not in lab or seq.dense is None or not len(_between(seq)):
                continue
            frames = _between(seq)
            fused = np.asarray(lab[seq.key].bidirectional)[frames]
            truth = np.asarray(seq.dense)[frames]
            pop = _population(fused > 0, truth > 0, 10)
            confs.append(np.asarray(confidences[name][seq.key])[frames][pop])
            errs.append((fused != truth)[pop])
        if not confs:
            continue
        conf, err = np.concatenate(confs), np.concatenate(errs)
        one = conf >= 1.0
        idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
        for b in range(bins):
            m = (idx == b) & ~one
            rows.append(_bin_row(name, edges[b], edges[b + 1], conf[m], err[m]))
        rows.append(_bin_row(name, 1.0, 1.0, conf[one], err[one]))
    return pd.DataFrame(rows)


def _bin_row(name, lo, hi, conf, err) -> dict:
    n = int(err.size)
    return {"registration": name, "bin_lo": float(lo), "bin_hi": float(hi), "n_pixels": n,
            "n_errors": int(err.sum()), "error_rate": float(err.mean()) if n else float("nan"),
            "mean_confidence": float(conf.mean()) if n else float("nan")}


def write_confidence_metrics(metrics_dir: str | Path, auroc: "pd.DataFrame", reliability: "pd.DataFrame"):
    """Write the two tables to ``metrics_dir`` as :data:`CONFIDENCE_METRICS` and :data:`CONFIDENCE_RELIABILITY`;
    returns the two paths."""
    metrics_dir = Path(metrics_dir)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    paths = metrics_dir / CONFIDENCE_METRICS, metrics_dir / CONFIDENCE_RELIABILITY
    auroc.to_csv(paths[0], index=False)
    reliability.to_csv(paths[1], index=False)
    return paths

