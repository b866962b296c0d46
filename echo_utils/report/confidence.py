"""Figures and statements of the pseudo-label confidence (notebook 03): the AUROC table, the reliability plot and
the confidence overlay. The numbers come from :mod:`echo_utils.pseudolabels.confidence`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..labels import color, name

__all__ = ["auroc_table", "auroc_display", "auroc_statements", "reliability_figure", "confidence_overlay_figure",
           "confidence_frames_figure", "worst_frame"]

_AUROC_TARGET = 0.85  # issue 25: demo, unseen patients, LV and MYO


def auroc_table(scores: pd.DataFrame) -> pd.DataFrame:
    """The AUROC table for display: rows = structure, columns = (registration, score) with the confidence's AUROC,
    the distance-only control and the error rate."""
    tab = scores.pivot_table(index="structure", columns="registration",
                             values=["auroc", "auroc_structure", "auroc_distance", "error_rate"])
    tab = tab.swaplevel(axis=1).sort_index(axis=1)
    regs = [r for r in scores["registration"].unique()]
    return tab[[(r, v) for r in regs for v in ("auroc", "auroc_structure", "auroc_distance", "error_rate")]]


def auroc_display(scores: pd.DataFrame, n_sequences: int):
    """:func:`auroc_table`, styled and captioned (``n_sequences``: the unseen sequences with an exact truth)."""
    return auroc_table(scores).style.format("{:.3f}").set_caption(
        f"AUROC of low confidence for mislabelled pixels ({n_sequences} unseen sequences, exact truth); "
        "auroc_distance: the distance to the fused boundary alone (control)")


def auroc_statements(scores: pd.DataFrame, method: str, *, structures=("LV", "MYO"),
                     target: float = _AUROC_TARGET) -> list[str]:
    """One line per structure: the method's AUROC next to its identity control and the distance-only score, and
    whether the target (>= ``target``) is met."""
    lines = []
    idx = scores.set_index(["registration", "structure"])
    for s in structures:
        if (method, s) not in idx.index:
            continue
        row = idx.loc[(method, s)]
        parts = [f"{s}: AUROC {row.auroc:.3f} ({name(method)})"]
        if ("identity", s) in idx.index:
            parts.append(f"identity control {idx.loc[('identity', s)].auroc:.3f}")
        parts.append(f"the structure's own confidence {row.auroc_structure:.3f}")
        parts.append(f"distance to the fused boundary alone {row.auroc_distance:.3f}")
        verdict = "meets" if row.auroc >= target else "does NOT meet"
        lines.append(", ".join(parts) + f"; {verdict} the target >= {target:.2f} "
                     f"({int(row.n_errors)} errors among {int(row.n_pixels)} pixels within {int(row.margin_px)} px)")
    return lines


def reliability_figure(table: pd.DataFrame, *, title: str):
    """Error rate per confidence bin, one line per registration (its colour), the x position at the bin's mean
    confidence; the hover gives the pixel count. Log y axis: the error rate spans decades."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for reg, g in table.groupby("registration", sort=False):
        g = g[g["n_pixels"] > 0]
        fig.add_trace(go.Scatter(
            x=g["mean_confidence"], y=g["error_rate"].clip(lower=1e-5), mode="lines+markers", name=name(reg),
            line=dict(color=color(reg, "#333333")), customdata=np.stack([g["n_pixels"], g["n_errors"]], -1),
            hovertemplate="confidence %{x:.2f}<br>error rate %{y:.3g}<br>%{customdata[1]} errors / "
                          "%{customdata[0]} pixels<extra>" + name(reg) + "</extra>"))
    fig.add_vline(x=0.5, line=dict(color="gray", dash="dot"))
    fig.update_layout(title=title, height=420, xaxis_title="confidence (bin mean)",
                      yaxis_title="error rate (pixels wrong)", yaxis_type="log",
                      legend=dict(orientation="h", y=-0.25), margin=dict(l=60, r=20, t=60, b=90))
    return fig


def worst_frame(seq, fused: np.ndarray) -> int:
    """The frame strictly between ED and ES with the most pseudo-label errors against ``seq.dense``."""
    lo, hi = sorted((int(seq.ed), int(seq.es)))
    frames = np.arange(lo + 1, hi) if hi - lo > 1 else np.arange(lo, hi + 1)
    errors = [(np.asarray(fused[t]) != np.asarray(seq.dense[t])).sum() for t in frames]
    return int(frames[int(np.argmax(errors))])


def _image_layout(fig, height: int):
    fig.update_xaxes(showticklabels=False, constrain="domain")
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False, constrain="domain")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", y=-0.02, yanchor="top"))


def confidence_overlay_figure(seq, fused: np.ndarray, conf: np.ndarray, frame: int, *, title: str,
                              height: int = 520):
    """One frame, readable on a phone: the echo in grey, the confidence map over it (low = bright, opacity where
    doubtful), the fused pseudo-label outlines and, with an exact truth, the outline of the mislabelled pixels.

    ``fused``, ``conf``: ``(T, H, W)`` labels and confidence of ``seq``; one panel, legend and colour bar below.
    """
    import plotly.graph_objects as go

    from .figures import _contour_xy, label_contour_traces
    from .widgets import image_trace

    fig = go.Figure()
    fig.add_trace(image_trace(seq.images[frame]))
    c = np.asarray(conf[frame], np.float32)
    fig.add_trace(go.Heatmap(z=np.round(c, 3), zmin=0, zmax=1, colorscale="Inferno", reversescale=True,
                             opacity=0.55, name="confidence",
                             colorbar=dict(title="confidence", orientation="h", y=-0.08, len=0.8, thickness=12),
                             hovertemplate="row %{y}, col %{x}<br>confidence %{z:.2f}<extra></extra>"))
    for tr in label_contour_traces(fused[frame], name="pseudo-label", width=1.5):
        fig.add_trace(tr)
    if getattr(seq, "dense", None) is not None:
        xs, ys = _contour_xy(np.asarray(fused[frame]) != np.asarray(seq.dense[frame]))
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="mislabelled (exact truth)",
                                 line=dict(color="#00e5ff", width=2), hoverinfo="skip"))
    fig.update_layout(title=title)
    _image_layout(fig, height)
    return fig


def confidence_frames_figure(seq, conf: np.ndarray, frames: Mapping[str, int], *, title: str, height: int = 360):
    """The confidence map alone at a few ``frames`` (``{title: index}``): for data without a dense truth."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(frames), subplot_titles=[f"{k} (frame {v})" for k, v in frames.items()],
                        horizontal_spacing=0.02)
    for j, t in enumerate(frames.values(), 1):
        fig.add_trace(go.Heatmap(z=np.round(np.asarray(conf[t], np.float32), 3), zmin=0, zmax=1,
                                 colorscale="Inferno", reversescale=True, showscale=j == 1,
                                 colorbar=dict(title="confidence", orientation="h", y=-0.15, thickness=12)), 1, j)
        fig.update_xaxes(showticklabels=False, row=1, col=j)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{j if j > 1 else ''}", showticklabels=False,
                         row=1, col=j)
    fig.update_layout(title=title, height=height)
    return fig
