"""Fig. 3 of the paper: temporal smoothness (Eq. 2) and inconsistency of every model, and the ordering claim.

Eq. 2 (:func:`echo_utils.metrics.smoothness`) integrates the squared second derivative of a structure's area
curve; the inconsistency ratio (:func:`echo_utils.metrics.temporal_inconsistency`, Painchaud et al., IEEE TMI 2022)
counts frames whose normalised area bends past a threshold. Here they are computed for every model, test sequence
and structure, with the dense reference as a control where the data have one (the smoothness of the true motion),
and compared along the paper's ordering 3D dense < 2D dense < 2D sparse.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import metrics
from ..labels import MODEL_NAMES, REFERENCE, STRUCTURE_NAMES, STRUCTURES
from .paper import FIG3_ORDER, PAPER_FIG3_MEDIANS

if TYPE_CHECKING:  # pragma: no cover
    from ..data.camus import EchoSequence

__all__ = [
    "INCONSISTENCY_THRESHOLDS",
    "area_curves",
    "smoothness_table",
    "median_ordering",
    "ordering_statements",
    "ratio_statements",
]

INCONSISTENCY_THRESHOLDS = {"LV": 0.2, "MYO": 0.3, "EPI": 0.2, "LA": 0.2}
"""Thresholds on the normalised second difference (see :func:`echo_utils.metrics.temporal_inconsistency`): 0.2 for
the LV area and 0.3 for the myocardium area are the values of vitalab/vital and castor (Painchaud et al.); they
publish none for the LA area, for which we reuse the LV's 0.2 (our choice)."""


def area_curves(labels: np.ndarray, spacing=None, structures: Iterable[str] = ("LV", "MYO", "LA")) -> dict[str, np.ndarray]:
    """Area of each structure in every frame of ``labels`` ``(T, H, W)``: pixels, or mm^2 when ``spacing``
    ``(sy, sx)`` is given. Returns ``{structure: (T,)}``."""
    labels = np.asarray(labels)
    return {s: np.asarray(metrics.area_curve(labels, STRUCTURES[s], spacing), dtype=float) for s in structures}


