"""The book's plotly figures: Figs. 2-4 of the paper, Bland-Altman plots, label contours; widgets re-exported.

Every figure takes this run's tables (from :mod:`echo_utils.report.tables`, :mod:`~echo_utils.report.smoothness`,
:mod:`~echo_utils.report.fig2_summary`) or label maps, and draws each model, direction and structure in its one
colour of :mod:`echo_utils.labels`, so a reader recognises it in every chapter. Images and sliders live in
:mod:`echo_utils.report.widgets` and are re-exported here, so notebooks need one import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..labels import (
    FOREGROUND,
    LABEL_COLORS,
    LABEL_NAMES,
    REFERENCE,
    STRUCTURE_NAMES,
    color,
    name,
    ordered,
    rgba,
    structure_mask,
)
from .paper import FIG2_KINDS
from .smoothness import area_curves
from .widgets import animation_controls, image_trace, overlay_rgb, prediction_slider, sequence_slider, setup_plotly

if TYPE_CHECKING:  # pragma: no cover
    from ..data.camus import EchoSequence

__all__ = [
    "setup_plotly", "overlay_rgb", "image_trace", "animation_controls", "sequence_slider", "prediction_slider",
    "label_contour_traces", "bland_altman", "bland_altman_figure", "smoothness_figure", "inconsistency_figure",
    "area_curve_figure", "overlay_figure", "fig2_figure",
]  # fmt: skip


def _contours(mask: np.ndarray, tolerance: float = 0.0) -> list[np.ndarray]:
    """Contours ``(K, 2)`` (row, col) of a 2D mask at the 0.5 level, pixels outside the image counted as background;
    simplified to within ``tolerance`` px when > 0."""
    from skimage import measure

    padded = np.pad(np.asarray(mask, dtype=float), 1)
    cs = [c - 1 for c in measure.find_contours(padded, 0.5)]
    return [measure.approximate_polygon(c, tolerance=tolerance) for c in cs] if tolerance > 0 else cs


def _contour_xy(mask: np.ndarray, spacing=(1.0, 1.0), tolerance: float = 0.0, decimals: int | None = None):
    """All contours of a mask as one polyline (x = column, y = row, times ``spacing``), pieces separated by
    ``None``: one plotly trace, not one per piece (a fragmented prediction can have hundreds of pieces)."""
    sy, sx = spacing
    xs: list = []
    ys: list = []
    for c in _contours(mask, tolerance):
        x, y = c[:, 1] * sx, c[:, 0] * sy
        if decimals is not None:
            x, y = np.round(x, decimals), np.round(y, decimals)
        xs += x.tolist() + [None]
        ys += y.tolist() + [None]
    return xs, ys


def label_contour_traces(labels, *, classes=FOREGROUND, name: str = "", dash: str | None = None, width: float = 2.0,
                         showlegend: bool = True, legendgroup: str | None = None, colors: dict | None = None):
    """Plotly ``Scatter`` traces outlining each class of an ``(H, W)`` label map (pixel coordinates, x = column).

    One trace per class (its contours joined with gaps), coloured by :data:`echo_utils.labels.LABEL_COLORS` (or
    ``colors``), named ``"<name> <class name>"``; for overlays on an image drawn with ``go.Heatmap``/``go.Image``.
    """
    import plotly.graph_objects as go

    colors = colors or LABEL_COLORS
    traces = []
    for c in classes:
        xs, ys = _contour_xy(np.asarray(labels) == c)
        traces.append(go.Scatter(
            x=xs, y=ys, mode="lines", name=f"{name} {LABEL_NAMES.get(c, c)}".strip(),
            line=dict(color=colors.get(c, "#000000"), dash=dash, width=width),
            showlegend=showlegend and bool(xs), legendgroup=legendgroup or name, hoverinfo="skip",
        ))  # fmt: skip
    return traces


def bland_altman(auto, ref, *, title: str, unit: str, name: str = "automatic", color: str = "#1f77b4",
                 labels=None, fig=None, annotate: bool = True):
    """Bland-Altman figure: difference ``auto - ref`` against the mean ``(auto + ref) / 2``, in ``unit``.

    Dashed line: the bias (mean difference); dotted lines: the 95 % limits of agreement, bias -/+ 1.96 sd
    (sample sd, ddof=1), as :func:`echo_utils.clinical.agreement` computes them. Pairs with a non-finite value are
    left out. ``labels`` (optional, one per pair, e.g. patient ids) become the hover text. ``fig``: an existing
    Bland-Altman figure to add this series to; ``annotate``: write the bias and limit values next to their lines.
    """
    import plotly.graph_objects as go

    a = np.asarray(auto, dtype=float).ravel()
    r = np.asarray(ref, dtype=float).ravel()
    if a.shape != r.shape:
        raise ValueError(f"auto and ref must have the same length, got {a.size} and {r.size}")
    ok = np.isfinite(a) & np.isfinite(r)
    mean, diff = (a[ok] + r[ok]) / 2.0, a[ok] - r[ok]
    hover = None if labels is None else [str(x) for x, keep in zip(labels, ok) if keep]
    new = fig is None
    fig = go.Figure() if new else fig
    fig.add_trace(go.Scatter(x=mean, y=diff, mode="markers", name=name, marker_color=color, hovertext=hover))
    if diff.size >= 2:
        bias, sd = float(diff.mean()), float(diff.std(ddof=1))
        fig.add_hline(y=bias, line_dash="dash", line_color=color,
                      annotation_text=f"bias {bias:.2f} {unit}" if annotate else None)
        for k in (-1.96, 1.96):
            text = f"{'+' if k > 0 else '−'}1.96 sd: {bias + k * sd:.2f} {unit}" if annotate else None
            fig.add_hline(y=bias + k * sd, line_dash="dot", line_color=color, annotation_text=text)
    if new:
        fig.add_hline(y=0.0, line_color="black", line_width=1)
    fig.update_layout(title=title, xaxis_title=f"mean of automatic and reference ({unit})",
                      yaxis_title=f"automatic − reference ({unit})", height=420)
    return fig


def bland_altman_figure(auto: Mapping[str, pd.Series], reference: pd.Series, *, title: str, unit: str):
    """Bland-Altman plot of several models: one :func:`bland_altman` series per model (patients present in both),
    each with its bias and 95 % limits of agreement in the model's colour."""
    fig = None
    for model in ordered(auto):
        common = auto[model].index.intersection(reference.index)
        fig = bland_altman(auto[model].loc[common].to_numpy(), reference.loc[common].to_numpy(), title=title,
                           unit=unit, name=name(model), color=color(model), labels=list(common), fig=fig,
                           annotate=False)
    return fig if fig is not None else bland_altman([], [], title=title, unit=unit)


