"""Assemble the paper's evaluation (Tables 1-2, Figs. 2-4) from predictions, references and metrics.

This module holds no metric of its own except the temporal-inconsistency ratio; the per-mask metrics (Dice, HD,
MAD), area curves, smoothness (Eq. 2), Simpson biplane volumes and agreement statistics come from
:mod:`echo_utils.metrics`. What lives here is the bookkeeping that turns them into the paper's tables and figures:
which frames, which structures, which aggregation, and the paper's published numbers to compare against.

Data shapes (DESIGN.md): label maps uint8 ``(T, H, W)``; 0 background, 1 LV cavity, 2 LV myocardium, 3 left atrium;
spacing ``(sy, sx)`` in mm per pixel.

Structures
----------
``LV``  LV cavity (label 1).
``MYO`` LV myocardium ring alone (label 2).
``EPI`` LV "epicardium": cavity and myocardium together (labels 1 and 2). This is the CAMUS/CLAS convention that the
        paper's "LV myocardium" columns of Table 1 use (paper-facts.md).
``LA``  left atrium (label 3).

Tables are long-form :class:`pandas.DataFrame` objects; ``summarise_*`` functions aggregate them and
``format_*`` functions render mean ± sd strings with the best value marked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import metrics

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from .camus import EchoSequence

__all__ = [
    "MODELS",
    "MODEL_NAMES",
    "MODEL_COLORS",
    "STRUCTURES",
    "STRUCTURE_NAMES",
    "PAPER_TABLE1",
    "PAPER_TABLE2",
    "PAPER_FIG2_MEDIANS",
    "PAPER_FIG3_MEDIANS",
    "structure_mask",
    "score_ed_es",
    "segmentation_scores",
    "summarise_table1",
    "format_mean_sd",
    "style_best",
    "lv_indices",
    "table2",
    "area_curves",
    "INCONSISTENCY_THRESHOLDS",
    "smoothness_table",
    "median_ordering",
    "compare_with_paper",
    "smoothness_figure",
    "inconsistency_figure",
    "bland_altman_figure",
    "area_curve_figure",
    "overlay_figure",
    "load_predictions",
    "table1_side_by_side",
    "table2_side_by_side",
    "FIG2_KINDS",
    "fig2_videos",
    "fig2_figure",
    "direction_statements",
    "ordering_statements",
]

MODELS = ("2d_sparse", "2d_dense", "3d_dense", "3d_sparse")
MODEL_NAMES = {
    "2d_sparse": "2D sparse",
    "2d_dense": "2D dense",
    "3d_dense": "3D dense",
    "3d_sparse": "3D sparse",
    "reference": "reference",
}
MODEL_COLORS = {
    "2d_sparse": "#e377c2",
    "2d_dense": "#ff7f0e",
    "3d_dense": "#9467bd",
    "3d_sparse": "#8c564b",
    "reference": "#2ca02c",
}
STRUCTURES: dict[str, tuple[int, ...]] = metrics.STRUCTURES
STRUCTURE_NAMES = {
    "LV": "LV cavity",
    "MYO": "LV myocardium (ring)",
    "EPI": "LV epicardium (cavity + myocardium)",
    "LA": "left atrium",
}
METRICS = ("dice", "hd", "mad")
METRIC_NAMES = {"dice": "Dice", "hd": "HD (mm)", "mad": "MAD (mm)"}
HIGHER_IS_BETTER = {"dice": True, "hd": False, "mad": False, "corr": True, "bias": None, "mae": False}

# --------------------------------------------------------------------------------------------------------------
# The paper's published numbers (seed/paper.md, Tables 1-2; Figs. 2-3 medians read off the figures,
# reference/paper-facts.md). NaN where our text copy of the paper does not give the value.


def _paper_table1() -> pd.DataFrame:
    nan = math.nan
    rows = {
        # model: ED (LV, EPI, LA) x (dice, hd, mad), then ES (same)
        "intra-observer": [0.945, 4.6, 1.4, 0.957, 5.0, 1.7, nan, nan, nan,
                           0.930, 4.5, 1.3, 0.951, 5.0, 1.7, nan, nan, nan],
        "CLAS": [0.947, 4.6, 1.4, 0.961, 4.8, 1.5, 0.902, 5.2, 1.9,
                 0.929, 4.6, 1.4, 0.955, 4.9, 1.6, 0.927, 4.8, 1.8],
        "2d_sparse": [0.955, 4.1, 1.2, 0.965, 4.4, 1.4, 0.906, 4.9, 1.9] + [nan] * 9,
        "2d_dense": [0.950, 4.2, 1.3, 0.963, 4.3, 1.4, 0.902, 5.0, 2.0] + [nan] * 9,
        "3d_dense": [0.952, 4.2, 1.3, 0.961, 4.6, 1.5, 0.899, 5.2, 2.0,
                     0.939, 4.0, 1.2] + [nan] * 6,
    }  # fmt: skip
    cols = pd.MultiIndex.from_product([("ED", "ES"), ("LV", "EPI", "LA"), METRICS], names=["phase", "structure", "metric"])
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols).rename_axis("model")


def _paper_table2() -> pd.DataFrame:
    rows = {
        "intra-observer": [0.978, -2.8, 6.5, 0.981, -0.1, 4.5, 0.896, -2.3, 4.7],
        "CLAS": [0.958, -0.7, 7.7, 0.979, -0.0, 4.4, 0.926, -0.1, 4.0],
        "2d_sparse": [0.972, 0.0, 6.0, 0.98, -0.6, 4.8, 0.827, 1.3, 5.0],
        "2d_dense": [0.972, 0.4, 5.7, 0.986, -0.3, 4.2, 0.841, 1.3, 4.6],
        "3d_dense": [0.978, -1.4, 4.8, 0.986, -0.1, 4.0, 0.859, -0.1, 4.6],
    }
    cols = pd.MultiIndex.from_product([("EDV", "ESV", "EF"), ("corr", "bias", "mae")], names=["index", "stat"])
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols).rename_axis("model")


PAPER_TABLE1 = _paper_table1()
"""Table 1 of the paper: mean Dice, HD (mm) and MAD (mm) on the 50 CAMUS test patients. The "LV myocardium" columns
follow the epicardium convention, hence the structure name ``EPI``. The ES rows of the three nnU-Nets are not
legible in our text copy of the paper except the 3D model's LV cavity (paper-facts.md); they are NaN."""

