"""Images and animated widgets for the book: label overlays as compact images, frame sliders, the offline renderer.

Figures in the built book must work offline: the book ships ``plotly.min.js`` from the installed plotly package in
``book/_static`` (loaded on every page by ``_config.yml``), and every figure is rendered as an HTML ``<div>``
*without* its own copy of the script (see :func:`setup_plotly`). Frames are embedded as PNG (or JPEG for sliders
with many panels) images rather than heatmaps of every pixel value, which keeps the pages small. Label colours are
those of :mod:`echo_utils.labels`.
"""

from __future__ import annotations

import base64
import io

import numpy as np

from ..labels import FOREGROUND, LABEL_COLORS

__all__ = ["setup_plotly", "overlay_rgb", "image_trace", "animation_controls", "sequence_slider", "prediction_slider"]

_RENDERER = "echo_book"


def setup_plotly(template: str = "plotly_white") -> None:
    """Make plotly render offline-friendly output in notebooks and the book.

    JupyterLab shows the ``application/vnd.plotly.v1+json`` bundle; the Jupyter Book HTML builder picks the
    ``text/html`` one, which relies on the ``plotly.min.js`` served from ``_static`` instead of a CDN.
    """
    import plotly.io as pio
    from plotly.io._base_renderers import MimetypeRenderer

    class _BookRenderer(MimetypeRenderer):
        """Emit ``text/html`` without plotly.js (the page provides it) next to plotly's own MIME bundle."""

        def to_mimebundle(self, fig_dict):
            import plotly.graph_objects as go

            fig = go.Figure(fig_dict)
            return {"text/html": fig.to_html(include_plotlyjs=False, full_html=False, config={"responsive": True})}

    pio.renderers[_RENDERER] = _BookRenderer()  # type: ignore[assignment]
    pio.renderers.default = f"plotly_mimetype+{_RENDERER}"
    pio.templates.default = template


def overlay_rgb(image, labels=None, *, alpha: float = 0.35, classes=FOREGROUND):
    """An ``(H, W)`` image in [0, 1] as uint8 RGB ``(H, W, 3)``, with ``labels`` (``(H, W)``) blended in
    :data:`echo_utils.labels.LABEL_COLORS` at opacity ``alpha`` (the class boundaries are drawn opaque)."""
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


def _data_uri(rgb, fmt: str = "PNG") -> str:
    from PIL import Image

    buf = io.BytesIO()
    if fmt == "PNG":
        Image.fromarray(rgb).save(buf, format="PNG", optimize=False)
    else:  # JPEG: ~5x smaller than PNG for speckled echo frames
        Image.fromarray(rgb).save(buf, format="JPEG", quality=88)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_trace(image, labels=None, spacing=(1.0, 1.0), *, alpha: float = 0.35, name: str = "", fmt: str = "PNG"):
    """A ``go.Image`` of an ``(H, W)`` frame (with optional label overlay), embedded as a PNG (or ``fmt="JPEG"``),
    in mm (``spacing = (sy, sx)``): compact in the book, unlike a heatmap of every pixel value."""
    import plotly.graph_objects as go

    sy, sx = float(spacing[0]), float(spacing[1])
    return go.Image(source=_data_uri(overlay_rgb(image, labels, alpha=alpha), fmt), x0=sx / 2, dx=sx, y0=sy / 2,
                    dy=sy, name=name, hoverinfo="skip")


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


def prediction_slider(seq, predictions: dict[str, np.ndarray], *, title: str, alpha: float = 0.35,
                      height: int = 420):
    """One sequence with the predictions of several models side by side, as a slider over frames.

    ``seq`` an :class:`echo_utils.camus.EchoSequence`; ``predictions``: ``{panel title: (T, H, W) uint8}``. Axes in
    mm (``seq.spacing``); label colours of :data:`echo_utils.labels.LABEL_COLORS`; frames as JPEG (the slider
    holds T x panels images).
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(predictions)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.02)

    def traces(t):
        return [image_trace(seq.images[t], predictions[n][t], seq.spacing, alpha=alpha, name=n, fmt="JPEG")
                for n in names]

    for j, tr in enumerate(traces(0), 1):
        fig.add_trace(tr, row=1, col=j)
    labels = [f"frame {t}" + (" (ED)" if t == seq.ed else " (ES)" if t == seq.es else "") for t in range(seq.n_frames)]
    fig.frames = [go.Frame(data=traces(t), name=lab, traces=list(range(len(names)))) for t, lab in enumerate(labels)]
    fig.update_layout(title=title, height=height,
                      **animation_controls(labels, frame_ms=150, buttons_y=-0.12, slider_pad=30))
    for j in range(1, len(names) + 1):
        fig.update_xaxes(title_text="x (mm)", constrain="domain", row=1, col=j)
        fig.update_yaxes(title_text="depth (mm)" if j == 1 else None, scaleanchor=f"x{'' if j == 1 else j}",
                         autorange="reversed", row=1, col=j)
    return fig
