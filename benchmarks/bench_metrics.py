"""Speed and accuracy of echo_utils.metrics.

Speed: scoring a 20-frame 512x512 sequence (Dice, HD, MAD for LV, MYO ring, epicardium and LA), single-frame
calls, Simpson's biplane volume. Accuracy: Simpson against the analytic volume of half-ellipsoids and of the
synthetic phantom's cavity; our HD/MAD against MONAI.

Run: ``.venv/bin/python benchmarks/bench_metrics.py`` -> prints a table and writes
``benchmarks/results/bench_metrics.json``.
"""

from __future__ import annotations

import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from echo_utils import metrics as M
from echo_utils.artifacts.atomic import write_json

RESULTS = Path(__file__).parent / "results" / "bench_metrics.json"


def best_of(fn, repeat=5):
    """Minimum wall time (s) over ``repeat`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times)), out


def realistic_sequence(T=20, size=512):
    """Reference labels from the phantom (if available) and a 'prediction' that is eroded/dilated and shifted."""
    try:
        from echo_utils.data import phantom

        pp = phantom.sample_patient(0, 0, frames=(T, T))
        _, lab, sp, _ = phantom.render_patient(pp, size)["4CH"]
        ref = lab[:T]
        spacing = (float(sp), float(sp))
        source = "phantom 4CH"
    except Exception as exc:  # the phantom is someone else's module: fall back to ellipses
        print(f"(phantom unavailable: {exc}; using ellipses)")
        rr, cc = np.mgrid[:size, :size]
        ref = np.zeros((T, size, size), np.uint8)
        for t in range(T):
            s = 1 - 0.2 * np.sin(np.pi * t / (T - 1))
            epi = ((rr - 0.55 * size) / (0.4 * size)) ** 2 + ((cc - size / 2) / (0.2 * size * s)) ** 2 <= 1
            lv = ((rr - 0.55 * size) / (0.35 * size * s)) ** 2 + ((cc - size / 2) / (0.15 * size * s)) ** 2 <= 1
            la = ((rr - 0.85 * size) / (0.1 * size)) ** 2 + ((cc - size / 2) / (0.15 * size)) ** 2 <= 1
            ref[t][epi & (rr < 0.55 * size)] = 2
            ref[t][lv & (rr < 0.55 * size)] = 1
            ref[t][la & (rr >= 0.55 * size)] = 3
        spacing, source = (0.3, 0.3), "ellipses"
    rng = np.random.default_rng(0)
    pred = np.empty_like(ref)
    for t in range(ref.shape[0]):
        p = np.zeros_like(ref[t])
        for lbl in (2, 1, 3):  # perturb each class, paint cavity over myocardium
            m = ref[t] == lbl if lbl != 2 else np.isin(ref[t], (1, 2))
            k = int(rng.integers(-3, 4))
            m = ndi.binary_dilation(m, iterations=k) if k > 0 else (ndi.binary_erosion(m, iterations=-k) if k else m)
            p[np.roll(m, tuple(rng.integers(-3, 4, 2)), axis=(0, 1))] = lbl
        pred[t] = p
    return pred, ref, spacing, source


def half_ellipse(shape, spacing, base_mm, a, b):
    r, c = np.meshgrid(np.arange(shape[0]) * spacing[0], np.arange(shape[1]) * spacing[1], indexing="ij")
    return (((r - base_mm[0]) / a) ** 2 + ((c - base_mm[1]) / b) ** 2 <= 1) & (r <= base_mm[0])


def main():
    rows = []
    pred, ref, sp, source = realistic_sequence()
    T, H, W = ref.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.EmptyMaskWarning)
        tmin, tmed, df = best_of(lambda: M.score_sequence(pred, ref, sp, classes=(1, 2, 3), myo="ring"))
        rows.append(("score_sequence LV+MYO+LA", f"{T}x{H}x{W} ({source})", tmin, tmed))
        tmin, tmed, df = best_of(lambda: M.score_sequence(pred, ref, sp, myo="both"))
        rows.append(("score_sequence LV+MYO+EPI+LA", f"{T}x{H}x{W} ({source})", tmin, tmed))
        tmin, tmed, _ = best_of(lambda: M.score_sequence(pred, ref, sp, myo="both", hd_percentile=95))
        rows.append(("score_sequence 4 structures + HD95", f"{T}x{H}x{W}", tmin, tmed))
    a, b = pred[0] == 1, ref[0] == 1
    for name, fn in [("dice", lambda: M.dice(a, b)), ("hausdorff", lambda: M.hausdorff(a, b, sp)),
                     ("mean_absolute_distance", lambda: M.mean_absolute_distance(a, b, sp))]:
        tmin, tmed, _ = best_of(fn, 20)
        rows.append((name, f"1x{H}x{W} LV", tmin, tmed))
    # MONAI on the same frame, for scale
    try:
        import torch
        from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

        ta, tb = (torch.from_numpy(x)[None, None].float() for x in (a, b))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tmin, tmed, m_hd = best_of(lambda: compute_hausdorff_distance(ta, tb, include_background=True,
                                                                          spacing=list(sp)).item(), 5)
            rows.append(("monai compute_hausdorff_distance", f"1x{H}x{W} LV", tmin, tmed))
            m_asd = compute_average_surface_distance(ta, tb, include_background=True, symmetric=True,
                                                     spacing=list(sp)).item()
        monai_check = {"hd_ours": M.hausdorff(a, b, sp), "hd_monai": m_hd,
                       "mad_pooled_ours": M.mean_absolute_distance(a, b, sp, symmetric="pooled"),
                       "mad_average_ours": M.mean_absolute_distance(a, b, sp), "asd_symmetric_monai": m_asd}
    except Exception as exc:  # pragma: no cover
        monai_check = {"error": str(exc)}

    # Simpson accuracy: half-ellipsoids at 512x512 and the phantom's exact cavity volume
    simpson = []
    rng = np.random.default_rng(1)
    for _ in range(10):
        sp2 = tuple(rng.uniform(0.2, 0.32, 2))
        sp4 = tuple(rng.uniform(0.2, 0.32, 2))
        L, w2, w4 = rng.uniform(55, 85), rng.uniform(15, 28), rng.uniform(15, 28)
        m2 = half_ellipse((512, 512), sp2, (L + 15, 60), L, w2)
        m4 = half_ellipse((512, 512), sp4, (L + 15, 60), L, w4)
        exact = 2 / 3 * np.pi * L * w2 * w4 / 1000
        t0 = time.perf_counter()
        v = M.lv_volume_biplane(m2, m4, sp2, sp4)
        dt = time.perf_counter() - t0
        vv = M.lv_volume_biplane(m2, m4, sp2, sp4, position="vital")
        simpson.append({"case": "half-ellipsoid", "exact_ml": exact, "ours_ml": v, "vital_positions_ml": vv,
                        "rel_err_pct": 100 * (v / exact - 1), "rel_err_vital_pct": 100 * (vv / exact - 1),
                        "time_s": dt})
    try:
        from echo_utils.data import phantom

        for i in range(6):
            pp = phantom.sample_patient(i, 0)
            out = phantom.render_patient(pp, 512)
            (_, l2, s2, ph), (_, l4, s4, _) = out["2CH"], out["4CH"]
            for t in (0, len(ph) - 1):
                exact = float(phantom.lv_volume(pp, ph[t]))
                v = M.lv_volume_biplane(l2[t] == 1, l4[t] == 1, (s2, s2), (s4, s4))
                simpson.append({"case": f"phantom {pp.patient} {'ED' if t == 0 else 'ES'}", "exact_ml": exact,
                                "ours_ml": v, "rel_err_pct": 100 * (v / exact - 1)})
    except Exception as exc:  # pragma: no cover
        print(f"(phantom Simpson check skipped: {exc})")

    tmin, tmed, _ = best_of(lambda: M.lv_volume_biplane(m2, m4, sp2, sp4), 5)
    rows.append(("lv_volume_biplane", "2 views 512x512", tmin, tmed))

    print(f"\n{'function':40s} {'input':32s} {'best s':>8s} {'median s':>9s}")
    for name, inp, tmin, tmed in rows:
        print(f"{name:40s} {inp:32s} {tmin:8.4f} {tmed:9.4f}")
    print("\nSimpson biplane accuracy (20 disks)")
    for s in simpson:
        extra = f"  vital-positions {s['rel_err_vital_pct']:+.2f}%" if "rel_err_vital_pct" in s else ""
        print(f"  {s['case']:28s} exact {s['exact_ml']:7.2f} mL  ours {s['ours_ml']:7.2f} mL  "
              f"{s['rel_err_pct']:+.2f}%{extra}")
    errs = np.abs([s["rel_err_pct"] for s in simpson])
    print(f"  max |error| {errs.max():.2f}%  mean |error| {errs.mean():.2f}%")
    print("\nMONAI cross-check (LV, frame 0):", json.dumps({k: round(v, 5) if isinstance(v, float) else v
                                                          for k, v in monai_check.items()}))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    res = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.processor()},
        "timings": [{"function": n, "input": i, "best_s": a, "median_s": b} for n, i, a, b in rows],
        "simpson": simpson,
        "simpson_max_abs_err_pct": float(errs.max()),
        "monai_check": monai_check,
    }
    write_json(RESULTS, res, indent=2, sort_keys=False)
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
