"""Fig. 3 of the paper: temporal smoothness (Eq. 2) and inconsistency of every model, and the ordering claim.

Eq. 2 (:func:`echo_utils.metrics.smoothness`) integrates the squared second derivative of a structure's area
curve; the inconsistency test (:func:`echo_utils.metrics.temporal_inconsistency`, Painchaud et al., IEEE TMI 2022,
as vitalab/vital implements it) flags the frames whose min-max scaled area departs from the mean of its two
neighbours by more than vital's per-attribute threshold. Here they are computed for every model, test sequence and
structure, with the dense reference as a control where the data have one (the smoothness of the true motion), and
compared along the paper's ordering 3D dense < 2D dense < 2D sparse. :func:`inconsistency_summary` counts, per
model and structure, the fraction of frames and of sequences that violate the threshold.
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
    "VITAL_ATTR_THRESHOLDS",
    "INCONSISTENCY_THRESHOLDS",
    "area_curves",
    "smoothness_table",
    "inconsistency_summary",
    "inconsistency_statements",
    "median_ordering",
    "ordering_statements",
    "ratio_statements",
    "even_odd_fit",
    "even_odd_table",
    "even_odd_summary",
    "even_odd_statements",
]

VITAL_ATTR_THRESHOLDS = {
    "lv_area": 1.60e-2,
    "lv_base_width": 9.69e-2,
    "lv_length": 2.62e-2,
    "lv_orientation": 2.29e-2,
    "myo_area": 3.21e-2,
    "epi_center_x": 4.56e-3,
    "epi_center_y": 1.10e-2,
}
"""vitalab/vital's thresholds on ``|d(t)|`` (``vital/data/camus/statistics/attr_thresholds.yaml``, added with
``vital/metrics/evaluate/attribute.py`` in commit 2e51ab6 "CAMUS temporal metrics"; "maximum tolerated difference
between values for a frame and values interpolated from its previous/next neighbors", determined on CAMUS by
Painchaud et al.). They apply to attributes min-max scaled with vital's dataset-wide bounds
(``image_attr_stats.yaml``), so they are fractions of the attribute's range over the dataset."""

INCONSISTENCY_THRESHOLDS = {
    "LV": VITAL_ATTR_THRESHOLDS["lv_area"],
    "MYO": VITAL_ATTR_THRESHOLDS["myo_area"],
    "EPI": VITAL_ATTR_THRESHOLDS["lv_area"],
    "LA": VITAL_ATTR_THRESHOLDS["lv_area"],
}
"""Per-structure thresholds on the scaled second difference (:func:`echo_utils.metrics.temporal_inconsistency`).
``LV`` and ``MYO`` are vital's ``lv_area`` (1.60e-2) and ``myo_area`` (3.21e-2). vital has no left-atrium or
epicardium (cavity + myocardium) area attribute: for ``LA`` and ``EPI`` we use ``lv_area``'s 1.60e-2 (our
choice). The LA, like the LV cavity, is a blood pool whose area follows one smooth fill/empty motion from ED to
ES, and 1.60e-2 is the stricter of vital's two area thresholds, so a model is not let off more lightly on the one
structure without a published value."""

_MODEL_RANK = {m: i for i, m in enumerate(dict.fromkeys([REFERENCE, *MODEL_NAMES]))}
"""Row order of the summaries: the reference (the control) first, then the models in book order. (``MODEL_NAMES``
also names the reference, last: enumerating ``[REFERENCE, *MODEL_NAMES]`` directly would rank it last.)"""


def area_curves(labels: np.ndarray, spacing=None, structures: Iterable[str] = ("LV", "MYO", "LA")) -> dict[str, np.ndarray]:
    """Area of each structure in every frame of ``labels`` ``(T, H, W)``: pixels, or mm^2 when ``spacing``
    ``(sy, sx)`` is given. Returns ``{structure: (T,)}``."""
    labels = np.asarray(labels)
    return {s: np.asarray(metrics.area_curve(labels, STRUCTURES[s], spacing), dtype=float) for s in structures}


def _sources(predictions, sequences: list, units: str, include_reference: bool):
    """The label maps a temporal table scores, ``{model: {seq.key: (T, H, W)}}`` with the dense references first
    (as ``reference``) when asked and present, and those references alone (``{seq.key: dense}``)."""
    if units not in ("px", "mm"):
        raise ValueError(f"units must be 'px' or 'mm', got {units!r}")
    dense = {s.key: s.dense for s in sequences if s.dense is not None}
    sources = dict(predictions)
    if include_reference and dense:
        sources = {REFERENCE: dense, **sources}
    return sources, dense


