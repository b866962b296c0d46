"""The synthetic heart's motion over time: contraction time course, regional wall motion and rigid drift.

The phantom (:mod:`echo_utils.data.phantom`) describes the heart by a *backward map*: every pixel of frame ``t`` is
sent to its end-diastolic (ED) material point.  This module adds two motions on top of the global contraction
(long-axis shortening, radial contraction, myocardial thickening), composed into that backward map so that the
labels, the speckle and :func:`~echo_utils.data.phantom.true_displacement` stay exactly consistent:

* **Regional wall motion** -- smooth Gaussian bumps that displace the wall across the long axis with their own time
  course ``r(t)`` (``r = 0`` at ED).  A *hypokinetic* segment (some patients) is a bump on the mid-wall that moves
  outwards by a fraction of the radial excursion: that segment contracts less.  Smaller bumps centred on the
  endocardium shift the endocardium more than the epicardium: non-uniform thickening.  The map is
  ``(u, v) -> (u, v - delta(u, v))`` in local long-axis coordinates (mm), invertible because
  ``|d delta / dv| < 1`` (amplitude <= half the bump width).
* **Rigid drift** -- a small translation and rotation of the whole heart (and the tissue around it) in the sector
  (breathing, probe motion): the near-field clutter and the sector stay where they are.

The global contraction follows each patient's own time course (:func:`systole_phase`): an isovolumic start,
rapid early ejection, then a plateau whose onset varies (the end-systolic timing).  It is *not* the
``sin^2(pi tau / 2)`` law of the Eq. 1 fusion weights: :func:`sin2_law_distance` reports how far each sequence's
cavity-area curve is from that law (:func:`sin2_law_table`: one row per sequence).
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator

__all__ = [
    "systole_phase",
    "diastole_phase",
    "sample_time_course",
    "sample_view_motion",
    "sample_regional_course",
    "frame_motion",
    "to_base",
    "sin2_law_distance",
    "sin2_law_table",
]

#: the fixed knot positions of the legacy 3-value time course (cohort version 1)
_LEGACY_TAU = (0.12, 0.5, 0.85)


def systole_phase(n_frames: int, knots=((0.1, 0.02), (0.35, 0.65), (0.7, 0.95))) -> np.ndarray:
    """Contraction phase ``p`` in [0, 1] at each of ``n_frames`` frames from ED (p = 0) to ES (p = 1).

    A monotone cubic (PCHIP) through ``(0, 0)``, the ``knots`` ``(tau, p)`` and ``(1, 1)``, with
    ``tau = frame / (n_frames - 1)`` the normalised time.  Three plain numbers ``(k1, k2, k3)`` are the version-1
    knots at ``tau = 0.12, 0.5, 0.85``.
    """
    knots = [tuple(k) for k in np.atleast_1d(np.asarray(knots, dtype=np.float64)).reshape(len(knots), -1)]
    if len(knots[0]) == 1:
        knots = list(zip(_LEGACY_TAU, [k[0] for k in knots]))
    tau = np.linspace(0.0, 1.0, n_frames)
    xs = [0.0, *(k[0] for k in knots), 1.0]
    ys = [0.0, *(k[1] for k in knots), 1.0]
    return np.clip(PchipInterpolator(xs, ys)(tau), 0.0, 1.0)


def diastole_phase(n_frames: int) -> np.ndarray:
    """Phase for the ``n_frames`` frames after ES of a full cycle: rapid filling, diastasis, atrial kick, ED (0)."""
    tau = np.linspace(0.0, 1.0, n_frames + 1)[1:]
    f = PchipInterpolator([0.0, 0.35, 0.7, 0.82, 1.0], [1.0, 0.3, 0.2, 0.17, 0.0])
    return np.clip(f(tau), 0.0, 1.0)


def sample_time_course(rng: np.random.Generator) -> list[list[float]]:
    """One patient's systolic knots ``[[tau, p], ...]``: isovolumic start, rapid early ejection, plateau.

    ``p`` reaches 0.50-0.78 by ``tau`` = 0.28-0.42 (the ``sin^2`` law gives 0.18-0.40 there) and 0.90-0.99 at
    the plateau onset ``tau`` = 0.55-0.85.
    """
    return [
        [float(rng.uniform(0.06, 0.12)), float(rng.uniform(0.0, 0.04))],
        [float(rng.uniform(0.28, 0.42)), float(rng.uniform(0.50, 0.78))],
        [float(rng.uniform(0.55, 0.85)), float(rng.uniform(0.90, 0.99))],
    ]


def sample_regional_course(rng: np.random.Generator) -> list[list[float]]:
    """Knots ``[[tau, r], ...]`` of the regional time course: a peak at 0.45-1.0 (late peaks: post-systolic
    motion), then 0.6-1.0 of it at ES."""
    peak = float(rng.uniform(0.45, 1.0))
    return [[0.5 * peak, float(rng.uniform(0.3, 0.7))], [peak, 1.0]] + (
        [] if peak > 0.95 else [[1.0, float(rng.uniform(0.6, 1.0))]]
    )


def _course(knots, tau: np.ndarray) -> np.ndarray:
    """PCHIP through ``(0, 0)`` and ``knots`` (beyond the last knot: its value), at normalised times ``tau``."""
    xs = [0.0] + [k[0] for k in knots]
    ys = [0.0] + [k[1] for k in knots]
    if xs[-1] < 1.0:
        xs.append(1.0)
        ys.append(ys[-1])
    f = PchipInterpolator(xs, ys, extrapolate=False)
    return np.nan_to_num(f(np.clip(tau, 0.0, xs[-1])), nan=ys[-1])


def sample_view_motion(rng: np.random.Generator, L0: float, W0: float, t0: float, radial_short: float,
                       hypokinetic: bool, cycle_tau: float) -> dict:
    """One view's extra motion (mm, degrees): regional bumps and the rigid drift's knots.

    ``bumps``: ``[level, side, amplitude, sigma_u, sigma_v, centre_v]`` -- ``level`` in (0, 1) from the apex to the
    mitral plane along the cavity, ``side`` +-1, ``amplitude`` (mm, > 0 outwards), widths along / across the long
    axis, the centre across it.  With ``hypokinetic`` the first bump moves a mid-wall segment outwards by
    50-90 % of the radial excursion.  ``shift`` ``[[tau, du, dv], ...]`` and ``angle`` ``[[tau, deg], ...]`` are
    knots over normalised time up to ``cycle_tau`` (1 = ES; > 1 reaches into diastole and returns to 0 at
    the next ED).
    """
    bumps = []

    def wall_v(level, side, depth):
        du = -L0 * (1.0 - level)
        half = W0 * np.sqrt(max(1.0 - (du / L0) ** 2, 0.05))
        return side * (half + depth * t0)

    if hypokinetic:
        level, side = float(rng.uniform(0.35, 0.8)), float(rng.choice([-1.0, 1.0]))
        amp = float(rng.uniform(0.5, 0.9)) * W0 * radial_short
        sv = max(2.2 * amp, 0.9 * t0)
        bumps.append([level, side, amp, float(rng.uniform(9.0, 14.0)), sv, wall_v(level, side, 0.5)])
    for _ in range(int(rng.integers(1, 3))):
        level, side = float(rng.uniform(0.25, 0.85)), float(rng.choice([-1.0, 1.0]))
        amp = float(rng.uniform(-1.2, 1.2))
        sv = max(2.2 * abs(amp), 0.8 * t0)
        bumps.append([level, side, amp, float(rng.uniform(6.0, 10.0)), sv, wall_v(level, side, 0.0)])
    n = 4 + int(np.ceil(max(cycle_tau - 1.0, 0.0) * 3))
    taus = np.linspace(0.0, cycle_tau, n + 1)[1:]
    shift = [[float(t), float(rng.uniform(-2.5, 2.5)), float(rng.uniform(-2.0, 2.0))] for t in taus]
    angle = [[float(t), float(rng.uniform(-2.0, 2.0))] for t in taus]
    if cycle_tau > 1.0:  # a full cycle ends where it began (the next ED)
        shift[-1][1:], angle[-1][1] = [0.0, 0.0], 0.0
    return {"bumps": bumps, "shift": shift, "angle": angle}


def frame_motion(motion: dict | None, view: str, tau: np.ndarray, r: np.ndarray | None = None) -> dict | None:
    """The per-frame extra motion of one view at normalised times ``tau`` ``(T,)`` (0 = ED, 1 = ES).

    Returns ``{'r': (T,), 'shift': (T, 2) mm (du, dv), 'angle': (T,) rad, 'bumps': ...}`` or ``None`` (no extra
    motion, e.g. a cohort of version 1).  ``r``: the regional course if given (the full cycle relaxes it with the
    cavity in diastole), else the patient's regional knots at ``tau``.
    """
    if not motion:
        return None
    tau = np.asarray(tau, dtype=np.float64)
    vm = motion[view]
    shift = np.stack([_course([[k[0], k[1]] for k in vm["shift"]], tau),
                      _course([[k[0], k[2]] for k in vm["shift"]], tau)], axis=1)
    return {
        "r": _course(motion["regional"], tau) if r is None else np.asarray(r, dtype=np.float64),
        "shift": shift,
        "angle": np.deg2rad(_course(vm["angle"], tau)),
        "bumps": vm["bumps"],
    }


def to_base(u: np.ndarray, v: np.ndarray, fm: dict | None, centre: tuple[float, float], c0: float, L0: float):
    """Local coordinates ``(u, v)`` (mm) at frame(s) ``t`` -> coordinates in the globally contracting heart.

    Undoes the rigid drift (rotation about ``centre`` by ``angle``, then the shift) and then the regional bumps.
    ``u, v``: arrays broadcasting against ``(T, 1, 1)``; ``fm``: :func:`frame_motion` (``None``: unchanged).
    """
    if fm is None:
        return u, v
    T = len(fm["r"])
    sh = fm["shift"].astype(np.float32).reshape(T, 2, 1, 1)
    ang = fm["angle"].reshape(T, 1, 1)
    ca, sa = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    pu = u - np.float32(centre[0]) - sh[:, 0]
    pv = v - np.float32(centre[1]) - sh[:, 1]
    u1 = ca * pu + sa * pv + np.float32(centre[0])
    v1 = -sa * pu + ca * pv + np.float32(centre[1])
    r = fm["r"].astype(np.float32).reshape(T, 1, 1)
    delta = np.zeros(np.broadcast(u1, v1).shape, np.float32)
    for level, side, amp, su, sv, cv in fm["bumps"]:
        cu = c0 - L0 * (1.0 - level)
        delta += np.float32(side * amp) * np.exp(-0.5 * (((u1 - cu) / su) ** 2 + ((v1 - cv) / sv) ** 2))
    return u1, v1 - r * delta


def sin2_law_distance(labels: np.ndarray, label: int = 1) -> dict:
    """How far a sequence's cavity-area curve is from the ``sin^2`` law of the Eq. 1 weights.

    ``labels`` ``(T, H, W)`` from ED (frame 0) to ES (frame T-1).  The normalised contraction
    ``a(t) = (A_ED - A_t) / (A_ED - A_ES)`` (``A``: pixels of ``label``) is compared with
    ``sin^2(pi tau / 2)``, ``tau = t / (T - 1)`` (the authors' backward weight).  Returns ``max_abs`` and ``rms``
    (dimensionless, 0 = the law exactly) and ``tau_at_max``.
    """
    lab = np.asarray(labels)
    if lab.ndim != 3 or lab.shape[0] < 3:
        raise ValueError(f"sin2_law_distance needs (T >= 3, H, W) labels, got {lab.shape}")
    area = (lab == label).sum(axis=(1, 2)).astype(np.float64)
    span = area[0] - area[-1]
    if span == 0:
        raise ValueError("sin2_law_distance: the area does not change between ED and ES")
    a = (area[0] - area) / span
    tau = np.linspace(0.0, 1.0, len(a))
    d = a - np.sin(0.5 * np.pi * tau) ** 2
    k = int(np.argmax(np.abs(d)))
    return {"max_abs": float(np.abs(d[k])), "rms": float(np.sqrt(np.mean(d**2))), "tau_at_max": float(tau[k])}


def sin2_law_table(sequences) -> "pd.DataFrame":  # noqa: F821
    """:func:`sin2_law_distance` of the dense labels of each sequence (ED to ES), one row per sequence: ``key``,
    ``max_abs``, ``rms``, ``tau_at_max`` (dimensionless).  Works on any sequence with dense labels (the phantom,
    TED)."""
    import pandas as pd

    rows = []
    for seq in sequences:
        if seq.dense is None:
            continue
        step = 1 if seq.es > seq.ed else -1
        lab = np.asarray(seq.dense)[seq.ed : seq.es + step : step]
        rows.append({"key": seq.key, **sin2_law_distance(lab)})
    return pd.DataFrame(rows, columns=["key", "max_abs", "rms", "tau_at_max"])
