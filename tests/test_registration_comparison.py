"""The references' tuning rule and the five-way registration comparison (echo_utils.registration.evidence, data;
echo_utils.report.registration_comparison, presentation), on tiny arrays with analytic answers: a known constant
shift has end-point error 0 for the exact registration and |shift| for the identity; a field that reverses the
columns of half the image folds exactly that half."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import gaussian_filter

from echo_utils.config import load_config
from echo_utils.registration import IdentityRegistration, warp
from echo_utils.registration.evidence import (
    choose_setting,
    comparison_summary,
    registration_comparison,
    yardstick,
)
from echo_utils.report import registration_comparison as rc

ROOT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------------------------------------------
# tuning: the selection rule on a fake sweep (no registration runs)


def _sweep(epes):
    return [{"settings": {"w": w}, "step": {"epe_px": e}} for w, e in epes]


def test_choose_setting_picks_the_minimum_step_epe():
    c = choose_setting(_sweep([(1, 0.40), (10, 0.21), (100, 0.25)]), identity_epe=0.5)
    assert c == {"settings": {"w": 10}, "step_epe_px": 0.21, "identity_step_epe_px": 0.5, "beats_identity": True}


def test_choose_setting_skips_a_diverged_candidate_and_flags_a_reference_that_cannot_beat_identity():
    c = choose_setting(_sweep([(1, float("nan")), (10, 0.61), (100, 0.55)]), identity_epe=0.5)
    assert c["settings"] == {"w": 100} and c["beats_identity"] is False
    with pytest.raises(ValueError, match="finite"):
        choose_setting(_sweep([(1, float("nan"))]), identity_epe=0.5)


def test_yardstick_refuses_a_reference_that_does_not_beat_identity():
    # InstanceBSpline worse than no motion: never the yardstick, whatever the others do
    assert yardstick({"instance": 0.71, "elastix": 0.30, "optical_flow": 0.25}, 0.60) == "optical_flow"
    assert yardstick({"instance": 0.71, "elastix": 0.62}, 0.60) is None
    assert yardstick({"dlir": 0.1, "instance": 0.4}, 0.60) == "instance"  # the network is not a reference
    best, lines = rc.yardstick_statements({"instance": 0.71, "elastix": 0.30}, 0.60)
    assert best == "elastix"
    assert "NOT below" in lines[0] and "not used as the yardstick" in lines[0]
    assert "Yardstick: elastix" in lines[-1]
    best, lines = rc.yardstick_statements({"instance": 0.71}, 0.60)
    assert best is None and "No reference beats" in lines[-1]


def test_demo_profile_holds_the_tuned_reference_settings():
    """The demo's reference settings are the ones bench_reference_tuning.py chose on the training patients."""
    path = ROOT / "benchmarks" / "results" / "reference_tuning.json"
    if not path.exists():
        pytest.skip("no reference_tuning.json")
    res = json.loads(path.read_text())
    r = load_config(ROOT / "notebooks" / "params" / "demo.yaml").registration
    for method, chosen in res["chosen"].items():
        assert chosen["beats_identity"], f"{method}: the tuned setting does not beat the identity"
        for key, value in chosen["settings"].items():
            have = getattr(r, key) if method == "instance" else getattr(getattr(r, method), key)
            assert have == value, f"demo.yaml registration.{'' if method == 'instance' else method + '.'}{key}"


# ----------------------------------------------------------------------------------------------------------------
# the comparison on a known shift


class _Exact:
    """A registration that returns a given field (the exact answer)."""

    needs_grad = False

    def __init__(self, u):
        self.u = torch.as_tensor(u, dtype=torch.float32)

    def __call__(self, fixed, moving):
        return self.u[: fixed.shape[0]].clone()


def _shift_pairs(n=2, shape=(24, 32), d=(1.5, -2.0)):
    rng = np.random.default_rng(0)
    moving = np.stack([gaussian_filter(rng.random(shape), 2.0) for _ in range(n)]).astype(np.float32)
    truth = np.zeros((n, 2, *shape), np.float32)
    truth[:, 0], truth[:, 1] = d
    fixed = warp(torch.from_numpy(moving)[:, None], torch.from_numpy(truth))[:, 0].numpy()
    mask = np.zeros((n, *shape), bool)
    mask[:, 6:18, 8:24] = True
    info = [{"key": f"s{i}", "fixed": 1, "moving": 0, "kind": "step"} for i in range(n)]
    return {"fixed": fixed, "moving": moving, "truth": truth, "mask": mask, "info": info}


