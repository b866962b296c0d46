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


def label_contour_traces(
    labels,
    *,
    classes=(1, 2, 3),
    name: str = "",
    dash: str | None = None,
    width: float = 2.0,
    showlegend: bool = True,
    legendgroup: str | None = None,
    colors: dict | None = None,
):
    """Plotly ``Scatter`` traces outlining each class of an ``(H, W)`` label map (pixel coordinates, x = column).

    One trace per class (its contours joined with gaps), coloured by :data:`LABEL_COLORS` (or ``colors``), named
    ``"<name> <class name>"``; for overlays on an image drawn with ``go.Heatmap``/``px.imshow``.
    """
    import numpy as np
    import plotly.graph_objects as go
    from skimage import measure

    colors = colors or LABEL_COLORS
    traces = []
    for c in classes:
        mask = np.pad(np.asarray(labels) == c, 1)
        xs, ys = [], []
        for contour in measure.find_contours(mask.astype(float), 0.5):
            ys += list(contour[:, 0] - 1) + [None]
            xs += list(contour[:, 1] - 1) + [None]
        traces.append(
            go.Scatter(
                x=xs, y=ys, mode="lines", name=f"{name} {LABEL_NAMES.get(c, c)}".strip(),
                line=dict(color=colors.get(c, "#000000"), dash=dash, width=width),
                showlegend=showlegend and bool(xs), legendgroup=legendgroup or name, hoverinfo="skip",
            )
        )
    return traces


def bland_altman(auto, ref, *, title: str, unit: str, name: str = "automatic", color: str = "#1f77b4",
                 labels=None, fig=None, annotate: bool = True):
    """Bland-Altman figure: difference ``auto - ref`` against the mean ``(auto + ref) / 2``, in ``unit``.

    Dashed line: the bias (mean difference); dotted lines: the 95 % limits of agreement, bias -/+ 1.96 sd
    (sample sd, ddof=1), as :func:`echo_utils.metrics.agreement` computes them. Pairs with a non-finite value are
    left out. ``labels`` (optional, one per pair, e.g. patient ids) become the hover text.

    Args:
        auto, ref: 1D sequences of the same length (e.g. EDV in mL from a model and from the reference).
        title: figure title. unit: unit of the values, shown on both axes (e.g. "mL", "%").
        fig: an existing Bland-Altman figure to add this series to (one series per model); default a new one.
        annotate: write the bias and limit values next to their lines (turn off when several series share a figure).

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
    new = fig is None
    fig = go.Figure() if new else fig
    fig.add_trace(go.Scatter(x=mean, y=diff, mode="markers", name=name, marker_color=color, hovertext=hover))
    if diff.size >= 2:
        bias, sd = float(diff.mean()), float(diff.std(ddof=1))
        fig.add_hline(y=bias, line_dash="dash", line_color=color,
                      annotation_text=f"bias {bias:.2f} {unit}" if annotate else None)
        for k in (-1.96, 1.96):
            fig.add_hline(y=bias + k * sd, line_dash="dot", line_color=color,
                          annotation_text=f"{'+' if k > 0 else '−'}1.96 sd: {bias + k * sd:.2f} {unit}" if annotate
                          else None)
    if new:
        fig.add_hline(y=0.0, line_color="black", line_width=1)
    fig.update_layout(title=title, xaxis_title=f"mean of automatic and reference ({unit})",
                      yaxis_title=f"automatic − reference ({unit})", height=420)
    return fig


def overlay_rgb(image, labels=None, *, alpha: float = 0.35, classes=(1, 2, 3)):
    """An ``(H, W)`` image in [0, 1] as uint8 RGB ``(H, W, 3)``, with ``labels`` (``(H, W)``) blended in
    :data:`LABEL_COLORS` at opacity ``alpha`` (the class boundaries are drawn opaque)."""
    import numpy as np

    img = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    rgb = np.repeat(img[..., None], 3, axis=-1)
    if labels is not None:
        lab = np.asarray(labels)
        edge = np.zeros(lab.shape, bool)
        edge[1:] |= lab[1:] != lab[:-1]
        edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
        for c in classes:
            col = np.array([int(LABEL_COLORS[c][i : i + 2], 16) / 255.0 for i in (1, 3, 5)], np.float32)
            m = lab == c
            rgb[m] = (1.0 - alpha) * rgb[m] + alpha * col
            rgb[m & edge] = col
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def _png_uri(rgb) -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_trace(image, labels=None, spacing=(1.0, 1.0), *, alpha: float = 0.35, name: str = ""):
    """A ``go.Image`` of an ``(H, W)`` frame (with optional label overlay), embedded as a PNG, in mm
    (``spacing = (sy, sx)``): compact in the book, unlike a heatmap of every pixel value."""
    import plotly.graph_objects as go

    rgb = overlay_rgb(image, labels, alpha=alpha)
    sy, sx = float(spacing[0]), float(spacing[1])
    return go.Image(source=_png_uri(rgb), x0=sx / 2, dx=sx, y0=sy / 2, dy=sy, name=name, hoverinfo="skip")


def sequence_slider(images, labels=None, spacing=(1.0, 1.0), *, title: str, frame_names=None,
                    alpha: float = 0.35, height: int = 520):
    """An animated view of a sequence ``images`` ``(T, H, W)`` with optional ``labels`` ``(T, H, W)``: a slider
    and play/pause buttons (plotly frames); axes in mm from ``spacing = (sy, sx)``."""
    import plotly.graph_objects as go

    T = len(images)
    names = [str(n) for n in (frame_names or [f"frame {t}" for t in range(T)])]
    traces = [image_trace(images[t], None if labels is None else labels[t], spacing, alpha=alpha)
              for t in range(T)]
    fig = go.Figure(data=[traces[0]], frames=[go.Frame(data=[tr], name=n) for tr, n in zip(traces, names)])
    fig.update_layout(
        title=title, height=height,
        xaxis=dict(title="x (mm)", constrain="domain"), yaxis=dict(title="depth (mm)", scaleanchor="x"),
        **animation_controls(names, frame_ms=120, buttons_y=-0.08, slider_pad=40),
    )
    return fig


def animation_controls(names: list[str], *, frame_ms: int = 120, buttons_y: float = -0.08,
                       slider_pad: int = 40) -> dict:
    """Layout entries (``sliders``, ``updatemenus``) for a frame slider with play/pause buttons.

    ``names`` are the ``go.Frame`` names in order; ``frame_ms`` is the playback time per frame in milliseconds.
    Use as ``fig.update_layout(**animation_controls(names))``.
    """

    def step(name: str) -> dict:
        return dict(method="animate", label=name,
                    args=[[name], dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))])

    play = dict(label="play", method="animate",
                args=[None, dict(frame=dict(duration=frame_ms, redraw=True), fromcurrent=True, transition=dict(duration=0))])
    pause = dict(label="pause", method="animate",
                 args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))])
    return dict(
        sliders=[dict(active=0, steps=[step(n) for n in names], currentvalue=dict(prefix=""), pad=dict(t=slider_pad))],
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=buttons_y, xanchor="left", yanchor="top",
                          buttons=[play, pause])],
    )
