"""Area errors by frame position: is a model worse at the ends of a sequence than inside it?

A half sequence runs from ED (its first frame) to ES (its last frame), and Tables 1 and 2 read exactly those two
frames. A 3D network without temporal context past the ends (nnU-Net's zero padding, ``nnunet.time_padding:
none``) segments them from half a temporal window, unlike every interior frame; a 2D network sees one frame at a
time and has no such end effect, so it is the control. :func:`frame_position_errors` gives, per model and
sequence, the signed area error (prediction - truth) of a structure at the first frame, over the interior frames
(their mean) and at the last frame; :func:`frame_position_summary` averages it over sequences.

Truth: the dense reference of the sequence (``seq.dense``: exact on the synthetic cohort) where it exists, else
the manual labels (``seq.labels``, ED and ES only: the interior then has no truth and is left out).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import metrics
from ..labels import MODEL_NAMES, STRUCTURE_NAMES, STRUCTURES, ordered

if TYPE_CHECKING:  # pragma: no cover
    from ..data.camus import EchoSequence

__all__ = ["POSITIONS", "frame_position_errors", "frame_position_summary", "frame_position_statements"]

#: The frame positions, in sequence order.
POSITIONS = ("first", "interior", "last")


def _truth(seq: "EchoSequence") -> tuple[np.ndarray, np.ndarray]:
    """``(T, H, W)`` truth and ``(T,)`` bool: which frames have one."""
    if seq.dense is not None:
        return np.asarray(seq.dense), np.ones(seq.n_frames, bool)
    truth = np.zeros(np.asarray(seq.images).shape, np.uint8)
    known = np.zeros(seq.n_frames, bool)
    for t, lab in seq.labels.items():
        truth[t], known[t] = lab, True
    return truth, known


def frame_position_errors(
    predictions: Mapping[str, Mapping[str, np.ndarray]],
    sequences: Iterable["EchoSequence"],
    structure: str = "LV",
) -> pd.DataFrame:
    """One row per (model, sequence, position): the area error of ``structure`` at that frame position.

    ``predictions``: ``{model: {seq.key: (T, H, W) uint8}}`` (missing keys are skipped). Positions: ``first``
    (frame 0), ``interior`` (frames 1..T-2, averaged) and ``last`` (frame T-1). Columns: ``model``, ``patient``,
    ``view``, ``structure``, ``position``, ``frames`` (how many frames were averaged), ``truth_area`` (px, mean over
    those frames), ``error`` (prediction - truth, px, mean), ``abs_error`` (px, mean of ``|error|`` per frame) and
    ``relative_error`` (``error / truth_area`` in %). Areas are pixel counts (:func:`echo_utils.metrics.area_curve`).
    """
    if structure not in STRUCTURES:
        raise ValueError(f"unknown structure {structure!r}; expected one of {sorted(STRUCTURES)}")
    rows = []
    for seq in sequences:
        truth, known = _truth(seq)
        true_area = metrics.area_curve(truth, STRUCTURES[structure])
        n = seq.n_frames
        frames = {"first": np.array([0]), "interior": np.arange(1, n - 1), "last": np.array([n - 1])}
        for model in ordered(predictions):
            pred = predictions[model].get(seq.key)
            if pred is None:
                continue
            pred = np.asarray(pred)
            if pred.shape != truth.shape:
                raise ValueError(f"{model} prediction of {seq.key} has shape {pred.shape}, the sequence "
                                 f"{truth.shape}")
            err = metrics.area_curve(pred, STRUCTURES[structure]) - true_area
            for position, idx in frames.items():
                idx = idx[known[idx]]
                if not len(idx):
                    continue
                area = float(true_area[idx].mean())
                rows.append({"model": model, "patient": seq.patient, "view": seq.view, "structure": structure,
                             "position": position, "frames": int(len(idx)), "truth_area": area,
                             "error": float(err[idx].mean()), "abs_error": float(np.abs(err[idx]).mean()),
                             "relative_error": 100.0 * float(err[idx].mean()) / area if area > 0 else np.nan})
    return pd.DataFrame(rows, columns=["model", "patient", "view", "structure", "position", "frames", "truth_area",
                                       "error", "abs_error", "relative_error"])


def frame_position_summary(errors: pd.DataFrame) -> pd.DataFrame:
    """Means over sequences of :func:`frame_position_errors`: index (structure, model), columns (statistic,
    position) for ``error`` (signed, px), ``abs_error`` (px) and ``relative_error`` (%), plus ``sequences``."""
    if errors.empty:
        raise ValueError("no frame-position errors to summarise (no prediction matched a sequence)")
    g = errors.groupby(["structure", "model", "position"], sort=False)
    out = g[["error", "abs_error", "relative_error"]].mean().unstack("position")
    out = out.reindex(columns=[p for p in POSITIONS if p in errors["position"].unique()], level=1)
    out[("sequences", "")] = errors[errors.position == "first"].groupby(["structure", "model"]).size()
    models = ordered(errors["model"].unique())
    return out.reindex(pd.MultiIndex.from_tuples([(s, m) for s in errors["structure"].unique() for m in models
                                                  if (s, m) in out.index], names=["structure", "model"]))


def frame_position_statements(summary: pd.DataFrame, *, control: str = "2d_sparse") -> list[str]:
    """One sentence per (structure, model): mean |area error| at the first frame, the interior and the last frame,
    and the ends' excess over the interior (``mean(|first|, |last|) - |interior|``, px), next to the ``control``'s
    (a 2D model: no temporal context, so no end effect of its own)."""
    lines = []
    for (structure, model), row in summary.iterrows():
        a = row["abs_error"]
        if not {"first", "interior", "last"} <= set(a.index) or a.isna().any():
            continue
        excess = (a["first"] + a["last"]) / 2 - a["interior"]
        line = (f"{STRUCTURE_NAMES.get(structure, structure)}, {MODEL_NAMES.get(model, model)}: mean |area error| "
                f"{a['first']:.0f} px at the first frame, {a['interior']:.0f} px inside, {a['last']:.0f} px at the "
                f"last frame (signed: {row['error']['first']:+.0f} / {row['error']['interior']:+.0f} / "
                f"{row['error']['last']:+.0f}); the ends exceed the interior by {excess:+.0f} px")
        if model != control and (structure, control) in summary.index:
            c = summary.loc[(structure, control), "abs_error"]
            line += f" (control {MODEL_NAMES.get(control, control)}: {(c['first'] + c['last']) / 2 - c['interior']:+.0f} px)"
        lines.append(line)
    return lines
