"""One synthetic patient: its parameters (anatomy, function, acquisition), drawn from a seed, and its shape over
the cardiac cycle.

:func:`sample_patient` draws a :class:`PatientParams` (``np.random.default_rng([seed, index])``: each patient
independent of the cohort size); :func:`shape_at` gives the LV/LA shape at a contraction phase (the myocardial area
conserved), :func:`lv_volume` the exact 3D cavity volume, and :func:`patient_motion` the phases of a half sequence or
full cycle with the extra motion of :mod:`echo_utils.data.phantom_motion`.  The images are rendered from these in
:mod:`echo_utils.data.phantom`, which re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .phantom_motion import (
    diastole_phase,
    frame_motion,
    sample_regional_course,
    sample_time_course,
    sample_view_motion,
    systole_phase,
)

__all__ = ["QUALITIES", "PatientParams", "sample_patient", "patient_motion", "shape_at", "lv_volume"]

QUALITIES = ("Good", "Medium", "Poor")


@dataclass
class PatientParams:
    """Anatomy, function and acquisition of one synthetic patient (lengths in mm, angles in degrees)."""

    patient: str
    quality: str
    ef: float  # requested ejection fraction, percent
    n_frames: int  # ED -> ES frames of the half sequence (ED = frame 0, ES = frame n_frames - 1)
    n_diastole: int  # extra frames ES -> ED of the full cycle
    L0: float  # ED cavity long semi-axis (base to endocardial apex)
    W0: dict  # ED cavity half-width per view {"2CH": .., "4CH": ..}
    t0: float  # ED wall thickness
    apex_depth: float  # depth of the epicardial apex below the probe
    la_length: float  # ED LA length (mitral plane to far wall)
    long_short: float  # longitudinal shortening fraction of L at ES
    radial_short: float  # radial shortening fraction of W at ES
    depth: float  # imaging depth (the image height), mm
    tilt: dict  # long-axis tilt per view
    offset: dict  # lateral offset of the apex per view, mm
    knots: list  # systolic time-course knots [[tau, phase], ...] (phantom_motion.systole_phase)
    frame_rate: float
    age: int
    sex: str
    seed: list = field(default_factory=list)
    # regional wall motion and rigid drift (phantom_motion): {"regional": knots, "hypokinetic": bool,
    # "2CH": {...}, "4CH": {...}}; empty = none
    motion: dict = field(default_factory=dict)


def sample_patient(index: int, seed: int, frames: tuple[int, int] = (10, 40)) -> PatientParams:
    """Draw one patient's parameters; ``np.random.default_rng([seed, index])`` makes each patient independent."""
    rng = np.random.default_rng([seed, index])
    quality = str(rng.choice(QUALITIES, p=[0.35, 0.45, 0.20]))
    ef = float(rng.uniform(25.0, 75.0))
    n_frames = int(rng.integers(frames[0], frames[1] + 1))
    n_dia = int(round(n_frames * rng.uniform(1.2, 1.6)))
    L0 = float(rng.uniform(70.0, 88.0))
    W4 = float(rng.uniform(20.0, 26.0))
    W2 = W4 * float(rng.uniform(0.9, 1.1))
    t0 = float(rng.uniform(8.0, 11.0))
    apex_depth = float(rng.uniform(20.0, 32.0))
    la_length = float(rng.uniform(32.0, 42.0))
    e = ef / 100.0
    long_short = 0.04 + 0.2 * e + float(rng.uniform(-0.02, 0.02))
    radial_short = 1.0 - np.sqrt((1.0 - e) / (1.0 - long_short))
    total = apex_depth + L0 + t0 + la_length
    depth = total / float(rng.uniform(0.80, 0.88))
    knots = sample_time_course(rng)
    tilt = {"2CH": float(rng.uniform(-7, 7)), "4CH": float(rng.uniform(-7, 7))}
    offset = {"2CH": float(rng.uniform(-4, 4)), "4CH": float(rng.uniform(5, 10))}
    frame_rate = float((n_frames - 1) / rng.uniform(0.28, 0.36))
    age, sex = int(rng.integers(20, 90)), str(rng.choice(["F", "M"]))
    hypokinetic = bool(rng.random() < 0.4)
    cycle_tau = 1.0 + n_dia / max(n_frames - 1, 1)
    motion = {"regional": sample_regional_course(rng), "hypokinetic": hypokinetic}
    for view, w in (("2CH", W2), ("4CH", W4)):
        motion[view] = sample_view_motion(rng, L0, w, t0, float(radial_short), hypokinetic, cycle_tau)
    return PatientParams(
        patient=f"patient{index + 1:04d}",
        quality=quality,
        ef=ef,
        n_frames=n_frames,
        n_diastole=n_dia,
        L0=L0,
        W0={"2CH": W2, "4CH": W4},
        t0=t0,
        apex_depth=apex_depth,
        la_length=la_length,
        long_short=float(long_short),
        radial_short=float(radial_short),
        depth=float(depth),
        tilt=tilt,
        offset=offset,
        knots=knots,
        frame_rate=frame_rate,
        age=age,
        sex=sex,
        seed=[int(seed), int(index)],
        motion=motion,
    )


