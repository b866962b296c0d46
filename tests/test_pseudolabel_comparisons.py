"""Tests of the pseudo-label chapter's comparison runs (pseudolabels.compare) and tables (report.fig2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from echo_utils.pseudolabels import compare
from echo_utils.pseudolabels.propagate import PseudoLabels
from echo_utils.registration import IdentityRegistration, MemoizedRegistration
from echo_utils.report import fig2
from test_pseudolabels import CentroidTranslation, moving_sequence


def test_assembly_variants_scale_the_authors_closing():
    assert list(compare.assembly_variants(512)) == ["sdf", "argmax", "argmax + 5×5 closing", "sdf, paper weights"]
    assert "argmax + 3×3 closing" in compare.assembly_variants(128)  # 5 * 128 / 512 rounds to 1 -> at least 3
    assert compare.assembly_variants(1024)["argmax + 11×11 closing"]["closing"] == 11


def test_unclaimed_pixels_counts_holes_inside_the_heart():
    seq = moving_sequence(t=3)
    fwd = np.ones((3, 64, 64), np.uint8)
    pl = PseudoLabels(forward=fwd, backward=fwd, bidirectional=fwd)
    fused = {seq.key: {"argmax": np.where(np.arange(64) < 4, 0, 1).astype(np.uint8)[None].repeat(64, 0)[None]
                       .repeat(3, 0), "sdf": fwd}}
    assert compare.unclaimed_pixels([seq], {seq.key: pl}, fused) == {"argmax": 3 * 64 * 4, "sdf": 0}


def test_study_and_mode_pseudo_labels(tmp_path):
    from echo_utils.config import PseudoLabelConfig

    seqs = [moving_sequence(t=5, patient=f"patient000{i}") for i in (1, 2, 3)]
    regs = {"dlir": MemoizedRegistration(CentroidTranslation()), "instance": CentroidTranslation(),
            "identity": IdentityRegistration()}
    cfg = PseudoLabelConfig(compare_instance=True, instance_sequences=1)
    labels = compare.study_pseudo_labels(regs, "dlir", seqs[:2], seqs[1:], tmp_path, cfg, progress=False)
    assert set(labels["dlir"]) == {s.key for s in seqs} and len(labels["instance"]) == 1
    assert set(labels["identity"]) == {s.key for s in seqs[1:]}
    assert (tmp_path / "dlir" / "patient0001").is_dir() and not (tmp_path / "dlir" / "patient0003").exists()
    np.testing.assert_array_equal(labels["dlir"][seqs[2].key].forward, seqs[2].dense)  # exact translation
    by_mode = compare.mode_pseudo_labels(regs, {"dlir": seqs, "identity": seqs}, {"dlir": ("sequential", "fixed"),
                                         "identity": ("sequential",)}, tmp_path, cfg)
    assert set(by_mode) == {("dlir", "sequential"), ("dlir", "fixed"), ("identity", "sequential")}
    assert len(list((tmp_path / "comparison").iterdir())) == 3  # instance (study), dlir x 2 modes; identity not


def test_mode_table_and_statements_from_scores():
    rows = []
    for method, mode, dice in (("dlir", "sequential", 0.90), ("dlir", "composed", 0.95), ("identity", "sequential", 0.80)):
        for kind in ("forward", "backward", "bidirectional"):
            for s in ("LV", "MYO"):
                for key in ("a", "b"):
                    rows.append(dict(method=method, mode=mode, kind=kind, structure=s, key=key, dice=dice, hd_px=3.0))
    table = fig2.mode_table(pd.DataFrame(rows))
    assert table.loc[("dlir", "composed"), ("dice", "LV", "bidirectional")] == pytest.approx(0.95)
    lines = fig2.mode_statements(table, "dlir", "sequential")
    assert any("gain +0.100" in line for line in lines)
    assert lines[-1].startswith("dlir: best mode") and "'composed'" in lines[-1]


def test_phase_curve_bins():
    scores = pd.DataFrame(dict(method="m", structure="LV", kind="forward", phase=[0.0, 0.05, 0.5, 1.0],
                               dice=[1.0, 0.8, 0.6, 0.2]))
    curve = fig2.phase_curve(scores, "m", bins=10)
    assert curve.set_index("bin")["dice"].to_dict() == {0: pytest.approx(0.9), 5: 0.6, 9: 0.2}
    assert curve["phase"].iloc[0] == pytest.approx(0.05)