def smoothness_table(
    predictions: Mapping[str, Mapping[str, np.ndarray]],
    sequences: Iterable["EchoSequence"],
    *,
    units: str = "px",
    structures: Iterable[str] = ("LV", "MYO", "LA"),
    include_reference: bool = True,
    thresholds: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Smoothness (Eq. 2) and temporal-inconsistency ratio of every model, sequence and structure (Fig. 3).

    Parameters
    ----------
    predictions : ``{model: {seq.key: (T, H, W)}}``.
    sequences : test sequences; those with a dense reference (``seq.dense``) also give a ``reference`` row.
    units : ``"px"``: area in pixels, unit frame spacing (the authors' choice; values grow with the image size).
        ``"mm"``: area in mm^2, time normalised to [0, 1] (result in mm^4; comparable across image sizes and
        frame counts). Eq. 2 is :func:`echo_utils.metrics.smoothness` in both cases.
    thresholds : per-structure inconsistency thresholds (default :data:`INCONSISTENCY_THRESHOLDS`).

    Returns
    -------
    Long table with columns ``model, patient, view, structure, smoothness, inconsistency``; ``attrs['unit']``.

    Notes
    -----
    The inconsistency ratio normalises every curve with dataset-wide bounds, like Painchaud et al.'s fixed
    attribute bounds: the smallest and largest area of the structure over all dense references of ``sequences``
    (over all curves being scored when none has a dense reference). A noisy curve cannot hide behind its own range.
    """
    if units not in ("px", "mm"):
        raise ValueError(f"units must be 'px' or 'mm', got {units!r}")
    thresholds = {**INCONSISTENCY_THRESHOLDS, **(thresholds or {})}
    sequences = list(sequences)
    structures = tuple(structures)
    sources: dict[str, Mapping[str, np.ndarray]] = dict(predictions)
    dense = {s.key: s.dense for s in sequences if s.dense is not None}
    if include_reference and dense:
        sources = {REFERENCE: dense, **sources}

    def curves_of(labels, seq):
        return area_curves(labels, seq.spacing if units == "mm" else None, structures)

    curves = []  # (model, seq, structure, curve)
    for model, preds in sources.items():
        for seq in sequences:
            if seq.key in preds:
                curves += [(model, seq, s, c) for s, c in curves_of(preds[seq.key], seq).items()]
    if dense:  # normalisation bounds from the dense references, whether or not they are reported
        pool = [(REFERENCE, seq, s, c) for seq in sequences if seq.dense is not None
                for s, c in curves_of(seq.dense, seq).items()]  # fmt: skip
    else:
        pool = curves
    bounds = {}
    for s in structures:
        vals = [c[3] for c in pool if c[2] == s]
        if vals:
            bounds[s] = (min(v.min() for v in vals), max(v.max() for v in vals))

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # < 4 frames: smoothness is NaN, counted by the caller
        for model, seq, s, curve in curves:
            rows.append({
                "model": model, "patient": seq.patient, "view": seq.view, "structure": s,
                "smoothness": float(metrics.smoothness(curve, normalize_time=units == "mm")),
                "inconsistency": float(metrics.temporal_inconsistency(curve, threshold=thresholds[s], bounds=bounds[s])),
            })  # fmt: skip
    out = pd.DataFrame(rows, columns=["model", "patient", "view", "structure", "smoothness", "inconsistency"])
    out.attrs["unit"] = ("px^2/frame^3 (area in pixels, unit frame spacing)" if units == "px"
                         else "mm^4 (area in mm^2, time in [0, 1])")  # fmt: skip
    return out


def median_ordering(
    table: pd.DataFrame, order: Iterable[str] = FIG3_ORDER, value: str = "smoothness", by: str = "structure"
) -> pd.DataFrame:
    """Does the median of ``value`` increase along ``order`` (default the paper's 3D dense < 2D dense < 2D sparse)?

    Returns one row per ``by`` group with the median of every model in ``order`` and a boolean column ``holds``
    (False when fewer than two of the models are present). Models absent from the table are left out.
    """
    order = [m for m in order if m in set(table["model"])]
    med = table.groupby([by, "model"])[value].median().unstack("model")
    med = med[[m for m in order if m in med.columns]]
    holds = pd.Series(
        [bool(np.all(np.diff(med.loc[g].to_numpy(float)) > 0)) if len(order) > 1 else False for g in med.index],
        index=med.index,
    )
    out = med.copy()
    out["holds"] = holds
    rank = {s: i for i, s in enumerate(STRUCTURES)}
    return out.loc[sorted(out.index, key=lambda s: rank.get(s, len(rank)))]


def ordering_statements(ordering: pd.DataFrame) -> list[str]:
    """Sentences from :func:`median_ordering` output, e.g. "LV cavity: the ordering 3D dense (1.2e+04) < 2D dense
    (3e+04) < 2D sparse (5e+04) holds"."""
    models = [c for c in ordering.columns if c != "holds"]
    out = []
    for s, row in ordering.iterrows():
        chain = " < ".join(f"{MODEL_NAMES.get(m, m)} ({row[m]:.3g})" for m in models)
        verdict = "holds" if row["holds"] else "does NOT hold"
        out.append(f"{STRUCTURE_NAMES.get(s, s)}: the ordering {chain} {verdict}")
    return out


def ratio_statements(table: pd.DataFrame, *, high: str = "2d_sparse", low: str = "3d_dense") -> list[str]:
    """Per structure, the ratio of the median smoothness of ``high`` to that of ``low`` in this run, beside the same
    ratio of the paper's Fig. 3 medians (:data:`echo_utils.report.paper.PAPER_FIG3_MEDIANS`). Ratios do not depend
    on the image size, unlike the values themselves."""
    med = table.groupby(["structure", "model"])["smoothness"].median().unstack()
    if not {high, low} <= set(med.columns):
        return []
    out = []
    for s in [s for s in STRUCTURES if s in med.index]:
        r = med.loc[s, high] / med.loc[s, low] if med.loc[s, low] > 0 else np.inf
        line = f"{STRUCTURE_NAMES.get(s, s)}: {MODEL_NAMES[high]} / {MODEL_NAMES[low]} median ratio {r:.3g} here"
        if s in PAPER_FIG3_MEDIANS.columns:
            p = PAPER_FIG3_MEDIANS.loc[high, s] / PAPER_FIG3_MEDIANS.loc[low, s]
            line += f", {p:.3g} in the paper"
        out.append(line)
    return out
