"""Tests of the report figures and widgets: titles, units, one colour per model from labels, trace counts."""

from __future__ import annotations

import numpy as np
import pytest

from echo_utils import labels as L
from echo_utils.report import figures as F
from echo_utils.report import fig2, fig2_summary
from echo_utils.report import smoothness as S
from echo_utils.report import tables as TB

from test_report import T, _jitter, _sequence  # noqa: F401  (the same hand-made cohort)


@pytest.fixture(scope="module")
def cohort():
    return [_sequence(f"patient000{i}", v, shrink=1.0 + 0.2 * i) for i in (1, 2, 3) for v in ("2CH", "4CH")]


def test_figures_have_titles_units_and_the_vocabulary_colours(cohort):
    preds = {"3d_dense": {s.key: s.dense for s in cohort}, "2d_sparse": {s.key: _jitter(s.dense) for s in cohort}}
    tab = S.smoothness_table(preds, cohort)
    fig = F.smoothness_figure(tab, title="Fig. 3", y_title="smoothness (px², log scale)")
    assert fig.layout.yaxis.type == "log" and "px" in fig.layout.yaxis.title.text
    assert {t.name: t.marker.color for t in fig.data} == {
        "2D sparse": L.MODEL_COLORS["2d_sparse"], "3D dense": L.MODEL_COLORS["3d_dense"],
        "reference": L.MODEL_COLORS["reference"]}
    inc = F.inconsistency_figure(S.inconsistency_summary(tab), title="ratio")
    assert "fraction" in inc.layout.yaxis.title.text and "sequences" in inc.layout.yaxis2.title.text
    assert [t.name for t in inc.data if t.showlegend] == ["2D sparse", "3D dense", "reference"]  # labels.ordered
    assert {t.marker.color for t in inc.data if t.name == "3D dense"} == {L.MODEL_COLORS["3d_dense"]}
    with pytest.raises(ValueError, match="inconsistency_summary"):
        F.inconsistency_figure(tab, title="ratio")
    ref = TB.lv_indices(cohort, lambda s: s.labels)
    ba = F.bland_altman_figure({"2d_sparse": ref["EF"] + 1.0}, ref["EF"], title="EF", unit="%")
    assert "%" in ba.layout.yaxis.title.text and len(ba.data) == 1 and ba.data[0].marker.color == L.color("2d_sparse")
    seq = cohort[0]
    curves = F.area_curve_figure(seq, {m: p[seq.key] for m, p in preds.items()}, title="Fig. 4")
    assert "mm²" in curves.layout.yaxis.title.text
    over = F.overlay_figure(seq, {m: p[seq.key] for m, p in preds.items()}, title="Fig. 4 bottom")
    assert "mm" in over.layout.xaxis.title.text
    assert {t.name for t in over.data if t.showlegend} >= {"2D sparse", "3D dense"}


def test_overlay_uses_one_trace_per_model_structure_and_phase(cohort):
    seq = cohort[0]
    noisy = seq.dense.copy()
    noisy[:, ::4, ::4] = 1  # a fragmented prediction: many separate LV specks
    fig = F.overlay_figure(seq, {"2d_sparse": noisy, "3d_dense": seq.dense}, title="t")
    lines = [t for t in fig.data if t.type == "scatter" and not t.showlegend]
    # 2 phases x 3 structures x (manual + 2 models), whatever the number of contour pieces
    assert len(lines) == 2 * 3 * 3
    sparse_lv = [t for t in lines if t.name == "2D sparse"][0]
    assert sum(v is None for v in sparse_lv.x) > 10  # the pieces are separated by gaps
    assert [t for t in lines if t.name == "manual label"][0].fillcolor == L.rgba("reference", 0.35)


