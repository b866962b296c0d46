"""echo_utils.report.pseudo_labels: what notebook 03 shows, computed from hand-made sequences whose answers are
known (exact labels score Dice 1; a copied ED label is the identity's; a missing file says so)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from echo_utils.config import PseudoLabelConfig, display_path
from echo_utils.fusion import PseudoLabels
from echo_utils.report import fig2
from echo_utils.report import pseudo_labels as R

from test_pseudolabels import identity_registration, moving_sequence


@pytest.fixture(scope="module")
def cohort():
    seqs = [moving_sequence(t=5 + i, patient=f"patient000{i}", start=(22, 18 + i)) for i in (1, 2, 3)]
    exact = {s.key: PseudoLabels(forward=s.dense.copy(), backward=s.dense.copy(), bidirectional=s.dense.copy())
             for s in seqs}
    copied = {s.key: PseudoLabels(forward=np.repeat(s.dense[:1], s.n_frames, 0),
                                  backward=np.repeat(s.dense[-1:], s.n_frames, 0), bidirectional=s.dense.copy())
              for s in seqs[:2]}
    return seqs, {"dlir": exact, "identity": copied}


def test_example_and_its_statement(cohort):
    seqs, _ = cohort
    ex, frames = R.example_sequence(seqs)
    assert ex is seqs[-1] and frames == {"ED": 0, "mid-sequence": (0 + ex.es) // 2, "ES": ex.es}
    assert R.sequence_statement(ex) == f"{ex.key}: 8 frames of 64×64 px, ED = frame 0, ES = frame 7"
    assert R.labels_statement({"a": {1: 0, 2: 0}, "b": {1: 0}}, 1.25) == \
        "pseudo-labels of a: 2 sequences, b: 1 sequences in 1.2 s (cached ones are read back)"


def test_scores_of_every_set_on_its_own_sequences_and_their_files(cohort, tmp_path):
    seqs, labels = cohort
    scores = R.score_sets(seqs, labels, progress=False)
    assert set(scores.groupby("method")["key"].nunique().items()) == {("dlir", 3), ("identity", 2)}
    exact = scores[scores.method == "dlir"]
    assert np.allclose(exact["dice"], 1)  # exact labels
    expected = fig2.score_pseudo_labels(seqs[:2], labels["identity"], method="identity", progress=False)
    pd.testing.assert_frame_equal(scores[scores.method == "identity"].reset_index(drop=True), expected)
    videos = fig2.per_video(scores)
    line = R.write_scores(tmp_path, scores, videos)
    from echo_utils.artifacts import files

    assert line == f"{len(scores)} frame scores, {len(videos)} video means -> " \
                   f"{display_path(tmp_path / files.PSEUDO_LABEL_SCORES)}"
    back = pd.read_csv(tmp_path / files.PSEUDO_LABEL_VIDEOS)
    assert len(back) == len(videos) and np.allclose(back["dice"], videos["dice"])
    main = videos[videos.method == "dlir"]
    figs = R.fig2_figures(main, "dlir")
    assert [f.layout.title.text for f in figs] == [
        f"Fig. 2 (dlir): per-video mean Dice, MAD and HD over ED→ES, {u} (3 unseen sequences)"
        for u in ("pixels at 512×512", "mm")]
    styled = R.direction_table(main, "dlir")
    assert styled.caption.startswith("Medians over 3 videos (dlir)")
    assert np.allclose(styled.data["median_bidirectional"].xs("dice", level="metric"), 1)
    reg = R.registration_table(videos, seqs, "dlir")
    assert "3 for dlir" in reg.caption and ("dice", "LV") in reg.data.columns
    assert set(reg.data.index) == {"dlir", "identity", "identity (forward)"}
    assert R.shared_keys(seqs, labels) == [s.key for s in seqs[:2]]


def test_the_assembly_rules_on_exact_directions_leave_no_hole(cohort):
    seqs, labels = cohort
    table, lines = R.assembly_comparison(seqs, labels["dlir"], "dlir")
    assert list(table.data.index)[:2] == ["sdf", "argmax"] and table.caption.startswith("Median per-video Dice")
    plain = [r for r in table.data.index if "closing" not in r]  # a closing reshapes even the truth
    assert len(plain) == 3 and np.allclose(table.data.loc[plain, ("dice", "LV")], 1)  # exact directions: the truth
    assert lines[0] == "pixels inside the heart in both directions but assigned to background: {'argmax': 0, 'sdf': 0}"
    assert lines[1].startswith("LV: sdf vs argmax: median Dice 1.000 vs 1.000 (at least as good)")


def test_mode_scores_of_the_identity_copy_the_ed_label(cohort, tmp_path):
    seqs, labels = cohort
    scores = R.mode_scores({"identity": identity_registration}, seqs, labels, tmp_path, PseudoLabelConfig())
    assert set(scores["mode"]) == {"sequential"} and set(scores["method"]) == {"identity"}
    assert set(scores["key"]) == {s.key for s in seqs[:2]}  # the sequences of the identity's set
    first = scores[(scores.kind == "forward") & (scores.frame == 0)]
    assert np.allclose(first["dice"], 1)  # at ED the copied label is the truth
    assert (scores[(scores.kind == "forward") & (scores.frame == 3)]["dice"] < 1).all()  # the heart moved


def test_mid_sequence_mean_of_the_middle_bins():
    curve = pd.DataFrame({"structure": ["LV"] * 4, "kind": ["forward"] * 4, "bin": [3, 4, 5, 6],
                          "dice": [0.1, 0.5, 0.7, 0.9]})
    styled = R.mid_sequence_table(curve)
    assert styled.data.loc["LV", "forward"] == pytest.approx(0.6)
    assert styled.caption == "Mean Dice at mid-sequence (phase 0.4 to 0.6)"


def test_yardstick_needs_notebook_02s_comparison(tmp_path):
    from echo_utils.artifacts import files

    assert R.yardstick(tmp_path) == (None, "yardstick from notebook 02's end-point error: none (no comparison on "
                                           "real data)")
    pd.DataFrame({"kind": ["step"] * 3, "registration": ["identity", "instance", "elastix"],
                  "epe_px": [0.6, 0.3, 0.2]}).to_csv(tmp_path / files.REGISTRATION_COMPARISON, index=False)
    assert R.yardstick(tmp_path) == ("elastix", "yardstick from notebook 02's end-point error: elastix")


class _Counting:
    def __init__(self):
        self.pairs = 0

    def __call__(self, fixed, moving):
        self.pairs += fixed.shape[0]
        return torch.zeros(fixed.shape[0], 2, *fixed.shape[-2:])


def test_time_per_pair_leaves_the_identity_out_and_times_references_on_fewer_pairs():
    seq = moving_sequence(t=12)
    regs = {"dlir": _Counting(), "instance": _Counting(), "identity": _Counting()}
    line = R.pair_time_statement(regs, seq, "dlir")
    assert regs["identity"].pairs == 0
    assert regs["dlir"].pairs == 1 + R.TIMED_PAIRS["network"] and regs["instance"].pairs == 1 + R.TIMED_PAIRS["reference"]
    assert line.startswith("time per image pair (64×64 px, this run): dlir ") and "(1× dlir)" in line
    assert "instance" in line and "identity" not in line
