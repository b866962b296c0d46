"""Plotly helpers shared by the notebooks.

Figures in the built book must work offline: the book ships ``plotly.min.js`` from the installed plotly package in
``book/_static`` (loaded on every page by ``_config.yml``), and every figure is rendered as an HTML ``<div>``
*without* its own copy of the script (see :func:`setup_plotly`).
"""

from __future__ import annotations

import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer

__all__ = ["setup_plotly", "LABEL_COLORS", "LABEL_NAMES"]

LABEL_NAMES = {1: "LV cavity", 2: "LV myocardium", 3: "left atrium"}
LABEL_COLORS = {1: "#d62728", 2: "#2ca02c", 3: "#1f77b4"}

_RENDERER = "echo_book"


class _BookRenderer(MimetypeRenderer):
    """Emit ``text/html`` without plotly.js (the page provides it) next to plotly's own MIME bundle."""

    def to_mimebundle(self, fig_dict):
        import plotly.graph_objects as go

        fig = go.Figure(fig_dict)
        html = fig.to_html(include_plotlyjs=False, full_html=False, config={"responsive": True})
        return {"text/html": html}


def setup_plotly(template: str = "plotly_white") -> None:
    """Make plotly render offline-friendly output in notebooks and the book.

    JupyterLab shows the ``application/vnd.plotly.v1+json`` bundle; the Jupyter Book HTML builder picks the
    ``text/html`` one, which relies on the ``plotly.min.js`` served from ``_static`` instead of a CDN.
    """

    pio.renderers[_RENDERER] = _BookRenderer()  # type: ignore[assignment]
    pio.renderers.default = f"plotly_mimetype+{_RENDERER}"
    pio.templates.default = template


def bland_altman(auto, ref, *, title: str, unit: str, name: str = "automatic", color: str = "#1f77b4",
                 labels=None):
    """Bland-Altman figure: difference ``auto - ref`` against the mean ``(auto + ref) / 2``, in ``unit``.

    Dashed line: the bias (mean difference); dotted lines: the 95 % limits of agreement, bias -/+ 1.96 sd
    (sample sd, ddof=1), as :func:`echo_utils.metrics.agreement` computes them. Pairs with a non-finite value are
    left out. ``labels`` (optional, one per pair, e.g. patient ids) become the hover text.

    Args:
        auto, ref: 1D sequences of the same length (e.g. EDV in mL from a model and from the reference).
        title: figure title. unit: unit of the values, shown on both axes (e.g. "mL", "%").

    Returns:
        a ``plotly.graph_objects.Figure``.
    """
    import numpy as np
    import plotly.graph_objects as go

    a = np.asarray(auto, dtype=float).ravel()
    r = np.asarray(ref, dtype=float).ravel()
    if a.shape != r.shape:
        raise ValueError(f"auto and ref must have the same length, got {a.size} and {r.size}")
    ok = np.isfinite(a) & np.isfinite(r)
    mean, diff = (a[ok] + r[ok]) / 2.0, a[ok] - r[ok]
    hover = None if labels is None else [str(x) for x, keep in zip(labels, ok) if keep]
    fig = go.Figure(go.Scatter(x=mean, y=diff, mode="markers", name=name, marker_color=color, hovertext=hover))
    if diff.size >= 2:
        bias, sd = float(diff.mean()), float(diff.std(ddof=1))
        fig.add_hline(y=bias, line_dash="dash", line_color=color, annotation_text=f"bias {bias:.2f} {unit}")
        for k in (-1.96, 1.96):
            fig.add_hline(y=bias + k * sd, line_dash="dot", line_color=color,
                          annotation_text=f"{'+' if k > 0 else '−'}1.96 sd: {bias + k * sd:.2f} {unit}")
    fig.add_hline(y=0.0, line_color="black", line_width=1)
    fig.update_layout(title=title, xaxis_title=f"mean of automatic and reference ({unit})",
                      yaxis_title=f"automatic − reference ({unit})", height=420)
    return fig