def test_fig2_figure_units_and_kind_colours(cohort):
    labels = {s.key: {"forward": _jitter(s.dense), "backward": _jitter(s.dense), "bidirectional": s.dense} for s in cohort}
    nn = fig2.score_pseudo_labels(cohort, {s.key: {"2d_sparse": s.dense} for s in cohort}, method="nnunet",
                                  progress=False)
    videos = fig2_summary.fig2_videos(fig2.score_pseudo_labels(cohort, labels, progress=False), nn)
    fig = F.fig2_figure(videos, title="Fig. 2")
    assert "px at 512" in fig.layout.yaxis2.title.text
    colours = {t.name: t.marker.color for t in fig.data if t.showlegend}
    assert colours == {"bidirectional": L.color("bidirectional"), "forward": L.color("forward"),
                       "backward": L.color("backward"), "2D sparse nnU-Net": L.color("2d_sparse")}
    assert "(mm)" in F.fig2_figure(videos, unit="mm", title="mm").layout.yaxis3.title.text
    with pytest.raises(ValueError, match="unit"):
        F.fig2_figure(videos, unit="cm", title="x")


def test_bland_altman_lines():
    fig = F.bland_altman([51.0, 62.0, 69.0, np.nan], [50.0, 60.0, 70.0, 40.0], title="EDV", unit="mL")
    assert "mL" in fig.layout.xaxis.title.text and "mL" in fig.layout.yaxis.title.text and "EDV" in fig.layout.title.text
    ys = [s.y for s in fig.data if s.mode == "markers"][0]
    np.testing.assert_allclose(ys, [1.0, 2.0, -1.0])  # the NaN pair is left out
    lines = sorted(s.y0 for s in fig.layout.shapes)
    d = np.array([1.0, 2.0, -1.0])
    np.testing.assert_allclose(lines, sorted([0.0, d.mean(), d.mean() - 1.96 * d.std(ddof=1),
                                              d.mean() + 1.96 * d.std(ddof=1)]))
    with pytest.raises(ValueError, match="same length"):
        F.bland_altman([1.0], [1.0, 2.0], title="x", unit="mL")


def test_label_contours_and_overlay_image():
    lab = np.zeros((20, 20), np.uint8)
    lab[5:10, 5:10] = 1
    lab[12:15, 2:18] = 3
    traces = F.label_contour_traces(lab, name="truth")
    assert [t.name for t in traces] == ["truth LV cavity", "truth LV myocardium", "truth left atrium"]
    assert traces[0].line.color == L.LABEL_COLORS[1] and not traces[1].showlegend  # no myocardium: no legend entry
    xs = [x for x in traces[0].x if x is not None]
    assert min(xs) == pytest.approx(4.5) and max(xs) == pytest.approx(9.5)  # the 0.5 level between pixels
    rgb = F.overlay_rgb(np.full((20, 20), 0.5), lab, alpha=0.5)
    assert rgb.shape == (20, 20, 3) and rgb.dtype == np.uint8
    expected = tuple(int((0.25 + 0.5 * c / 255) * 255 + 0.5) for c in (214, 39, 40))  # 0.5 grey half-half #d62728
    assert tuple(rgb[7, 7]) == expected == (171, 83, 84)
    assert tuple(rgb[5, 5]) == (214, 39, 40)  # boundary pixels are opaque
    assert tuple(rgb[0, 0]) == (128, 128, 128)


def test_sliders_have_one_frame_per_time_point(cohort):
    seq = cohort[0]
    fig = F.sequence_slider(seq.images, seq.dense, seq.spacing, title="seq")
    assert len(fig.frames) == T and len(fig.layout.sliders[0].steps) == T
    assert fig.data[0].source.startswith("data:image/png;base64,")
    fig = F.prediction_slider(seq, {"3D dense": seq.dense, "2D sparse": seq.dense}, title="pred")
    assert len(fig.frames) == T and len(fig.frames[0].data) == 2
    assert fig.data[0].source.startswith("data:image/jpeg;base64,") and fig.frames[0].name == "frame 0 (ED)"
    assert fig.layout.updatemenus[0].buttons[0].label == "play"


def test_setup_plotly_renders_html_without_plotlyjs():
    import plotly.graph_objects as go
    import plotly.io as pio

    F.setup_plotly()
    assert pio.renderers.default.endswith("echo_book")
    bundle = pio.renderers["echo_book"].to_mimebundle(go.Figure(go.Scatter(x=[1], y=[2])).to_dict())
    assert "Plotly.newPlot" in bundle["text/html"] and "plotly.js v" not in bundle["text/html"]
