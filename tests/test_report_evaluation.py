"""Tests of :mod:`echo_utils.report.evaluation` (what notebook 05 shows around its tables) and of the Fig. 2 view of
:mod:`echo_utils.report.fig2_summary`, on the hand-made sequences of ``test_report.py`` (known answers)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_report import _jitter, _sequence

from echo_utils.report import evaluation as E
from echo_utils.report import fig2_summary as F2
from echo_utils.report import smoothness as S
from echo_utils.report import tables as TB


@pytest.fixture(scope="module")
def cohort():
    return [_sequence(f"patient000{i}", v, shrink=1.0 + 0.2 * i) for i in (1, 2, 3) for v in ("2CH", "4CH")]


@pytest.fixture(scope="module")
def preds(cohort):
    return {"3d_dense": {s.key: s.dense for s in cohort}, "2d_sparse": {s.key: _jitter(s.dense) for s in cohort}}


def test_models_and_test_set_lines(cohort, preds, tmp_path):
    assert E.evaluated_models(preds, tmp_path) == ["2d_sparse", "3d_dense"]  # labels.ALL_MODELS order
    with pytest.raises(RuntimeError, match=f"no predictions under {tmp_path}: run notebook 04 first"):
        E.evaluated_models({}, tmp_path)
    keys = [f"k{i}" for i in range(6)]
    lines = E.test_set_lines(cohort, {"2d_sparse": preds["2d_sparse"]}, {"2d_dense": keys},
                             ["2d_sparse", "2d_dense"])
    assert lines[0] == "6 test sequences of 3 patients; dense reference: ['exact']"
    assert lines[1].endswith("2D sparse: 6/6 sequences predicted")
    assert lines[2].endswith("0/6 sequences predicted  (missing: k0, k1, k2, k3...)")  # 4 named, then "..."
    assert E.test_set_lines(cohort, {}, {"x": keys[:2]}, [])[1:] == []


def test_ef_mae_statement_and_volume_tables(cohort):
    ref = TB.lv_indices(cohort, lambda s: s.labels)
    auto = {"3d_dense": TB.lv_indices(cohort, lambda s: s.dense),
            "2d_sparse": TB.lv_indices(cohort, lambda s: np.where(s.dense == 2, 1, s.dense))}
    t2 = TB.table2(auto, ref)
    a, b = t2.loc["3d_dense", ("EF", "mae")], t2.loc["2d_sparse", ("EF", "mae")]
    assert E.ef_mae_statement(t2) == (f"EF MAE: 3D dense {a:.1f} vs 2D sparse {b:.1f} points -> within 2 points of "
                                      "2D sparse or better")
    worse = t2.copy()
    worse.loc["3d_dense", ("EF", "mae")] = b + 2.5  # the control: 2.5 points worse is beyond the margin
    assert E.ef_mae_statement(worse).endswith("more than 2 points worse than 2D sparse")
    assert "not both evaluated" in E.ef_mae_statement(t2.drop(index="3d_dense"))
    per_patient, mae = E.volume_error_tables(TB.volume_errors(auto, ref))
    assert "per test patient and model" in per_patient.to_html() and "Mean absolute errors" in mae.to_html()



def test_ef_error_sources_name_the_volume_that_moves_the_ef():
    """Hand-made Table 2 biases: a model that over-segments at ES (ESV +5 mL) and under-segments at ED (EDV -2 mL)
    lowers the EF through both; the opposite signs raise it; a zero bias leaves it; a model without an EF is left
    out."""
    cols = pd.MultiIndex.from_tuples([(q, "bias") for q in ("EDV", "ESV", "EF")], names=["index", "stat"])
    t2 = pd.DataFrame([[-2.0, 5.0, -6.0], [3.0, -1.5, 2.0], [0.0, 0.0, 0.0], [1.0, 1.0, float("nan")]],
                      index=["3d_dense", "2d_sparse", "2d_dense", "3d_sparse"], columns=cols)
    assert E.ef_error_sources(t2) == [
        "3D dense: EF bias -6.0 points; EDV bias -2.0 mL (lowers the EF), ESV bias +5.0 mL (lowers the EF)",
        "2D sparse: EF bias +2.0 points; EDV bias +3.0 mL (raises the EF), ESV bias -1.5 mL (raises the EF)",
        "2D dense: EF bias +0.0 points; EDV bias +0.0 mL (leaves the EF), ESV bias +0.0 mL (leaves the EF)",
    ]

def test_smoothness_records_and_views(cohort, preds):
    smooth = S.smoothness_table(preds, cohort)
    ordering = S.median_ordering(smooth)
    record = E.smoothness_record(ordering)
    assert record["smoothness_ordering"]["LV"] is True  # the jittery 2D sparse is rougher than 3D dense
    assert record["smoothness_median"] == TB.flatten(ordering.drop(columns="holds").T, digits=12)
    medians = E.smoothness_medians(smooth)
    assert medians.loc["LV", "2d_sparse"] > medians.loc["LV", "3d_dense"]
    text, ours, paper = E.fig3_view(ordering, smooth)
    assert text.data.startswith("**Computed from this run** (medians over test sequences;")
    assert "Median smoothness of this run" in ours.to_html() and "read off the figure" in paper.to_html()
    fig = E.fig3_figure(smooth, (48, 40), "px")
    assert "at 48×40" in fig.layout.title.text and "px²/frame³" in fig.layout.yaxis.title.text
    assert "mm⁴" in E.fig3_figure(smooth, (48, 40), "mm").layout.yaxis.title.text

    even_odd = S.even_odd_table(preds, cohort)
    eo = E.even_odd_record(even_odd)["even_odd_median"]
    assert eo["LV 2d_sparse"] > eo["LV 3d_dense"]  # the jitter alternates between even and odd frames
    assert len(E.even_odd_view(even_odd)) == 2

    inc = S.inconsistency_summary(smooth)
    rec = E.inconsistency_record(inc)["inconsistency"]
    assert set(rec) == {f"{s} {m}" for s, m in inc.index} and set(rec["LV 3d_dense"]) == {"frames", "sequences"}
    text, table = E.inconsistency_view(inc, "the dense reference")
    assert "(bounds: the dense reference)" in text.data and "violate the threshold" in table.to_html()
    assert len(E.inconsistency_fig(inc).data) > 0


def test_fig4_sequence_and_masked_comparison(cohort, tmp_path):
    assert E.fig4_sequence(cohort).key == "patient0001_4CH"  # the first test patient, 4CH view
    assert E.fig4_sequence(cohort, "patient0002").key == "patient0002_4CH"
    assert E.fig4_sequence([s for s in cohort if s.view == "2CH"], "patient0003").key == "patient0003_2CH"
    with pytest.raises(ValueError, match=r"evaluation.patient = 'nobody' is not a test patient"):
        E.fig4_sequence(cohort, "nobody")
    assert E.masked_comparison(["2d_sparse", "3d_dense"], None, None, None, None) is None
    assert E.masked_record(None) == {}
    assert "3d_dense_masked" in E.masked_view(None, "px", "px").data


def test_write_summary_keeps_its_layout(tmp_path):
    summary = {"profile": "ci", "table2": {"a|b": 1.5}, "path": tmp_path}
    path = E.write_summary(tmp_path, summary)
    assert path == tmp_path / "evaluation_summary.json"
    assert path.read_text() == json.dumps(summary, indent=1, default=str)  # the bytes the notebook wrote


def test_fig2_statements_and_view(cohort):
    from echo_utils.report import fig2

    labels = {s.key: {"forward": _jitter(s.dense), "backward": _jitter(s.dense), "bidirectional": s.dense}
              for s in cohort}
    pl = fig2.score_pseudo_labels(cohort, labels, progress=False)
    videos = F2.fig2_videos(pl)
    lines = F2.fig2_statements(videos, pl, "dlir")
    assert lines == F2.direction_statements(videos) + F2.control_statements(pl, "dlir") and lines
    text, table = F2.fig2_view(lines, videos, label="this run (ci)")
    assert text.data.splitlines()[2] == f"- {lines[0]}" and "this run (ci)" in table.to_html()