def smoothness_figure(table: pd.DataFrame, *, value: str = "smoothness", log: bool = True, title: str, y_title: str):
    """Box plots of ``value`` per structure (x) and model (colour): the layout of the paper's Fig. 3."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for model in ordered(table["model"].unique()):
        sub = table[table["model"] == model]
        fig.add_trace(go.Box(x=sub["structure"].map(lambda s: STRUCTURE_NAMES.get(s, s)), y=sub[value],
                             name=name(model), marker_color=color(model), boxpoints="all", jitter=0.3, pointpos=0,
                             hovertext=sub["patient"] + " " + sub["view"]))  # fmt: skip
    fig.update_layout(boxmode="group", title=title, xaxis_title="structure", yaxis_title=y_title, height=450)
    if log:
        fig.update_yaxes(type="log")
    return fig


def inconsistency_figure(summary: pd.DataFrame, *, title: str):
    """Painchaud et al.'s per-frame consistency test, from
    :func:`echo_utils.report.smoothness.inconsistency_summary`: grouped bars per structure (x) and model (colour),
    left the fraction of frames that violate the threshold, right the fraction of sequences with at least one
    violating frame (both 0-1; hover: the counts)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    need = {"frame_fraction", "sequence_fraction", "inconsistent_frames", "frames", "inconsistent_sequences",
            "sequences"}
    if not need <= set(summary.columns):
        raise ValueError("inconsistency_figure needs smoothness.inconsistency_summary output; missing columns "
                         f"{sorted(need - set(summary.columns))}")
    g = summary.reset_index()
    fig = make_subplots(rows=1, cols=2, subplot_titles=("frames violating the threshold",
                                                        "sequences with at least one violating frame"))
    for model in ordered(g["model"].unique()):
        sub = g[g["model"] == model]
        x = sub["structure"].map(lambda s: STRUCTURE_NAMES.get(s, s))
        for col, (value, num, den) in enumerate((("frame_fraction", "inconsistent_frames", "frames"),
                                                 ("sequence_fraction", "inconsistent_sequences", "sequences")), 1):
            fig.add_trace(go.Bar(x=x, y=sub[value], name=name(model), marker_color=color(model),
                                 legendgroup=model, showlegend=col == 1,
                                 hovertext=[f"{int(a)}/{int(b)}" for a, b in zip(sub[num], sub[den])]),
                          row=1, col=col)  # fmt: skip
    fig.update_layout(barmode="group", title=title, height=420)
    fig.update_xaxes(title_text="structure")
    fig.update_yaxes(title_text="inconsistent frames (fraction, 0-1)", row=1, col=1)
    fig.update_yaxes(title_text="inconsistent sequences (fraction, 0-1)", row=1, col=2)
    return fig