def _folding_field(n, shape):
    """u_x = -2 x in the top half of the rows (det J = 1 - 2 = -1: folded), 0 below (det J = 1)."""
    u = np.zeros((n, 2, *shape), np.float32)
    u[:, 1, : shape[0] // 2] = -2.0 * np.arange(shape[1], dtype=np.float32)
    return u


def test_registration_comparison_on_a_known_shift():
    pairs = _shift_pairs()
    n, shape = len(pairs["info"]), pairs["fixed"].shape[1:]
    regs = {"identity": IdentityRegistration(), "exact": _Exact(pairs["truth"]),
            "folding": _Exact(_folding_field(n, shape))}
    table = registration_comparison(regs, pairs)
    assert len(table) == 3 * n and list(dict.fromkeys(table.registration)) == list(regs)
    by = table.set_index(["registration", "key"])
    shift = math.hypot(1.5, -2.0)
    for key in ("s0", "s1"):
        assert by.loc[("exact", key), "epe_px"] == pytest.approx(0.0, abs=1e-6)
        assert by.loc[("identity", key), "epe_px"] == pytest.approx(shift, rel=1e-6)
        assert by.loc[("identity", key), "identity_epe_px"] == pytest.approx(shift, rel=1e-6)
        assert by.loc[("identity", key), "ncc_gain"] == pytest.approx(0.0, abs=1e-7)
        assert by.loc[("exact", key), "ncc_gain"] > 0.05  # the warped moving image is the fixed image
        assert by.loc[("exact", key), "folding"] == 0.0 and by.loc[("identity", key), "folding"] == 0.0
        assert by.loc[("folding", key), "folding"] == pytest.approx(0.5)  # exactly the top half folds

    summary = comparison_summary(table, network="exact")
    s = summary.set_index("registration")
    assert list(s.index) == list(regs) and set(summary.kind) == {"step"}
    assert s.loc["identity", "epe_ratio_to_identity"] == pytest.approx(1.0)
    assert s.loc["exact", "epe_ratio_to_identity"] == pytest.approx(0.0, abs=1e-6)
    assert s.loc["exact", "seconds_over_network"] == pytest.approx(1.0)
    assert s.loc["folding", "pairs_folded"] == 1.0 and s.loc["exact", "pairs_folded"] == 0.0
    assert s.loc["exact", "pairs_ncc_improved"] == 1.0


def test_registration_comparison_rejects_an_empty_mask():
    pairs = _shift_pairs()
    pairs["mask"][1] = False
    with pytest.raises(ValueError, match="non-empty mask"):
        registration_comparison({"identity": IdentityRegistration()}, pairs)


def _fake_summary(epe: dict, seconds: dict) -> pd.DataFrame:
    ident = epe["identity"]
    return pd.DataFrame([{"kind": "step", "registration": k, "n_pairs": 4, "epe_px": e, "epe_ratio_to_identity": e / ident,
                          "ncc_gain": 0.01, "pairs_ncc_improved": 1.0, "folding": 0.0, "pairs_folded": 0.0,
                          "seconds_per_pair": seconds[k], "seconds_over_network": seconds[k] / seconds["dlir"]}
                         for k, e in epe.items()])


def test_comparison_statements_and_table():
    epe = {"identity": 0.60, "dlir": 0.30, "instance": 0.71, "elastix": 0.20, "optical_flow": 0.25}
    sec = {"identity": 1e-4, "dlir": 0.01, "instance": 0.4, "elastix": 2.0, "optical_flow": 0.2}
    summary = _fake_summary(epe, sec)
    lines = rc.comparison_statements(summary, "dlir")
    text = "\n".join(lines)
    assert "InstanceBSpline: end-point error 0.710 px is NOT below" in text
    assert "Yardstick: elastix B-spline" in text
    assert "50% of the identity's" in text and "1.50× the yardstick" in text
    assert "elastix B-spline 200× slower" in text
    table = rc.comparison_table(summary)
    assert list(table.index)[:2] == ["identity (no motion)", "DLIR network"]
    assert table.loc["elastix B-spline", "time / network's"] == pytest.approx(200.0)
    fig = rc.comparison_figure(pd.DataFrame([{"registration": k, "kind": "step", "epe_px": v, "ncc_gain": 0.0,
                                              "seconds": sec[k]} for k, v in epe.items()]))
    assert len(fig.data) == 3 * len(epe)


def test_label_comparison_is_paired_and_states_the_gain_over_identity():
    rows = []
    for m, dice in {"identity": 0.80, "dlir": 0.85, "elastix": 0.90, "instance": 0.88}.items():
        keys = ["a", "b"] if m != "instance" else ["a"]  # instance registered one video only: left out
        for key in keys:
            for kind in ("forward", "backward", "bidirectional"):
                for s in ("LV", "MYO"):
                    rows.append({"method": m, "key": key, "kind": kind, "structure": s,
                                 "dice": dice + (0.02 if key == "b" else 0.0), "hd_px": 10 * (1 - dice)})
    long = rc.label_comparison(pd.DataFrame(rows), ["a", "b"])
    assert set(long.registration) == {"identity", "dlir", "elastix"}
    got = long.set_index(["registration", "kind", "structure"])
    assert got.loc[("dlir", "bidirectional", "LV"), "dice"] == pytest.approx(0.86)  # median of 0.85 and 0.87
    assert got.loc[("dlir", "bidirectional", "LV"), "n_videos"] == 2
    wide = rc.label_comparison_table(long)
    assert list(wide.index) == ["identity (no motion)", "DLIR network", "elastix B-spline"]
    assert wide.shape[1] == 2 * 2 * 3
    lines = rc.label_comparison_statements(long, "dlir", "elastix")
    assert lines[0].startswith("LV: bidirectional median Dice, identity 0.810")
    assert "DLIR network 0.860 (+0.050)" in lines[0] and "minus the yardstick elastix B-spline: -0.050" in lines[0]


def test_summary_yardstick_and_load_comparison(tmp_path):
    from echo_utils.artifacts.files import REGISTRATION_COMPARISON as COMPARISON_METRICS
    from echo_utils.registration.evidence import load_comparison, summary_yardstick

    summary = _fake_summary({"identity": 0.60, "dlir": 0.30, "instance": 0.71, "elastix": 0.20},
                            {"identity": 1e-4, "dlir": 0.01, "instance": 0.4, "elastix": 2.0})
    assert summary_yardstick(summary) == "elastix"
    assert summary_yardstick(summary, kind="ed_es") is None  # no rows of that kind: no control, no yardstick
    assert load_comparison(tmp_path) is None
    summary.to_csv(tmp_path / COMPARISON_METRICS, index=False)
    assert summary_yardstick(load_comparison(tmp_path)) == "elastix"
    (tmp_path / COMPARISON_METRICS).write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a registration comparison"):
        load_comparison(tmp_path)


def test_pair_seconds_times_every_registration():
    from echo_utils.registration import MemoizedRegistration
    from echo_utils.registration.evidence import pair_seconds

    images = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    t = pair_seconds({"identity": MemoizedRegistration(IdentityRegistration()), "id2": IdentityRegistration()},
                     images, {"identity": 3, "id2": 1})
    assert set(t) == {"identity", "id2"} and all(v > 0 for v in t.values())


def test_demo_instance_reference_uses_the_networks_loss():
    """Issue 21 item 2: InstanceBSpline optimises the network's loss (same bending weight, its rescaling, the NCC's
    smoothing and mask, the grid), so the per-pair reference is a fair one; only its optimiser is tuned."""
    from echo_utils.registration import registration_from_config

    r = load_config(ROOT / "notebooks" / "params" / "demo.yaml").registration
    inst = registration_from_config("instance", r)
    assert (inst.alpha, inst.alpha_reference_size, inst.sigma, inst.mask, inst.grid_spacing) == (
        r.alpha, r.alpha_reference_size, r.loss_sigma, r.loss_mask, r.grid_spacing)


def test_available_registrations_leaves_out_a_missing_elastix_in_one_line(monkeypatch):
    from echo_utils.registration import factory

    lines = []
    monkeypatch.setattr(factory, "elastix_available", lambda: False)
    assert factory.available_registrations(log=lines.append) == ["dlir", "instance", "identity", "optical_flow"]
    assert lines == [factory.ELASTIX_MISSING]
    lines.clear()
    monkeypatch.setattr(factory, "elastix_available", lambda: True)
    assert factory.available_registrations(("instance", "elastix"), log=lines.append) == ["instance", "elastix"]
    assert lines == []
