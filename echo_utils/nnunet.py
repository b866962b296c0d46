"""Compatibility shim: nnU-Net glue moved to :mod:`echo_utils.segmentation` (one module per concept).

Kept so that ``from echo_utils import nnunet`` and ``nnunet.<name>`` keep working. It also still holds
:func:`prediction_slider` (a plotly widget, to move with the other figures to ``echo_utils.report``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .segmentation import *  # noqa: F401,F403 - the public names, re-exported
from .segmentation import __all__ as _segmentation_all

if TYPE_CHECKING:  # pragma: no cover
    from .data.camus import EchoSequence

__all__ = [*_segmentation_all, "prediction_slider"]


def prediction_slider(seq: "EchoSequence", predictions: dict[str, np.ndarray], *, title: str,
                      alpha: float = 0.35, height: int = 420):
    """One test sequence with the predictions of several models side by side, as a slider over frames.

    ``predictions``: ``{panel title: (T, H, W) uint8}``. Axes in mm (``seq.spacing``); label colours as in
    :data:`echo_utils.plots.LABEL_COLORS`.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from .plots import animation_controls, overlay_rgb

    names = list(predictions)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.02)
    sy, sx = (float(v) for v in seq.spacing)

    def jpeg(rgb) -> str:  # JPEG: ~5x smaller than PNG for speckled echo frames; the slider holds T x panels
        import base64
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=88)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")

    def traces(t):
        return [go.Image(source=jpeg(overlay_rgb(seq.images[t], predictions[n][t], alpha=alpha)), x0=sx / 2, dx=sx,
                         y0=sy / 2, dy=sy, name=n, hoverinfo="skip") for n in names]

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
