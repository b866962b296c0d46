"""Tests of :mod:`echo_utils.report.cohort_figures`: the figures notebook 01 shows of a cohort, on the overview of a
3-patient synthetic cohort (which panels, which traces, which values)."""

from __future__ import annotations

import numpy as np
import pytest

from echo_utils.config import load_config
from echo_utils.report import cohort, cohort_figures
from echo_utils.rundir import RunPaths
from echo_utils.study import Study


@pytest.fixture(scope="module")
def overview(tmp_path_factory):
    cfg = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 3, "frames": [4, 5], "size": 48}})
    study = Study.of(cfg, RunPaths(tmp_path_factory.mktemp("c") / "run"))
    return cohort.cohort_overview(study.read_sequences(study.cohort.keys()), study.cohort.views), study


def test_quality_order():
    assert cohort_figures.quality_order({"Poor", "Zebra", "Good", "Alpha"}) == ["Good", "Poor", "Alpha", "Zebra"]


def test_gallery_one_panel_per_quality_view_and_phase(overview):
    ov, study = overview
    fig = cohort_figures.gallery_figure(ov.examples, study.cohort.views)
    n_rows = len(ov.examples)
    assert len(fig.data) == n_rows * 4  # 2 views x (ED, ES)
    titles = [a.text for a in fig.layout.annotations]
    q = cohort_figures.quality_order(ov.examples)[0]
    s = {x.view: x for x in ov.examples[q]}["2CH"]
    assert titles[:2] == [f"{q}: {s.patient} 2CH ED", f"{q}: {s.patient} 2CH ES"]


def test_sequence_figure_has_one_frame_per_image(overview):
    ov, _ = overview
    fig = cohort_figures.sequence_figure(ov.example)
    assert len(fig.frames) == ov.example.n_frames
    assert ov.example.key in fig.layout.title.text and "exact dense labels" in fig.layout.title.text


def test_area_curves_are_the_overview_curves(overview):
    ov, _ = overview
    fig = cohort_figures.area_curves_figure(ov.curves, ov.example.dense_kind)
    assert len(fig.data) == 3 * len(ov.curves)
    key, q, areas = ov.curves[0]
    np.testing.assert_allclose(fig.data[0].y, areas[1])
    np.testing.assert_allclose(fig.data[0].x, np.linspace(0, 1, len(areas[1])))
    assert fig.data[0].line.color == cohort_figures.QUALITY_COLORS.get(q, "#1f77b4")
    assert sum(t.showlegend is not False for t in fig.data) == len({c[1] for c in ov.curves})  # one legend per quality


def test_cohort_figure_panels(overview):
    ov, _ = overview
    fig = cohort_figures.cohort_figure(ov.table)
    scatter, identity, hist, bars = fig.data
    np.testing.assert_allclose(scatter.y, ov.table["biplane EF (%)"])
    assert list(identity.x) == list(cohort_figures.EF_RANGE)
    np.testing.assert_array_equal(hist.x, ov.table["frames"])
    assert sum(bars.y) == len(ov.table)  # every patient counted in one quality
    one_view = cohort_figures.cohort_figure(ov.table.drop(columns=["biplane EF (%)"]))
    assert [t.type for t in one_view.data] == ["histogram", "bar"]  # no EF scatter without both views