def area_curve_figure(seq: "EchoSequence", predictions: Mapping[str, np.ndarray], *,
                      structures: Iterable[str] = ("LV", "MYO", "LA"), title: str):
    """Area curves (mm^2 against frame) of one sequence for every model and the reference: Fig. 4, top row.

    The reference is the dense truth when the sequence has one, else only the manual ED and ES labels (markers).
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    structures = tuple(structures)
    fig = make_subplots(rows=1, cols=len(structures), subplot_titles=[STRUCTURE_NAMES[s] for s in structures])
    t = np.arange(seq.n_frames)
    for j, s in enumerate(structures, 1):
        if seq.dense is not None:
            ref = area_curves(seq.dense, seq.spacing, (s,))[s]
            fig.add_trace(go.Scatter(x=t, y=ref, name=f"reference ({seq.dense_kind or 'dense'})", mode="lines",
                                     line=dict(color=color(REFERENCE), width=4), legendgroup=REFERENCE,
                                     showlegend=j == 1), row=1, col=j)  # fmt: skip
        frames = sorted(seq.labels)
        manual = [area_curves(seq.labels[f][None], seq.spacing, (s,))[s][0] for f in frames]
        fig.add_trace(go.Scatter(x=frames, y=manual, name="manual ED/ES label", mode="markers",
                                 marker=dict(color="black", size=10, symbol="x"), legendgroup="manual",
                                 showlegend=j == 1), row=1, col=j)  # fmt: skip
        for model in ordered(predictions):
            curve = area_curves(predictions[model], seq.spacing, (s,))[s]
            fig.add_trace(go.Scatter(x=t, y=curve, name=name(model), mode="lines+markers",
                                     line=dict(color=color(model)), legendgroup=model, showlegend=j == 1),
                          row=1, col=j)  # fmt: skip
        fig.update_xaxes(title_text="frame (ED = 0)", row=1, col=j)
    fig.update_yaxes(title_text="area (mm²)", row=1, col=1)
    fig.update_layout(title=title, height=420)
    return fig


def overlay_figure(seq: "EchoSequence", predictions: Mapping[str, np.ndarray], *,
                   structures: Iterable[str] = ("LV", "EPI", "LA"), title: str):
    """Fig. 4, bottom row: the ED and ES images with the manual label filled and each model's outline.

    Axes are in mm (column and row position times the pixel spacing; contours simplified to 0.3 px and rounded to
    0.01 mm). Every model is a legend entry, so the reader can show one model at a time.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    sy, sx = seq.spacing
    phases = (("ED", seq.ed), ("ES", seq.es))
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"{p} (frame {f})" for p, f in phases],
                        horizontal_spacing=0.06)  # fmt: skip
    H, W = seq.shape

    def outline(mask):
        return _contour_xy(mask, seq.spacing, tolerance=0.3, decimals=2)

    for j, (_, f) in enumerate(phases, 1):
        fig.add_trace(go.Heatmap(z=seq.images[f], x=np.arange(W) * sx, y=np.arange(H) * sy, colorscale="gray",
                                 showscale=False, hoverinfo="skip"), row=1, col=j)  # fmt: skip
        for s in structures:
            x, y = outline(structure_mask(seq.labels[f], s))
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", fill="toself", fillcolor=rgba(REFERENCE, 0.35),
                                     line=dict(color=color(REFERENCE), width=1), name="manual label",
                                     legendgroup="manual", showlegend=False, hoverinfo="skip"),
                          row=1, col=j)  # fmt: skip
        for model in ordered(predictions):
            for s in structures:
                x, y = outline(structure_mask(predictions[model][f], s))
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=color(model), width=2),
                                         name=name(model), legendgroup=model, showlegend=False, hoverinfo="name"),
                              row=1, col=j)  # fmt: skip
    entries = [("manual label (filled)", color(REFERENCE), "manual")]
    entries += [(name(m), color(m), m) for m in ordered(predictions)]
    for label, col, group in entries:  # one legend entry per group
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color=col, width=3), name=label,
                                 legendgroup=group, showlegend=True), row=1, col=1)  # fmt: skip
    for j in (1, 2):
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{'' if j == 1 else j}", title_text="depth (mm)",
                         row=1, col=j)  # fmt: skip
        fig.update_xaxes(title_text="lateral position (mm)", row=1, col=j)
    fig.update_layout(title=title, height=480)
    return fig