def _curves(sources, sequences: list, units: str, structures: tuple):
    """``(model, seq, structure, area curve)`` for every source's labels of ``sequences``, in that order: area in
    px, or mm^2 with ``units='mm'``."""
    for model, preds in sources.items():
        for seq in sequences:
            if seq.key in preds:
                for st, curve in area_curves(preds[seq.key], seq.spacing if units == "mm" else None,
                                             structures).items():
                    yield model, seq, st, curve


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
    Long table with columns ``model, patient, view, structure, smoothness, inconsistency`` (the fraction of the
    sequence's frames that violate the threshold, 0-1), ``frames`` (T), ``inconsistent_frames`` (their number)
    and ``threshold``; ``absent`` (the structure has zero area in every frame: its smoothness is NaN, since a model
    that never segments a structure would otherwise score the perfect Eq. 2 of 0); ``attrs['unit']``, ``attrs['bounds']`` (``{structure: (lo, hi)}``, area units) and
    ``attrs['bounds_source']`` (a phrase naming where the bounds come from).

    Notes
    -----
    vital scales each attribute with fixed dataset-wide bounds (``image_attr_stats.yaml``: the smallest and largest
    value of the attribute over the reference segmentations of CAMUS), not with each curve's own range, so a noisy
    curve cannot hide behind its own range. We transpose this to the run's data: the bounds are the smallest and
    largest area of the structure over the dense references of ``sequences``; without any dense reference, over
    their manual (ED/ES) labels; without those, over all the curves being scored. The thresholds are fractions of
    that range, so the unit of the area (px or mm^2) does not matter.
    """
    thresholds = {**INCONSISTENCY_THRESHOLDS, **(thresholds or {})}
    sequences = list(sequences)
    structures = tuple(structures)
    sources, dense = _sources(predictions, sequences, units, include_reference)
    curves = list(_curves(sources, sequences, units, structures))  # (model, seq, structure, curve)
    bounds, bounds_source = _inconsistency_bounds(sequences, dense, curves, units, structures)

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # < 4 frames: smoothness is NaN, counted by the caller
        for model, seq, s, curve in curves:
            ratio, flags = metrics.temporal_inconsistency(curve, threshold=thresholds[s], bounds=bounds[s],
                                                          return_frames=True)
            absent = bool(np.all(np.asarray(curve) == 0))  # never segmented: a flat zero curve is not "smooth"
            rows.append({
                "model": model, "patient": seq.patient, "view": seq.view, "structure": s,
                "smoothness": (float("nan") if absent
                               else float(metrics.smoothness(curve, normalize_time=units == "mm"))),
                "inconsistency": float(ratio), "frames": int(flags.size), "inconsistent_frames": int(flags.sum()),
                "threshold": float(thresholds[s]), "absent": absent,
            })  # fmt: skip
    out = pd.DataFrame(rows, columns=["model", "patient", "view", "structure", "smoothness", "inconsistency",
                                      "frames", "inconsistent_frames", "threshold", "absent"])
    out.attrs["unit"] = ("px^2/frame^3 (area in pixels, unit frame spacing)" if units == "px"
                         else "mm^4 (area in mm^2, time in [0, 1])")  # fmt: skip
    out.attrs["bounds"] = bounds
    out.attrs["bounds_source"] = bounds_source
    return out


def _inconsistency_bounds(sequences: list, dense: dict, curves: list, units: str, structures: tuple):
    """Dataset-wide min-max bounds ``{structure: (lo, hi)}`` for the inconsistency test, and where they come from
    (see :func:`smoothness_table`, Notes)."""
    if dense:
        pool, source = list(_curves({REFERENCE: dense}, sequences, units, structures)), "the dense references"
    else:
        manual = {s.key: np.stack([s.labels[k] for k in sorted(s.labels)]) for s in sequences if s.labels}
        if manual:
            pool, source = list(_curves({"manual": manual}, sequences, units, structures)), "the manual ED/ES labels"
        else:
            pool, source = curves, "the scored curves (no reference labels)"
    bounds = {}
    for s in structures:
        vals = [c[3] for c in pool if c[2] == s and len(c[3])]
        if not vals:
            vals = [c[3] for c in curves if c[2] == s and len(c[3])]
        if vals:
            bounds[s] = (float(min(v.min() for v in vals)), float(max(v.max() for v in vals)))
    return bounds, f"the smallest and largest area over {source} of the scored sequences"


def inconsistency_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per structure and model, how often the inconsistency test fails, from :func:`smoothness_table` output.

    Returns one row per ``(structure, model)`` (book order: structures as in :mod:`echo_utils.labels`, the
    reference first) with columns ``threshold``; ``sequences`` and ``inconsistent_sequences`` (those with at least
    one violating frame) and their ratio ``sequence_fraction``; ``frames`` (all frames of those sequences, end frames
    included, as vital counts them), ``inconsistent_frames`` and their ratio ``frame_fraction`` (pooled over the
    sequences, not a mean of per-sequence ratios). Fractions are in [0, 1].
    """
    need = {"model", "structure", "frames", "inconsistent_frames", "threshold"}
    if not need <= set(table.columns):
        raise ValueError(f"inconsistency_summary needs smoothness_table output with columns {sorted(need)}; "
                         f"missing {sorted(need - set(table.columns))}")
    t = table.assign(violates=table["inconsistent_frames"] > 0)
    g = t.groupby(["structure", "model"], sort=False)
    out = pd.DataFrame({
        "threshold": g["threshold"].first(),
        "sequences": g.size(),
        "inconsistent_sequences": g["violates"].sum().astype(int),
        "frames": g["frames"].sum().astype(int),
        "inconsistent_frames": g["inconsistent_frames"].sum().astype(int),
    })  # fmt: skip
    out["sequence_fraction"] = out["inconsistent_sequences"] / out["sequences"]
    out["frame_fraction"] = out["inconsistent_frames"] / out["frames"].where(out["frames"] > 0)
    out = out[["threshold", "frames", "inconsistent_frames", "frame_fraction", "sequences", "inconsistent_sequences",
               "sequence_fraction"]]
    rank = {s: i for i, s in enumerate(STRUCTURES)}
    order = _MODEL_RANK
    keys = sorted(out.index, key=lambda k: (rank.get(k[0], 99), order.get(k[1], 99)))
    return out.reindex(pd.MultiIndex.from_tuples(keys, names=out.index.names))


def inconsistency_statements(summary: pd.DataFrame, *, control: str = REFERENCE) -> list[str]:
    """Sentences from :func:`inconsistency_summary`: per structure, each model's fraction of violating frames and
    of sequences with at least one, beside the ``control`` (the dense reference: the true motion scored by the same
    test). When the control itself violates the threshold, a sentence says so: on those data the threshold flags
    true motion, and only a model's excess over the control is its own inconsistency."""
    out = []
    for st in [s for s in STRUCTURES if s in summary.index.get_level_values(0)]:
        m = summary.loc[st]
        parts = [f"{MODEL_NAMES.get(k, k)} {r.frame_fraction:.1%} of frames, {r.sequence_fraction:.0%} of sequences "
                 f"({int(r.inconsistent_sequences)}/{int(r.sequences)})" for k, r in m.iterrows()]
        line = f"{STRUCTURE_NAMES.get(st, st)} (threshold {m['threshold'].iloc[0]:.3g}): " + "; ".join(parts)
        if control in m.index:
            c = m.loc[control]
            above = [MODEL_NAMES.get(k, k) for k, r in m.iterrows() if k != control
                     and r.frame_fraction > c.frame_fraction]
            below = [MODEL_NAMES.get(k, k) for k, r in m.iterrows() if k != control
                     and not r.frame_fraction > c.frame_fraction]
            if above:
                line += f". Above the {control}'s frame fraction: {', '.join(above)}"
            if below:
                line += f". Not above it: {', '.join(below)}"
            if c.inconsistent_frames > 0:
                line += (f". The {control} itself violates the threshold in {c.frame_fraction:.1%} of frames: on these "
                         "data the threshold flags true motion, so only the excess over it is a model's inconsistency")
        out.append(line)
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
        chain = " < ".join(f"{MODEL_NAMES.get(m, m)} ({row[m]:.3g})" if np.isfinite(row[m])
                           else f"{MODEL_NAMES.get(m, m)} (never segmented: not ranked)" for m in models)
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


# ----------------------------------------------------------------------------------------------------------------
# the even/odd (period-2) component of an area curve: jitter or a temporal artefact?
# ----------------------------------------------------------------------------------------------------------------


def even_odd_fit(curve, degree: int = 3) -> tuple[float, np.ndarray]:
    """Fit ``a(t) = base(t) + c (-1)^t`` by least squares; returns ``(c, a - c (-1)^t)``.

    ``base`` is a polynomial of degree ``degree`` in t (the smooth motion over ED to ES; time scaled to [-1, 1]
    for conditioning), fitted jointly with ``c``. ``(-1)^t`` is the fastest pattern a frame sequence can hold, so a
    smooth curve has almost no component along it: ``c`` measures a period-2 alternation between even and odd
    frames, the signature of a network that treats them differently (a stride-2 time upsampling into its output
    stage, say), unlike frame-by-frame jitter, which spreads over all frequencies. Eq. 2 of the returned curve
    (:func:`echo_utils.metrics.smoothness`) is the roughness that remains once the alternation is removed.
    Curves shorter than ``degree + 3`` frames: ``(nan, curve)``.
    """
    a = np.asarray(curve, dtype=float).ravel()
    n = a.size
    if n < degree + 3:
        return float("nan"), a.copy()
    t = np.arange(n)
    alt = (-1.0) ** t
    x = np.linspace(-1.0, 1.0, n)
    design = np.column_stack([x**k for k in range(degree + 1)] + [alt])
    coef, *_ = np.linalg.lstsq(design, a, rcond=None)
    c = float(coef[-1])
    return c, a - c * alt


def even_odd_table(
    predictions: Mapping[str, Mapping[str, np.ndarray]],
    sequences: Iterable["EchoSequence"],
    *,
    units: str = "px",
    structures: Iterable[str] = ("LV", "MYO", "LA"),
    include_reference: bool = True,
    degree: int = 3,
) -> pd.DataFrame:
    """Per model, sequence and structure: Eq. 2, the even/odd amplitude and Eq. 2 after removing it.

    Columns ``model, patient, view, structure, smoothness`` (Eq. 2 as in :func:`smoothness_table`, same units),
    ``even_odd`` (``|c|`` of :func:`even_odd_fit`, in area units: px or mm^2), ``even_odd_percent`` (``|c|`` over
    the curve's mean area, %) and ``smoothness_without_even_odd`` (Eq. 2 of ``a - c (-1)^t``). The dense reference
    is a ``reference`` row where the data have one.
    """
    sequences = list(sequences)
    sources, _ = _sources(predictions, sequences, units, include_reference)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # < 4 frames: NaN
        for model, seq, st, curve in _curves(sources, sequences, units, tuple(structures)):
            c, rest = even_odd_fit(curve, degree)
            mean = float(np.mean(curve)) if len(curve) else float("nan")
            rows.append({
                "model": model, "patient": seq.patient, "view": seq.view, "structure": st,
                "smoothness": float(metrics.smoothness(curve, normalize_time=units == "mm")),
                "even_odd": abs(c), "even_odd_percent": 100 * abs(c) / mean if mean > 0 else float("nan"),
                "smoothness_without_even_odd": float(metrics.smoothness(rest, normalize_time=units == "mm")),
            })  # fmt: skip
    out = pd.DataFrame(rows, columns=["model", "patient", "view", "structure", "smoothness", "even_odd",
                                      "even_odd_percent", "smoothness_without_even_odd"])
    out.attrs["unit"] = ("Eq. 2 in px^2/frame^3, even/odd amplitude in px of area" if units == "px"
                         else "Eq. 2 in mm^4 (time in [0, 1]), even/odd amplitude in mm^2 of area")  # fmt: skip
    return out


def even_odd_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Medians over sequences of :func:`even_odd_table`: one row per (structure, model), the columns Eq. 2, Eq. 2
    without the even/odd component, and the amplitude (absolute and % of the mean area)."""
    cols = ["smoothness", "smoothness_without_even_odd", "even_odd", "even_odd_percent"]
    med = table.groupby(["structure", "model"], sort=False)[cols].median()
    rank = {s: i for i, s in enumerate(STRUCTURES)}
    order = _MODEL_RANK
    return med.loc[sorted(med.index, key=lambda k: (rank.get(k[0], 99), order.get(k[1], 99)))]


def even_odd_statements(table: pd.DataFrame, *, high: str = "2d_sparse", low: str = "3d_dense") -> list[str]:
    """Per structure: is ``low``'s median even/odd amplitude below ``high``'s, and how much of each model's median
    Eq. 2 is left once the even/odd component is removed?"""
    med = even_odd_summary(table)
    out = []
    for st in [s for s in STRUCTURES if s in med.index.get_level_values(0)]:
        m = med.loc[st]
        if not {high, low} <= set(m.index):
            continue
        a, b = m.loc[low, "even_odd"], m.loc[high, "even_odd"]
        verdict = "below" if a < b else "NOT below"
        parts = [f"{MODEL_NAMES.get(k, k)} {m.loc[k, 'smoothness']:.3g} -> {m.loc[k, 'smoothness_without_even_odd']:.3g}"
                 for k in (low, high)]
        out.append(f"{STRUCTURE_NAMES.get(st, st)}: {MODEL_NAMES.get(low, low)}'s even/odd amplitude {a:.3g} is "
                   f"{verdict} {MODEL_NAMES.get(high, high)}'s {b:.3g}; median Eq. 2 before -> after removing it: "
                   + "; ".join(parts))
    return out
