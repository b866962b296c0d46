"""echo_utils.report.registration: the registration chapter's sentences, computed from hand-made logs and tables
with known answers (the counts of a tiny cohort, a log whose NCC rises, a network twice as fast)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from echo_utils.registration import frame_pairs
from echo_utils.report import registration as R

from test_pseudolabels import moving_sequence


def test_bspline_weights_figure_is_titled_with_its_grid():
    fig = R.bspline_weights_figure()
    assert fig.layout.title.text == "Cubic B-spline weights of 5 control points along one axis (spacing s = 16 px)"
    assert fig.layout.height == 360 and len(fig.data) == 5 + 1
    # partition of unity where four control points overlap: between the centres of control points 1 and 3
    assert np.allclose(np.asarray(fig.data[-1].y)[24:56], 1) and fig.data[-1].y[0] < 0.9


def test_data_statements_count_the_pairs_and_the_epochs():
    train = [moving_sequence(t=4, patient=f"patient000{i}") for i in (1, 2)]
    val, test = train[:1], train
    config = SimpleNamespace(grid_spacing=8, iterations=30, batch_size=4)
    n_pairs = len(frame_pairs(train))
    assert n_pairs == 2 * 4 * 3  # every ordered pair a != b of two 4-frame sequences
    assert R.data_statements(train, val, test, config) == [
        f"2 training sequences (2 patients), {n_pairs} ordered frame pairs; 1 validation and 2 test sequences; "
        "images 64x64 px",
        f"control grid: 8x8 points, spacing 8 px; 30 iterations of batch 4 = {30 * 4 / n_pairs:.1f} epochs"]


def test_validation_statement_from_the_first_and_last_validation_rows():
    log = pd.DataFrame({"iteration": [0, 10, 10, 20], "split": ["val", "train", "val", "val"],
                        "ncc": [0.5, 0.9, 0.6, 0.75], "bending": [0.0, 1.0, 2e-3, 3e-3]})
    assert R.validation_statement(log) == ("Validation NCC: **0.5000** without registration (identity) → "
                                           "**0.7500** after 20 iterations; bending energy 3.00e-03 px⁻².")


def test_speed_statement_ratio_of_times_and_of_ncc_gains():
    net = pd.DataFrame({"seconds": [0.01, 0.03], "ncc_before": [0.5, 0.5], "ncc_after": [0.6, 0.7]})
    inst = pd.DataFrame({"seconds": [0.2, 0.6], "ncc_before": [0.5, 0.5], "ncc_after": [0.7, 0.9]})
    line = R.speed_statement(net, inst, 30)
    assert line == ("The network is **20×** faster per pair than the instance optimisation here and recovers "
                    "**50 %** of its NCC gain on unseen pairs, after 30 training iterations (the paper trains "
                    "10,000).")
    with pytest.raises(AttributeError):
        R.speed_statement(net.drop(columns="seconds"), inst, 30)


def test_evaluate_pairs_and_the_ed_es_examples_figure():
    import torch

    from echo_utils.registration import sample_pairs

    seqs = [moving_sequence(t=5, patient=f"patient000{i}") for i in (1, 2, 3, 4)]
    fixed, moving, info = sample_pairs(seqs, n_random=R.RANDOM_PAIRS, seed=0)
    zero = lambda f, m: torch.zeros(f.shape[0], 2, *f.shape[-2:])  # noqa: E731  (the identity)
    tables, disp, lines = R.evaluate_pairs({"none": zero}, fixed, moving, info)
    assert np.allclose(tables["none"].ncc_after, tables["none"].ncc_before) and not disp["none"].any()
    assert lines[0].startswith(f"none: {len(fixed)} pairs in ") and lines[0].endswith(" ms per pair)")
    fig = R.ed_es_pairs_figure(fixed, moving, disp["none"], info, grid_spacing=8, method="none")
    ed_es = [p["key"] for p in info if p["kind"] == "ED<-ES"][:3]
    assert len(ed_es) == 3 and fig.layout.height == 260 * 3 + 80
    assert [fig.layout[f"yaxis{1 + 5 * r if r else ''}"].title.text for r in range(3)] == ed_es
    assert fig.layout.title.text.startswith("ED registered to ES on test patients") and "every 2 control" in \
        fig.layout.title.text