def fig2_figure(videos: pd.DataFrame, *, unit: str = "px", structures: Iterable[str] = ("LV", "MYO", "EPI", "LA"),
                title: str, height: int = 460):
    """Fig. 2: box plots of per-video Dice, MAD and HD per structure, one colour per kind (the three directions and,
    when present, the 2D sparse nnU-Net). ``unit``: ``"px"`` (pixels at 512x512, the paper's unit) or ``"mm"``.

    ``videos``: per-video scores (:func:`echo_utils.report.fig2.per_video` or
    :func:`echo_utils.report.fig2_summary.fig2_videos`) with columns ``kind, structure, key, dice, mad_<unit>,
    hd_<unit>``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if unit not in ("px", "mm"):
        raise ValueError(f"unit must be 'px' or 'mm', got {unit!r}")
    where = " at 512×512" if unit == "px" else ""
    panels = (("dice", "Dice (unitless)"), (f"mad_{unit}", f"MAD ({unit}{where})"), (f"hd_{unit}", f"HD ({unit}{where})"))
    structures = [s for s in structures if s in set(videos["structure"])]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[p[1] for p in panels], horizontal_spacing=0.07)
    present = set(videos["kind"])
    kinds = [k for k in (*FIG2_KINDS[1:], FIG2_KINDS[0]) if k in present] + sorted(present - set(FIG2_KINDS))
    for j, (col, label) in enumerate(panels, 1):
        for kind in kinds:
            sub = videos[(videos["kind"] == kind) & videos["structure"].isin(structures)]
            fig.add_trace(go.Box(x=sub["structure"], y=sub[col], name=name(kind) + (" nnU-Net" if kind == "2d_sparse" else ""),
                                 marker_color=color(kind, "#444444"), legendgroup=kind, showlegend=j == 1,
                                 boxpoints="all", jitter=0.3, pointpos=0, hovertext=sub["key"]),
                          row=1, col=j)  # fmt: skip
        fig.update_yaxes(title_text=label, row=1, col=j)
        fig.update_xaxes(title_text="structure", categoryorder="array", categoryarray=structures, row=1, col=j)
    fig.update_layout(boxmode="group", title=title, height=height)
    return fig
