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