def patient_motion(pp: PatientParams, view: str, full_cycle: bool = False) -> tuple[np.ndarray, dict | None]:
    """The contraction phases ``(T,)`` and the per-frame extra motion of one view (half sequence or full cycle).

    Returns ``(phases, fm)`` with ``fm`` from :func:`~echo_utils.data.phantom_motion.frame_motion` (``None`` for
    a patient without extra motion).  In diastole the regional motion relaxes with the cavity.
    """
    phases = systole_phase(pp.n_frames, pp.knots)
    tau = np.linspace(0.0, 1.0, pp.n_frames)
    r = None
    if full_cycle:
        dia = diastole_phase(pp.n_diastole)
        phases = np.concatenate([phases, dia])
        tau = np.concatenate([tau, 1.0 + np.arange(1, pp.n_diastole + 1) / max(pp.n_frames - 1, 1)])
        if pp.motion:
            r_sys = frame_motion(pp.motion, view, tau[: pp.n_frames])["r"]
            r = np.concatenate([r_sys, r_sys[-1] * dia])
    return phases, frame_motion(pp.motion, view, tau, r)


def shape_at(pp: PatientParams, view: str, phase) -> dict:
    """LV/LA shape parameters (mm) at contraction phase(s) ``phase`` (array broadcast): L, W, t, c, H, bottom.

    ``t`` conserves the myocardial area of the half-ellipse model:
    ``pi/2 * ((L + t)(W + t) - L W) = const``.
    """
    p = np.asarray(phase, dtype=np.float64)
    L0, W0, t0 = pp.L0, pp.W0[view], pp.t0
    L = L0 * (1.0 - pp.long_short * p)
    W = W0 * (1.0 - pp.radial_short * p)
    area = (L0 + t0) * (W0 + t0) - L0 * W0  # myocardial area * 2/pi
    s = L + W
    t = 0.5 * (-s + np.sqrt(s * s + 4.0 * area))
    c = L + t
    bottom = L0 + t0 + pp.la_length
    return dict(L=L, W=W, t=t, c=c, H=bottom - c, bottom=bottom, W_la=(W0 + 0.5 * t0) * (1.0 + 0.06 * p))


def lv_volume(pp: PatientParams, phase) -> np.ndarray:
    """Exact 3D cavity volume (mL) of the model: ``2/3 pi L W_2ch W_4ch``."""
    p = np.asarray(phase, dtype=np.float64)
    L = pp.L0 * (1.0 - pp.long_short * p)
    w2 = pp.W0["2CH"] * (1.0 - pp.radial_short * p)
    w4 = pp.W0["4CH"] * (1.0 - pp.radial_short * p)
    return 2.0 / 3.0 * np.pi * L * w2 * w4 / 1000.0
