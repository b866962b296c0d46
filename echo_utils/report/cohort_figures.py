"""The figures notebook 01 shows of a cohort: the ED/ES gallery per image quality, one sequence frame by frame, the
area curves of every sequence, and the cohort's ejection fractions, frame counts and image qualities.

Each takes what :func:`echo_utils.report.cohort.cohort_overview` kept from its one pass over the images, and returns
a plotly figure (the notebook calls ``.show()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from ..data.camus import EchoSequence
from ..data.phantom_patient import QUALITIES
from ..labels import LABEL_NAMES
from .widgets import image_trace, sequence_slider

__all__ = ["QUALITY_COLORS", "quality_order", "gallery_figure", "sequence_figure", "area_curves_figure",
           "cohort_figure"]

#: image quality -> line colour (CAMUS and the phantom use the same three names)
QUALITY_COLORS = {"Good": "#2ca02c", "Medium": "#ff7f0e", "Poor": "#7f7f7f"}
_OTHER = "#1f77b4"
#: the identity line of the EF scatter spans this range of EF (%)
EF_RANGE = (20, 80)
#: histogram bin width of the frame counts (frames)
FRAME_BIN = 2
#: height of one gallery row and the gallery's title margin, px
_ROW_PX, _TITLE_PX = 280, 80


def quality_order(qualities: Iterable[str]) -> list[str]:
    """``qualities`` in the phantom's order (Good, Medium, Poor), any other name after them, sorted, once each."""
    qualities = set(qualities)
    return list(dict.fromkeys([q for q in (*QUALITIES, *sorted(qualities)) if q in qualities]))


def gallery_figure(examples: Mapping[str, list[EchoSequence]], views: Iterable[str]):
    """One row per image quality of ``examples`` (quality -> the sequences of one patient, one per view: the
    ``examples`` of :class:`~echo_utils.report.cohort.CohortOverview`), one column per view and phase (ED, ES):
    the frame with its sparse labels overlaid, in mm."""
    from plotly.subplots import make_subplots

    order = quality_order(examples)
    columns = [(view, phase) for view in views for phase in ("ED", "ES")]
    by_view = {q: {s.view: s for s in examples[q]} for q in order}
    fig = make_subplots(
        rows=len(order), cols=len(columns), horizontal_spacing=0.01, vertical_spacing=0.04,
        subplot_titles=[f"{q}: {by_view[q][v].patient} {v} {ph}" for q in order for v, ph in columns],
    )
    for r, q in enumerate(order, 1):
        for c, (view, phase) in enumerate(columns, 1):
            s = by_view[q][view]
            t = s.ed if phase == "ED" else s.es
            fig.add_trace(image_trace(s.images[t], s.labels[t], s.spacing), row=r, col=c)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False, autorange="reversed")
    fig.update_yaxes(title_text="depth (mm)", col=1)
    fig.update_layout(height=_ROW_PX * len(order) + _TITLE_PX, margin=dict(l=40, r=10, t=90, b=10),
                      title="ED and ES frames with the manual/sparse label overlays, by image quality "
                            "(each panel spans the imaging depth, in mm)")
    return fig


def sequence_figure(seq: EchoSequence):
    """``seq`` frame by frame (a slider and a play button), its dense labels overlaid where it has them."""
    return sequence_slider(
        seq.images, seq.dense, seq.spacing,
        title=f"{seq.key} ({seq.info.get('ImageQuality')} quality), ED (frame {seq.ed}) to ES (frame {seq.es}), "
              f"with the {seq.dense_kind} dense labels",
        frame_names=[f"frame {t}" + (" (ED)" if t == seq.ed else " (ES)" if t == seq.es else "")
                     for t in range(seq.n_frames)],
    )


def area_curves_figure(curves: Iterable[tuple[str, str, Mapping[int, np.ndarray]]], dense_kind: str | None,
                       classes: Iterable[int] = (1, 2, 3)):
    """One panel per structure of ``classes``: the area (cm²) of every sequence's dense labels against normalised
    time (first frame 0, last 1), coloured by image quality. ``curves`` are ``(key, quality, {label: area per
    frame})`` (:class:`~echo_utils.report.cohort.CohortOverview`); ``dense_kind`` names the labels in the title."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    classes = list(classes)
    fig = make_subplots(rows=1, cols=len(classes), subplot_titles=[LABEL_NAMES[k] for k in classes],
                        horizontal_spacing=0.07)
    shown = set()
    for key, q, areas in curves:
        t = np.linspace(0.0, 1.0, len(areas[classes[0]]))
        for col, k in enumerate(classes, 1):
            fig.add_trace(go.Scatter(x=t, y=areas[k], mode="lines", line=dict(color=QUALITY_COLORS.get(q, _OTHER),
                                     width=1), name=q, legendgroup=q, showlegend=q not in shown, hovertext=key),
                          row=1, col=col)
            shown.add(q)
    fig.update_xaxes(title_text="normalised time, first (ED) to last frame")
    fig.update_yaxes(title_text="area (cm²)", col=1)
    fig.update_layout(height=420, legend_title="image quality",
                      title=f"Area curves of the dense labels ({dense_kind}), every sequence (colour: image quality)")
    return fig


def cohort_figure(table: pd.DataFrame):
    """Three panels of the per-patient ``table`` (:class:`~echo_utils.report.cohort.CohortOverview`): the biplane
    EF against the ``Info`` EF with the identity line (when both views were read), the frame counts, and the
    patients per image quality."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                        subplot_titles=["biplane EF against the Info EF", "frame count", "image quality"])
    if "biplane EF (%)" in table:
        fig.add_trace(go.Scatter(x=table["Info EF (%)"], y=table["biplane EF (%)"], mode="markers",
                                 text=table.index, name="patients", marker=dict(color=_OTHER)), row=1, col=1)
        fig.add_trace(go.Scatter(x=list(EF_RANGE), y=list(EF_RANGE), mode="lines",
                                 line=dict(dash="dash", color="black"), name="identity"), row=1, col=1)
    fig.add_trace(go.Histogram(x=table["frames"], name="frames", marker_color="#ff7f0e",
                               xbins=dict(size=FRAME_BIN)), row=1, col=2)
    counts = table["quality"].value_counts().reindex(list(QUALITIES)).fillna(0)  # CAMUS uses the same names
    fig.add_trace(go.Bar(x=counts.index, y=counts.values, name="quality", marker_color="#7f7f7f"), row=1, col=3)
    fig.update_xaxes(title_text="EF in the Info file (%): requested (phantom) or reference (CAMUS)", row=1, col=1)
    fig.update_yaxes(title_text="biplane EF from the ED/ES labels (%)", row=1, col=1)
    fig.update_xaxes(title_text="frames", row=1, col=2)
    fig.update_yaxes(title_text="patients", row=1, col=2)
    fig.update_xaxes(title_text="image quality", row=1, col=3)
    fig.update_yaxes(title_text="patients", row=1, col=3)
    fig.update_layout(height=400, showlegend=False, title="The cohort: ejection fraction, frame counts, image quality")
    return fig