PAPER_TABLE2 = _paper_table2()
"""Table 2 of the paper: agreement of EDV (mL), ESV (mL) and EF (%) with the reference on the CAMUS test set."""

PAPER_FIG2_MEDIANS = pd.DataFrame(
    {
        "LV dice": [0.958, 0.962, 0.943, 0.942],
        "MYO dice": [0.913, 0.922, 0.880, 0.870],
        "LV mad": [2.7, 2.5, 4.0, 4.0],
        "MYO mad": [2.8, 2.4, 3.8, 4.0],
        "LV hd": [8.5, 8.3, 13.5, 13.0],
        "MYO hd": [10.0, 9.5, 14.5, 15.0],
    },
    index=pd.Index(["2d_sparse", "bidirectional", "forward", "backward"], name="method"),
)
"""Medians read off the paper's Fig. 2 (94 TED sequences, ED to ES; distances in pixels at 512x512)."""

PAPER_FIG3_MEDIANS = pd.DataFrame(
    {"LV": [7e6, 4e6, 2.5e5], "MYO": [1.1e7, 4e6, 8e4], "LA": [6.5e6, 2.5e6, 8e4]},
    index=pd.Index(["2d_sparse", "2d_dense", "3d_dense"], name="model"),
)
"""Medians read off the paper's Fig. 3 (smoothness, Eq. 2; area in pixels at 512x512, unit frame spacing)."""


# --------------------------------------------------------------------------------------------------------------
# Table 1: Dice, HD and MAD at ED and ES


def structure_mask(labels: np.ndarray, structure: str) -> np.ndarray:
    """Boolean mask of a structure (``LV``, ``MYO``, ``EPI`` or ``LA``) in a label map of any shape."""
    try:
        values = STRUCTURES[structure]
    except KeyError:
        raise ValueError(f"unknown structure {structure!r}; expected one of {sorted(STRUCTURES)}") from None
    return np.isin(labels, values)


def score_ed_es(pred: np.ndarray, seq: "EchoSequence") -> pd.DataFrame:
    """Dice, HD (mm) and MAD (mm) of a predicted sequence against the manual labels at ED and ES.

    Parameters
    ----------
    pred : uint8 ``(T, H, W)`` prediction aligned with ``seq.images``.
    seq : the sequence, whose ``labels`` hold the ED and ES references and ``spacing`` the pixel size in mm.

    Returns
    -------
    One row per (phase, structure) with columns ``phase, structure, dice, hd, mad``; the structures are ``LV``,
    ``MYO`` (ring), ``EPI`` (cavity + myocardium) and ``LA``. The scores are those of
    :func:`echo_utils.metrics.score_sequence`, including its empty-mask rule (HD and MAD are NaN when exactly one
    of the two masks is empty).
    """
    import warnings

    from . import metrics

    pred = np.asarray(pred)
    if pred.shape != seq.images.shape:
        raise ValueError(f"{seq.key}: prediction shape {pred.shape} != sequence shape {seq.images.shape}")
    for phase, frame in (("ED", seq.ed), ("ES", seq.es)):
        if frame not in seq.labels:
            raise ValueError(f"{seq.key}: no manual label at {phase} (frame {frame})")
    ref = np.stack([seq.labels[seq.ed], seq.labels[seq.es]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.EmptyMaskWarning)
        df = metrics.score_sequence(pred[[seq.ed, seq.es]], ref, seq.spacing, myo="both")
    df.insert(0, "phase", df.pop("frame").map({0: "ED", 1: "ES"}))
    return df[["phase", "structure", "dice", "hd", "mad"]]


def segmentation_scores(
    predictions: Mapping[str, Mapping[str, np.ndarray]], sequences: Iterable["EchoSequence"]
) -> pd.DataFrame:
    """Table 1's raw scores: every model, test sequence, phase and structure.

    Parameters
    ----------
    predictions : ``{model: {seq.key: (T, H, W) uint8}}``; a sequence missing for a model is skipped.
    sequences : the test sequences with their manual ED/ES labels.

    Returns
    -------
    Long table with columns ``model, patient, view, phase, structure, dice, hd, mad`` (HD, MAD in mm).
    """
    sequences = list(sequences)
    parts = []
    for model, preds in predictions.items():
        for seq in sequences:
            if seq.key not in preds:
                continue
            df = score_ed_es(preds[seq.key], seq)
            df.insert(0, "view", seq.view)
            df.insert(0, "patient", seq.patient)
            df.insert(0, "model", model)
            parts.append(df)
    if not parts:
        raise ValueError("no prediction matches any test sequence")
    return pd.concat(parts, ignore_index=True)


def _ordered(models: Iterable[str]) -> list[str]:
    order = {m: i for i, m in enumerate(("intra-observer", "CLAS", *MODELS, "reference"))}
    return sorted(models, key=lambda m: order.get(m, len(order)))


def summarise_table1(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean and sd over test sequences of each (phase, structure, metric), one row per model.

    Returns ``(mean, sd)``, both with columns ``MultiIndex(phase, structure, metric)``. NaN distances (empty masks)
    are left out of the mean; :func:`segmentation_scores` documents when they occur.
    """
    long = scores.melt(
        id_vars=["model", "patient", "view", "phase", "structure"], value_vars=list(METRICS), var_name="metric"
    )
    g = long.groupby(["model", "phase", "structure", "metric"], sort=False)["value"]
    mean = g.mean().unstack(["phase", "structure", "metric"])
    sd = g.std(ddof=1).unstack(["phase", "structure", "metric"])
    models = _ordered(mean.index)
    cols = _sorted_columns(mean.columns)
    return mean.loc[models, cols], sd.loc[models, cols]


def _sorted_columns(cols: pd.MultiIndex) -> pd.MultiIndex:
    rank = {v: i for i, v in enumerate(("ED", "ES", "LV", "MYO", "EPI", "LA", *METRICS, "EDV", "ESV", "EF"))}
    rank.update({"corr": 100, "bias": 101, "mae": 102})
    return pd.MultiIndex.from_tuples(sorted(cols, key=lambda c: tuple(rank.get(x, 999) for x in c)), names=cols.names)


def _best_mask(mean: pd.DataFrame, exclude: Iterable[str] = ("intra-observer",)) -> pd.DataFrame:
    """True where a value is the best of its column (higher Dice/corr, lower HD/MAD/MAE, |bias| closest to 0)."""
    best = pd.DataFrame(False, index=mean.index, columns=mean.columns)
    rows = [m for m in mean.index if m not in set(exclude)]
    for col in mean.columns:
        metric = col[-1] if isinstance(col, tuple) else col
        vals = mean.loc[rows, col].astype(float)
        if vals.isna().all():
            continue
        hib = HIGHER_IS_BETTER.get(metric, True)
        if hib is None:
            target = vals.abs().min()
            hits = vals.abs() == target
        else:
            target = vals.max() if hib else vals.min()
            hits = vals == target
        best.loc[hits[hits].index, col] = True
    return best


def format_mean_sd(
    mean: pd.DataFrame, sd: pd.DataFrame | None = None, digits: Mapping[str, int] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Render ``mean ± sd`` strings and the mask of best values (see :func:`style_best`).

    ``digits`` maps the metric (last column level) to decimals; default 3 for Dice and correlations, 1 otherwise.
    Missing values render as an en dash.
    """
    digits = {"dice": 3, "corr": 3, **(digits or {})}
    out = pd.DataFrame("", index=mean.index, columns=mean.columns, dtype=object)
    for col in mean.columns:
        metric = col[-1] if isinstance(col, tuple) else col
        d = digits.get(metric, 1)
        for row in mean.index:
            m = mean.at[row, col]
            s = sd.at[row, col] if sd is not None and row in sd.index and col in sd.columns else math.nan
            if pd.isna(m):
                out.at[row, col] = "–"
            elif pd.isna(s):
                out.at[row, col] = f"{m:.{d}f}"
            else:
                out.at[row, col] = f"{m:.{d}f} ± {s:.{d}f}"
    return out, _best_mask(mean)


def style_best(text: pd.DataFrame, best: pd.DataFrame, caption: str | None = None):
    """A pandas Styler that shows ``text`` with the ``best`` cells in bold (HTML in the notebook and the book)."""
    styler = text.rename(index=lambda m: MODEL_NAMES.get(m, m)).style
    best = best.rename(index=lambda m: MODEL_NAMES.get(m, m))
    styler = styler.apply(lambda col: ["font-weight: bold" if b else "" for b in best[col.name]], axis=0)
    if caption:
        styler = styler.set_caption(caption)
    return styler


# --------------------------------------------------------------------------------------------------------------
# Table 2: EDV, ESV and EF (Simpson biplane)


def lv_indices(
    sequences: Iterable["EchoSequence"], labels_of: Callable[["EchoSequence"], np.ndarray | Mapping[int, np.ndarray]]
) -> pd.DataFrame:
    """EDV (mL), ESV (mL) and EF (%) of each patient with both a 2CH and a 4CH sequence.

    Parameters
    ----------
    sequences : sequences of one split; a patient needs both views.
    labels_of : returns the label maps of a sequence, indexable by frame: a ``(T, H, W)`` prediction, or the
        manual labels ``seq.labels`` (``{frame: (H, W)}``). It may return ``None`` to skip a sequence.

    Returns
    -------
    DataFrame indexed by patient with columns ``EDV, ESV, EF``. The LV cavity (label 1) of each view at its own ED
    and ES frames enters :func:`echo_utils.metrics.lv_volume_biplane` (method of disks, 20 disks). A volume that
    cannot be computed (e.g. an empty predicted cavity) is NaN, and the reason is listed in ``attrs['failed']``.
    """
    from . import metrics

    by_patient: dict[str, dict[str, EchoSequence]] = {}
    for seq in sequences:
        by_patient.setdefault(seq.patient, {})[seq.view] = seq
    rows, failed = {}, []
    for patient, views in sorted(by_patient.items()):
        if not {"2CH", "4CH"} <= set(views):
            continue
        s2, s4 = views["2CH"], views["4CH"]
        l2, l4 = labels_of(s2), labels_of(s4)
        if l2 is None or l4 is None:
            continue
        vols = {}
        for phase, attr in (("EDV", "ed"), ("ESV", "es")):
            m2 = np.asarray(l2[getattr(s2, attr)]) == 1
            m4 = np.asarray(l4[getattr(s4, attr)]) == 1
            try:
                vols[phase] = float(metrics.lv_volume_biplane(m2, m4, s2.spacing, s4.spacing))
            except ValueError as exc:  # e.g. an empty cavity: no volume, counted and reported by the caller
                vols[phase] = math.nan
                failed.append(f"{patient} {phase}: {exc}")
        vols["EF"] = (
            float(metrics.ejection_fraction(vols["EDV"], vols["ESV"]))
            if np.isfinite(vols["EDV"]) and np.isfinite(vols["ESV"]) else math.nan
        )
        rows[patient] = vols
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["EDV", "ESV", "EF"]).rename_axis("patient")
    out.attrs["failed"] = failed
    return out


def table2(auto: Mapping[str, pd.DataFrame], reference: pd.DataFrame) -> pd.DataFrame:
    """Correlation, bias (auto - reference) and MAE of EDV, ESV and EF for each model.

    ``auto`` maps model -> :func:`lv_indices` table; patients are matched by index. Returns one row per model with
    columns ``MultiIndex(index, stat)`` and a column ``n`` (patients compared).
    """
    from . import metrics

    rows, ns = {}, {}
    for model, df in auto.items():
        common = df.index.intersection(reference.index)
        row = {}
        for q in ("EDV", "ESV", "EF"):
            a = df.loc[common, q].to_numpy(float)
            r = reference.loc[common, q].to_numpy(float)
            ok = np.isfinite(a) & np.isfinite(r)
            stats = metrics.agreement(a[ok], r[ok]) if ok.sum() >= 2 else {"corr": np.nan, "bias": np.nan, "mae": np.nan}
            for k in ("corr", "bias", "mae"):
                row[(q, k)] = float(stats[k])
        rows[model] = row
        ns[model] = len(common)
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.columns = pd.MultiIndex.from_tuples(out.columns, names=["index", "stat"])
    out = out.loc[_ordered(out.index)]
    out[("n", "")] = pd.Series(ns)
    return out.rename_axis("model")


# --------------------------------------------------------------------------------------------------------------
# Fig. 3: smoothness (Eq. 2) and temporal inconsistency


INCONSISTENCY_THRESHOLDS = {"LV": 0.2, "MYO": 0.3, "EPI": 0.2, "LA": 0.2}
"""Thresholds on the normalised second difference (see :func:`echo_utils.metrics.temporal_inconsistency`): 0.2 for
the LV area and 0.3 for the myocardium area are the values of vitalab/vital and castor (Painchaud et al.); they
publish none for the LA area, for which we reuse the LV's 0.2 (our choice)."""


def area_curves(labels: np.ndarray, spacing=None, structures: Iterable[str] = ("LV", "MYO", "LA")) -> dict[str, np.ndarray]:
    """Area of each structure in every frame: pixels, or mm^2 when ``spacing`` is given. ``{structure: (T,)}``."""
    from . import metrics

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
    Long table with columns ``model, patient, view, structure, smoothness, inconsistency``.

    Notes
    -----
    The inconsistency ratio (:func:`echo_utils.metrics.temporal_inconsistency`) normalises every curve with
    dataset-wide bounds, like Painchaud et al.'s fixed attribute bounds: the smallest and largest area of the
    structure over all dense references of ``sequences`` (over all curves being scored when none has a dense
    reference). A noisy curve therefore cannot hide behind its own range.
    """
    import warnings

    from . import metrics

    if units not in ("px", "mm"):
        raise ValueError(f"units must be 'px' or 'mm', got {units!r}")
    thresholds = {**INCONSISTENCY_THRESHOLDS, **(thresholds or {})}
    sequences = list(sequences)
    structures = tuple(structures)
    sources: dict[str, Mapping[str, np.ndarray]] = dict(predictions)
    dense = {s.key: s.dense for s in sequences if s.dense is not None}
    if include_reference and dense:
        sources = {"reference": dense, **sources}

    def curves_of(labels, seq):
        return area_curves(labels, seq.spacing if units == "mm" else None, structures)

    curves = []  # (model, seq, structure, curve)
    for model, preds in sources.items():
        for seq in sequences:
            if seq.key in preds:
                curves += [(model, seq, s, c) for s, c in curves_of(preds[seq.key], seq).items()]
    if dense:  # normalisation bounds from the dense references, whether or not they are reported
        pool = [("reference", seq, s, c) for seq in sequences if seq.dense is not None
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
            rows.append(
                {
                    "model": model,
                    "patient": seq.patient,
                    "view": seq.view,
                    "structure": s,
                    "smoothness": float(metrics.smoothness(curve, normalize_time=units == "mm")),
                    "inconsistency": float(metrics.temporal_inconsistency(curve, threshold=thresholds[s], bounds=bounds[s])),
                }
            )
    out = pd.DataFrame(rows)
    out.attrs["unit"] = "px^2/frame^3 (area in pixels, unit frame spacing)" if units == "px" else "mm^4 (area in mm^2, time in [0, 1])"
    return out


def median_ordering(
    table: pd.DataFrame, order: Iterable[str], value: str = "smoothness", by: str = "structure"
) -> pd.DataFrame:
    """Does the median of ``value`` increase along ``order`` (e.g. 3D dense < 2D dense < 2D sparse)?

    Returns one row per ``by`` group with the median of every model in ``order`` and a boolean column ``holds``.
    Models absent from the table are left out of the comparison.
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


def compare_with_paper(ours: pd.Series | float, paper: pd.Series | float, *, higher_is_better: bool) -> str:
    """One short sentence comparing a value of ours with the paper's (used in notebook 05's captions)."""
    ours, paper = float(ours), float(paper)
    if not (np.isfinite(ours) and np.isfinite(paper)):
        return "not comparable (a value is missing)"
    better = ours > paper if higher_is_better else ours < paper
    rel = "better than" if better else ("equal to" if ours == paper else "worse than")
    return f"ours {ours:.3g} is {rel} the paper's {paper:.3g}"


# --------------------------------------------------------------------------------------------------------------
# Figures (plotly)


def smoothness_figure(table: pd.DataFrame, *, value: str = "smoothness", log: bool = True, title: str, y_title: str):
    """Box plots of ``value`` per structure (x) and model (colour): the layout of the paper's Fig. 3."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for model in _ordered(table["model"].unique()):
        sub = table[table["model"] == model]
        fig.add_trace(
            go.Box(
                x=sub["structure"].map(lambda s: STRUCTURE_NAMES.get(s, s)),
                y=sub[value],
                name=MODEL_NAMES.get(model, model),
                marker_color=MODEL_COLORS.get(model),
                boxpoints="all",
                jitter=0.3,
                pointpos=0,
                hovertext=sub["patient"] + " " + sub["view"],
            )
        )
    fig.update_layout(boxmode="group", title=title, xaxis_title="structure", yaxis_title=y_title, height=450)
    if log:
        fig.update_yaxes(type="log")
    return fig


def inconsistency_figure(table: pd.DataFrame, *, title: str):
    """Mean temporal-inconsistency ratio (fraction of frames) per structure and model, as grouped bars."""
    import plotly.graph_objects as go

    g = table.groupby(["model", "structure"])["inconsistency"].agg(["mean", "std"]).reset_index()
    fig = go.Figure()
    for model in _ordered(g["model"].unique()):
        sub = g[g["model"] == model]
        fig.add_trace(
            go.Bar(
                x=sub["structure"].map(lambda s: STRUCTURE_NAMES.get(s, s)),
                y=sub["mean"],
                error_y=dict(type="data", array=sub["std"].fillna(0)),
                name=MODEL_NAMES.get(model, model),
                marker_color=MODEL_COLORS.get(model),
            )
        )
    fig.update_layout(
        barmode="group", title=title, xaxis_title="structure",
        yaxis_title="inconsistent frames (fraction, 0-1)", height=420,
    )  # fmt: skip
    return fig


def bland_altman_figure(auto: Mapping[str, pd.Series], reference: pd.Series, *, title: str, unit: str):
    """Bland-Altman plot: difference (auto - reference) against the mean, one series per model (patients present in
    both), each with its bias and 95% limits of agreement drawn by :func:`echo_utils.plots.bland_altman`."""
    from .plots import bland_altman

    fig = None
    for model in _ordered(auto):
        common = auto[model].index.intersection(reference.index)
        fig = bland_altman(auto[model].loc[common].to_numpy(), reference.loc[common].to_numpy(), title=title,
                           unit=unit, name=MODEL_NAMES.get(model, model), color=MODEL_COLORS.get(model),
                           labels=list(common), fig=fig, annotate=False)
    if fig is None:  # no model to show: an empty figure with the same title and axes
        fig = bland_altman([], [], title=title, unit=unit)
    return fig


def area_curve_figure(
    seq: "EchoSequence",
    predictions: Mapping[str, np.ndarray],
    *,
    structures: Iterable[str] = ("LV", "MYO", "LA"),
    title: str,
):
    """Area curves (mm^2 against frame) of one sequence for every model and the reference: Fig. 4, top row.

    The reference is the dense truth when the sequence has one, else only the manual ED and ES labels (markers).
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    structures = tuple(structures)
    fig = make_subplots(rows=1, cols=len(structures), subplot_titles=[STRUCTURE_NAMES[s] for s in structures])
    t = np.arange(seq.n_frames)
    sources = dict(predictions)
    for j, s in enumerate(structures, 1):
        if seq.dense is not None:
            ref = area_curves(seq.dense, seq.spacing, (s,))[s]
            fig.add_trace(
                go.Scatter(x=t, y=ref, name=f"reference ({seq.dense_kind or 'dense'})", mode="lines",
                           line=dict(color=MODEL_COLORS["reference"], width=4), legendgroup="reference",
                           showlegend=j == 1),
                row=1, col=j,
            )  # fmt: skip
        frames = sorted(seq.labels)
        manual = [area_curves(seq.labels[f][None], seq.spacing, (s,))[s][0] for f in frames]
        fig.add_trace(
            go.Scatter(x=frames, y=manual, name="manual ED/ES label", mode="markers",
                       marker=dict(color="black", size=10, symbol="x"), legendgroup="manual", showlegend=j == 1),
            row=1, col=j,
        )  # fmt: skip
        for model in _ordered(sources):
            curve = area_curves(sources[model], seq.spacing, (s,))[s]
            fig.add_trace(
                go.Scatter(x=t, y=curve, name=MODEL_NAMES.get(model, model), mode="lines+markers",
                           line=dict(color=MODEL_COLORS.get(model)), legendgroup=model, showlegend=j == 1),
                row=1, col=j,
            )  # fmt: skip
        fig.update_xaxes(title_text="frame (ED = 0)", row=1, col=j)
    fig.update_yaxes(title_text="area (mm²)", row=1, col=1)
    fig.update_layout(title=title, height=420)
    return fig


def _contours(mask: np.ndarray) -> list[np.ndarray]:
    from skimage import measure

    padded = np.pad(mask.astype(float), 1)
    # simplified to within 0.3 px: the marching-squares staircase adds points but no visible shape
    return [measure.approximate_polygon(c, tolerance=0.3) - 1 for c in measure.find_contours(padded, 0.5)]


def _contour_xy(mask: np.ndarray, spacing) -> tuple[list, list]:
    """All contours of a mask as one polyline in mm, pieces separated by ``None`` (one plotly trace, not one per
    piece: a fragmented prediction can have hundreds of pieces). Coordinates are rounded to 0.01 mm."""
    sy, sx = spacing
    xs: list = []
    ys: list = []
    for c in _contours(mask):
        xs += np.round(c[:, 1] * sx, 2).tolist() + [None]
        ys += np.round(c[:, 0] * sy, 2).tolist() + [None]
    return xs, ys


def overlay_figure(
    seq: "EchoSequence",
    predictions: Mapping[str, np.ndarray],
    *,
    structures: Iterable[str] = ("LV", "EPI", "LA"),
    title: str,
):
    """Fig. 4, bottom row: the ED and ES images with the manual label filled and each model's outline.

    Axes are in mm (column and row position times the pixel spacing). Every model is a legend entry, so the
    reader can show one model at a time.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    sy, sx = seq.spacing
    phases = (("ED", seq.ed), ("ES", seq.es))
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"{p} (frame {f})" for p, f in phases],
                        horizontal_spacing=0.06)  # fmt: skip
    H, W = seq.shape
    for j, (phase, f) in enumerate(phases, 1):
        fig.add_trace(
            go.Heatmap(z=seq.images[f], x=np.arange(W) * sx, y=np.arange(H) * sy, colorscale="gray",
                       showscale=False, hoverinfo="skip"),
            row=1, col=j,
        )  # fmt: skip
        for s in structures:
            x, y = _contour_xy(structure_mask(seq.labels[f], s), seq.spacing)
            fig.add_trace(
                go.Scatter(x=x, y=y, mode="lines", fill="toself", fillcolor="rgba(44,160,44,0.35)",
                           line=dict(color=MODEL_COLORS["reference"], width=1), name="manual label",
                           legendgroup="manual", showlegend=False, hoverinfo="skip"),
                row=1, col=j,
            )  # fmt: skip
        for model in _ordered(predictions):
            for s in structures:
                x, y = _contour_xy(structure_mask(predictions[model][f], s), seq.spacing)
                fig.add_trace(
                    go.Scatter(x=x, y=y, mode="lines", line=dict(color=MODEL_COLORS.get(model), width=2),
                               name=MODEL_NAMES.get(model, model), legendgroup=model, showlegend=False,
                               hoverinfo="name"),
                    row=1, col=j,
                )  # fmt: skip
    # one legend entry per group
    for name, color, group in [("manual label (filled)", MODEL_COLORS["reference"], "manual")] + [
        (MODEL_NAMES.get(m, m), MODEL_COLORS.get(m), m) for m in _ordered(predictions)
    ]:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color=color, width=3), name=name,
                                 legendgroup=group, showlegend=True), row=1, col=1)  # fmt: skip
    for j in (1, 2):
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{'' if j == 1 else j}", title_text="depth (mm)",
                         row=1, col=j)  # fmt: skip
        fig.update_xaxes(title_text="lateral position (mm)", row=1, col=j)
    fig.update_layout(title=title, height=480)
    return fig


# --------------------------------------------------------------------------------------------------------------
# Notebook 05 helpers: loading, the paper side by side, Fig. 2 completed, statements computed from the run

_PRETTY = {"LV": "LV", "MYO": "MYO (ring)", "EPI": "MYO (epicardium)", "LA": "LA", **METRIC_NAMES,
           "corr": "corr", "bias": "bias", "mae": "MAE", "EDV": "EDV (mL)", "ESV": "ESV (mL)", "EF": "EF (%)"}  # fmt: skip


def load_predictions(
    paths, models: Iterable[str], sequences: Iterable["EchoSequence"]
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, list[str]]]:
    """Every available prediction ``{model: {seq.key: (T, H, W)}}``, and ``{model: [missing keys]}``.

    Reads ``<run>/predictions/<model>/<patient>_<view>.nii.gz`` with :func:`echo_utils.nnunet.load_prediction`. A
    model with no prediction at all is left out of the first dict (and listed with all its keys as missing).
    """
    from . import nnunet

    sequences = list(sequences)
    preds: dict[str, dict[str, np.ndarray]] = {}
    missing: dict[str, list[str]] = {}
    for model in models:
        got = {}
        for seq in sequences:
            if nnunet.prediction_path(paths, model, seq).is_file():
                got[seq.key] = nnunet.load_prediction(paths, model, seq)
            else:
                missing.setdefault(model, []).append(seq.key)
        if got:
            preds[model] = got
    return preds, missing


def _display_frame(text: pd.DataFrame, best: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    def pretty(cols):
        return pd.MultiIndex.from_tuples([tuple(_PRETTY.get(x, x) for x in c) for c in cols]) if isinstance(
            cols, pd.MultiIndex) else [_PRETTY.get(c, c) for c in cols]  # fmt: skip

    text, best = text.copy(), best.copy()
    text.columns = best.columns = pretty(text.columns)
    return text, best


def table1_side_by_side(mean: pd.DataFrame, sd: pd.DataFrame, phase: str, caption: str):
    """Table 1 at one phase: this run's mean ± sd above the paper's values, best of each source in bold.

    The paper's "LV myocardium" columns are placed under ``MYO (epicardium)``; its ``MYO (ring)`` cells are empty.
    """
    cols = [c for c in mean.columns if c[0] == phase]
    ours_text, ours_best = format_mean_sd(mean[cols], sd[cols])
    paper = PAPER_TABLE1.reindex(columns=pd.MultiIndex.from_tuples(cols, names=PAPER_TABLE1.columns.names))
    paper = paper.dropna(how="all")
    paper_text, paper_best = format_mean_sd(paper)
    text = pd.concat({"this run": ours_text, "paper (CAMUS)": paper_text}, names=["source", "model"])
    best = pd.concat({"this run": ours_best, "paper (CAMUS)": paper_best}, names=["source", "model"])
    text.columns = best.columns = text.columns.droplevel("phase")
    return style_best(*_display_frame(text, best), caption=caption)


def table2_side_by_side(ours: pd.DataFrame, caption: str):
    """Table 2: this run's correlation, bias and MAE above the paper's, best of each source in bold.

    Bias is best when closest to zero. ``ours`` is :func:`table2` output (its ``n`` column is shown separately).
    """
    values = ours.drop(columns="n", level=0)
    ours_text, ours_best = format_mean_sd(values)
    paper_text, paper_best = format_mean_sd(PAPER_TABLE2)
    text = pd.concat({"this run": ours_text, "paper (CAMUS)": paper_text}, names=["source", "model"])
    best = pd.concat({"this run": ours_best, "paper (CAMUS)": paper_best}, names=["source", "model"])
    return style_best(*_display_frame(text, best), caption=caption)


FIG2_KINDS = ("2d_sparse", "bidirectional", "forward", "backward")
FIG2_COLORS = {"2d_sparse": MODEL_COLORS["2d_sparse"], "bidirectional": "#17becf", "forward": "#b35900",
               "backward": "#5b2c83"}  # fmt: skip


def fig2_videos(pseudo_scores: pd.DataFrame, nnunet_scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-video means (over the frames from ED to ES) of the pseudo-label scores of notebook 03, with the 2D sparse
    nnU-Net's scores on the same sequences appended as ``kind='2d_sparse'`` (the paper's Fig. 2 comparison).

    Both inputs are :func:`echo_utils.fusion.score_pseudo_labels` tables (one row per frame), or already per video.
    """
    from .fusion import per_video

    parts = []
    for df in (pseudo_scores, nnunet_scores):
        if df is None or df.empty:
            continue
        parts.append(per_video(df) if "frame" in df.columns else df)
    if not parts:
        raise ValueError("no pseudo-label scores to plot")
    return pd.concat(parts, ignore_index=True)


def fig2_figure(videos: pd.DataFrame, *, structures: Iterable[str] = ("LV", "MYO", "EPI"), title: str):
    """Fig. 2: box plots of per-video Dice, MAD and HD (pixels at 512x512) per structure, one colour per kind."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    structures = [s for s in structures if s in set(videos["structure"])]
    panels = (("dice", "Dice (unitless)"), ("mad_px", "MAD (px at 512×512)"), ("hd_px", "HD (px at 512×512)"))
    fig = make_subplots(rows=1, cols=3, subplot_titles=[p[1] for p in panels], horizontal_spacing=0.07)
    kinds = [k for k in FIG2_KINDS if k in set(videos["kind"])] + sorted(set(videos["kind"]) - set(FIG2_KINDS))
    for j, (col, label) in enumerate(panels, 1):
        for kind in kinds:
            sub = videos[(videos["kind"] == kind) & videos["structure"].isin(structures)]
            fig.add_trace(
                go.Box(x=sub["structure"], y=sub[col], name=MODEL_NAMES.get(kind, kind) + (" nnU-Net" if kind == "2d_sparse" else ""),
                       marker_color=FIG2_COLORS.get(kind), legendgroup=kind, showlegend=j == 1, boxpoints="all",
                       jitter=0.3, pointpos=0, hovertext=sub["key"]),
                row=1, col=j,
            )  # fmt: skip
        fig.update_yaxes(title_text=label, row=1, col=j)
        fig.update_xaxes(title_text="structure", categoryorder="array", categoryarray=structures, row=1, col=j)
    fig.update_layout(boxmode="group", title=title, height=460)
    return fig


def direction_statements(videos: pd.DataFrame, structures: Iterable[str] = ("LV", "MYO")) -> list[str]:
    """Sentences, computed from the run, on whether bidirectional pseudo-labels beat one-way propagation and the
    2D sparse nnU-Net (median Dice higher, median HD in px lower), as the paper's Fig. 2 found."""
    out = []
    med = videos.groupby(["structure", "kind"])[["dice", "hd_px"]].median()
    for s in structures:
        if s not in med.index.get_level_values(0):
            continue
        m = med.loc[s]
        if "bidirectional" not in m.index:
            continue
        b = m.loc["bidirectional"]
        for other in ("forward", "backward", "2d_sparse"):
            if other not in m.index:
                continue
            o = m.loc[other]
            dice_ok, hd_ok = b["dice"] > o["dice"], b["hd_px"] < o["hd_px"]
            verdict = "beats" if dice_ok and hd_ok else ("does not beat" if not (dice_ok or hd_ok) else "is mixed against")
            out.append(
                f"{STRUCTURE_NAMES[s]}: bidirectional {verdict} {MODEL_NAMES.get(other, other)} "
                f"(median Dice {b['dice']:.3f} vs {o['dice']:.3f}; median HD {b['hd_px']:.1f} vs {o['hd_px']:.1f} px)"
            )
    return out


def ordering_statements(ordering: pd.DataFrame, what: str = "smoother") -> list[str]:
    """Sentences from :func:`median_ordering` output, e.g. "LV cavity: 3D dense < 2D dense < 2D sparse holds"."""
    models = [c for c in ordering.columns if c != "holds"]
    out = []
    for s, row in ordering.iterrows():
        chain = " < ".join(f"{MODEL_NAMES.get(m, m)} ({row[m]:.3g})" for m in models)
        verdict = "holds" if row["holds"] else "does NOT hold"
        out.append(f"{STRUCTURE_NAMES.get(s, s)}: the ordering {chain} {verdict}")
    return out
