"""A synthetic echocardiography cohort with exact dense truth, written in the CAMUS 2023 layout.

What it models
--------------
Each patient is one left ventricle (LV) seen in two apical views (2CH and 4CH). In local coordinates ``(u, v)``
(``u`` along the long axis, from the epicardial apex towards the mitral plane; ``v`` across it, in mm):

* LV cavity: the half-ellipse ``(du/L)^2 + (v/W)^2 <= 1`` above the mitral plane (``du = u - c < 0``), where
  ``c = L + t`` is the mitral plane and ``W`` is the view's cavity half-width.  The 3D cavity is the body whose
  cross-section at each level is an ellipse with the 2CH and 4CH half-widths as semi-axes, so Simpson's biplane
  rule applied to the two views returns its volume ``V = 2/3 * pi * L * W_2ch * W_4ch``.
* LV myocardium: a horseshoe of thickness ``t`` around the cavity, open at the mitral plane.  ``t`` is solved at
  every frame so that the myocardial area is conserved (myocardial thickening).
* Left atrium: a rounded sac beyond the mitral plane; its far wall is fixed, so it fills as the mitral plane
  descends towards the apex (the LA grows while the LV empties).
* 4CH only: right ventricle and right atrium as unlabelled dark cavities beside the septum.

Motion: the cavity shortens (``L``) and contracts radially (``W``) on each patient's own systolic time course
(isovolumic start, rapid early ejection, a plateau of varied onset: not the ``sin^2`` law of the Eq. 1 weights);
the mitral plane moves towards the apex.  The requested ejection fraction fixes the shortening:
``EF = 1 - (1 - l)(1 - r)^2``.  On top (:mod:`echo_utils.data.phantom_motion`): regional wall motion (a hypokinetic
segment in ~40 % of patients, non-uniform thickening) with its own time course, and a small rigid drift of the
whole heart in the sector.  Full cycles (ED -> ES -> ED) add rapid filling, diastasis and the atrial kick.

Appearance: a Rayleigh speckle field defined in *material* coordinates, so that it moves with the tissue (a
backward map ``X_t(x)`` sends each pixel at frame ``t`` to its end-diastolic position), and decorrelates from frame
to frame with an AR(1) process; tissue-dependent echogenicity; depth attenuation; a stationary near-field clutter
haze; echo dropout on the lateral wall; log compression; an apical sector.  Image quality (good / medium / poor)
sets speckle strength, contrast, dropout and clutter.

What it does NOT model: acoustics (no PSF, no beamforming, no shadowing), valves, papillary muscles, trabeculae,
out-of-plane motion, or realistic anatomy variation.  It is a teaching and testing phantom, not clinical data.

Where it lives: the patient (parameters, shape over the cycle) in :mod:`echo_utils.data.phantom_patient`, its
extra motion in :mod:`echo_utils.data.phantom_motion`, the rendering here (which re-exports the patient's names),
the cohort on disk in :mod:`echo_utils.data.phantom_cohort`.

Output (:func:`make_cohort`, in :mod:`echo_utils.data.phantom_cohort`): ``root/database_nifti/patientXXXX/patientXXXX_{2CH,4CH}_{half_sequence,ED,ES}[_gt]
.nii.gz`` + ``Info_{2CH,4CH}.cfg`` (with ``DenseKind: exact``), ``root/database_split/subgroup_*.txt``,
``root/cohort.json`` (the generation parameters, the completion marker), and with ``full_cycle=True`` a TED-like
``root/ted/database/patientNNN/patientNNN_4CH_{sequence,sequence_gt}.mhd`` + ``_info.cfg``.
"""

from __future__ import annotations

import numpy as np

from .phantom_motion import diastole_phase, systole_phase, to_base
from .phantom_patient import QUALITIES, PatientParams, lv_volume, patient_motion, sample_patient, shape_at

__all__ = [
    "PatientParams",
    "sample_patient",
    "systole_phase",
    "diastole_phase",
    "shape_at",
    "render_view",
    "QUALITIES",
    "view_geometry",
    "true_displacement",
    "lv_volume",
    "render_patient",
    "patient_motion",
    "pair_displacement",
]


# appearance per image quality: speckle weight, blood echogenicity (contrast), dropout depth, clutter level,
# frame-to-frame speckle correlation, electronic noise
_QUALITY = {
    "Good": dict(speckle=0.75, blood=0.04, dropout=0.25, clutter=0.10, rho=0.92, noise=0.02),
    "Medium": dict(speckle=0.9, blood=0.09, dropout=0.55, clutter=0.22, rho=0.88, noise=0.04),
    "Poor": dict(speckle=1.0, blood=0.16, dropout=0.85, clutter=0.40, rho=0.82, noise=0.07),
}


# ----------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------


def _la_halfwidth(s, w_b, W_la):
    """LA half-width at normalised depth ``s`` in [0, 1] beyond the mitral plane (``w_b`` at the plane, 0 at s=1).

    ``w_b = W + 0.6 t`` reaches under the myocardial base, so that the cavity is closed by the LA."""
    m = 1.0 - (1.0 - s) ** 2
    return np.sqrt(np.clip(1.0 - s * s, 0.0, None)) * (w_b * (1.0 - m) + W_la * m)


def _labels(u, v, g):
    """Analytic label map (uint8) from local coordinates ``u, v`` and shape parameters ``g`` (broadcast)."""
    du = u - g["c"]
    upper = du < 0
    endo = (du / g["L"]) ** 2 + (v / g["W"]) ** 2 <= 1.0
    epi = (du / (g["L"] + g["t"])) ** 2 + (v / (g["W"] + g["t"])) ** 2 <= 1.0
    s = du / g["H"]
    la = (~upper) & (s <= 1.0) & (np.abs(v) <= _la_halfwidth(np.clip(s, 0, 1), g["W"] + 0.6 * g["t"], g["W_la"]))
    lab = np.zeros(np.broadcast(u, v, du).shape, np.uint8)
    lab[upper & epi] = 2
    lab[upper & endo] = 1
    lab[la] = 3
    return lab


def _upper_map(du, v, g, g0, decay):
    """Backward map (to ED) of points above the mitral plane; returns (Xu - c0, Xv, d_out) in mm.

    Points are parametrised by the angle ``psi`` in endocardium-normalised coordinates and a transmural
    coordinate: the cavity, the myocardium and the outside are mapped piecewise-linearly along the ray, so the
    endocardium and epicardium at frame t land exactly on those at ED; outside the heart the epicardial
    displacement decays as ``exp(-distance / decay)``.
    """
    L, W, t = g["L"], g["W"], g["t"]
    L0, W0, t0 = g0["L"], g0["W"], g0["t"]
    a = du / L
    b = v / W
    lam = np.sqrt(a * a + b * b)
    safe = np.maximum(lam, 1e-9)
    cs = np.where(lam > 1e-9, a / safe, -1.0)
    sn = np.where(lam > 1e-9, b / safe, 0.0)
    kp = np.sqrt((L * cs / (L + t)) ** 2 + (W * sn / (W + t)) ** 2)
    k0 = np.sqrt((L0 * cs / (L0 + t0)) ** 2 + (W0 * sn / (W0 + t0)) ** 2)
    e0u, e0v = L0 * cs, W0 * sn  # ED endocardial point on the ray (relative to c0)
    inv_kp, inv_k0 = 1.0 / kp, 1.0 / k0
    xi = (lam - 1.0) / (inv_kp - 1.0)
    scale = np.where(lam <= 1.0, lam, 1.0 + xi * (inv_k0 - 1.0))
    xu, xv = scale * e0u, scale * e0v
    out = lam > inv_kp
    epu, epv = L * cs, W * sn
    d_out = np.maximum(lam - inv_kp, 0.0) * np.sqrt(epu * epu + epv * epv)
    w = np.exp(-d_out / decay)
    # displacement of the epicardial point on the ray, relative to each frame's own mitral-plane origin
    ddu = e0u * inv_k0 - epu * inv_kp + (g0["c"] - g["c"])  # in absolute u
    ddv = e0v * inv_k0 - epv * inv_kp
    xu = np.where(out, du + g["c"] - g0["c"] + ddu * w, xu)
    xv = np.where(out, v + ddv * w, xv)
    return xu, xv, d_out


def backward_map(u, v, g, g0, decay: float = 15.0):
    """Material (ED) local coordinates ``(U, V)`` of the points ``(u, v)`` at phase parameters ``g``.

    Above the mitral plane: :func:`_upper_map`.  Beyond it: the displacement of the mitral-plane point with the
    same ``v``, fading linearly to zero at the fixed far LA wall (the LA stretches as it fills).  Returns
    ``U, V`` and the distance outside the epicardium (``inf`` beyond the mitral plane).
    """
    du = u - g["c"]
    upper = du < 0
    # one evaluation: above the plane at the point itself, beyond it at the mitral-plane point with the same v
    xu, xv, d_out = _upper_map(np.where(upper, du, 0.0), v, g, g0, decay)
    h = np.clip(1.0 - np.maximum(du, 0.0) / g["H"], 0.0, 1.0)
    U = np.where(upper, g0["c"] + xu, u + (g0["c"] + xu - g["c"]) * h)
    V = np.where(upper, xv, v + (xv - v) * h)
    return U, V, np.where(upper, d_out, np.inf)


def _bilinear_wrap(field: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Sample ``field`` ``(T, H, W)`` (periodic) bilinearly at pixel coordinates ``i, j`` ``(T, H', W')``."""
    T, H, W = field.shape
    i0 = np.floor(i)
    j0 = np.floor(j)
    fi = (i - i0).astype(np.float32)
    fj = (j - j0).astype(np.float32)
    it = np.int64 if field.size >= 2**31 else np.int32
    i0 = i0.astype(it) % H
    j0 = j0.astype(it) % W
    i1 = (i0 + 1) % H
    j1 = (j0 + 1) % W
    base = (np.arange(T, dtype=it) * (H * W)).reshape((T,) + (1,) * (i.ndim - 1))
    flat = field.reshape(-1)
    r0 = base + i0 * W
    r1 = base + i1 * W
    top = flat[r0 + j0] * (1 - fj) + flat[r0 + j1] * fj
    bot = flat[r1 + j0] * (1 - fj) + flat[r1 + j1] * fj
    return top * (1 - fi) + bot * fi


def _fft_field(rng, shape, sigma, complex_=False):
    """Stationary Gaussian random field(s) with a Gaussian correlation of ``sigma = (sy, sx)`` pixels (periodic).

    ``shape`` = (..., H, W); unit variance (complex: ``E|z|^2 = 1``, a circular field for speckle).  White noise
    is drawn directly in the Fourier domain and shaped there (one inverse FFT).
    """
    *lead, H, W = shape
    ky = np.fft.fftfreq(H)[:, None]
    kx = np.fft.fftfreq(W)[None, :]
    tf = np.exp(-2.0 * np.pi**2 * ((ky * sigma[0]) ** 2 + (kx * sigma[1]) ** 2)).astype(np.float32)
    n = np.empty((*lead, H, W), np.complex64)
    n.real = rng.standard_normal((*lead, H, W), dtype=np.float32)
    n.imag = rng.standard_normal((*lead, H, W), dtype=np.float32)
    f = np.fft.ifft2(n * tf).astype(np.complex64)
    f /= np.sqrt(np.mean(f.real**2 + f.imag**2))
    return f if complex_ else f.real * np.float32(np.sqrt(2.0))


def _material_coords(u, v, g, g0, size, sp, apex, rot, base=None, factor: int = 2):
    """:func:`backward_map` on a grid ``factor`` times coarser, upsampled (the map is smooth, and this is the
    costliest step); returns full-resolution ``U, V, d_out``.  The labels are always evaluated at full resolution.
    ``base(u, v)``: the extra motion undone first (:func:`~echo_utils.data.phantom_motion.to_base`).
    """
    base = base or (lambda a, b: (a, b))
    if size < 96:
        return backward_map(*base(u, v), g, g0)
    factor = 2
    m = size // factor
    spc = sp * size / m
    yy = (np.arange(m) + 0.5) * spc
    xx = (np.arange(m) - m / 2 + 0.5) * spc
    y, x = (a_.astype(np.float32) for a_ in np.meshgrid(yy, xx, indexing="ij"))
    (ay, ax), (cth, sth) = apex, rot
    uc = ((y - ay) * cth + (x - ax) * sth)[None]
    vc = (-(y - ay) * sth + (x - ax) * cth)[None]
    Uc, Vc, dc = backward_map(*base(uc, vc), g, g0)
    up = _upsample2(np.stack([Uc - uc, Vc - vc, np.minimum(dc, 1e3)]))
    if up.shape[-1] != size:  # odd size: pad the last row/column
        up = np.pad(up, [(0, 0)] * (up.ndim - 2) + [(0, size - up.shape[-2]), (0, size - up.shape[-1])], mode="edge")
    return u + up[0], v + up[1], up[2]


def _upsample2(a: np.ndarray) -> np.ndarray:
    """x2 linear upsampling of the last two axes, pixel-edge aligned (fine pixel k <-> coarse k/2 - 1/4)."""
    for ax in (-2, -1):
        prev = np.concatenate([np.take(a, [0], ax), np.take(a, np.arange(a.shape[ax] - 1), ax)], ax)
        nxt = np.concatenate([np.take(a, np.arange(1, a.shape[ax]), ax), np.take(a, [-1], ax)], ax)
        even = 0.75 * a + 0.25 * prev
        odd = 0.75 * a + 0.25 * nxt
        a = np.stack([even, odd], ax).reshape(*a.shape[:ax % a.ndim], -1, *a.shape[ax % a.ndim + 1:])
    return a


def view_geometry(pp: PatientParams, view: str, size: int, phases, motion: dict | None = None) -> dict:
    """The exact geometry and motion of one view at ``phases``, on the ``size`` x ``size`` pixel grid.

    ``motion``: the per-frame regional wall motion and rigid drift (:func:`patient_motion`; ``None``: the global
    contraction only).

    Returns a dict with ``labels`` uint8 ``(T, H, W)`` (analytic), ``u, v`` (local long-axis coordinates, mm),
    ``U, V`` (their end-diastolic material coordinates), ``d_out`` (distance outside the epicardium, mm),
    ``mi, mj`` (end-diastolic pixel coordinates, row and column, of each pixel's material point), ``g`` / ``g0``
    (shape parameters at each frame / at ED), ``y, x`` (physical pixel centres, mm), ``spacing`` (mm) and the
    apex position / rotation.
    """
    phases = np.atleast_1d(np.asarray(phases, dtype=np.float64))
    T = len(phases)
    sp = pp.depth / size
    g0 = {k: np.float32(v) for k, v in shape_at(pp, view, 0.0).items()}
    g = {k: np.broadcast_to(np.asarray(v, np.float32), (T,))[:, None, None]
         for k, v in shape_at(pp, view, phases).items()}

    # image grid (physical, mm): y depth from the probe, x lateral from the sector axis
    yy = (np.arange(size) + 0.5) * sp
    xx = (np.arange(size) - size / 2 + 0.5) * sp
    y, x = (a.astype(np.float32) for a in np.meshgrid(yy, xx, indexing="ij"))
    th = np.deg2rad(pp.tilt[view])
    ay, ax = pp.apex_depth, pp.offset[view]
    cth, sth = np.cos(th), np.sin(th)
    u = ((y - ay) * cth + (x - ax) * sth)[None]
    v = (-(y - ay) * sth + (x - ax) * cth)[None]

    if motion is not None and len(motion["r"]) != T:
        raise ValueError(f"motion has {len(motion['r'])} frames, phases {T}")
    centre = (float(g0["c"] - 0.5 * g0["L"]), 0.0)  # rotation about the ED cavity centre

    def base(a, b):
        return to_base(a, b, motion, centre, float(g0["c"]), float(g0["L"]))

    labels = _labels(*base(u, v), g)
    U, V, d_out = _material_coords(u, v, g, g0, size, sp, (ay, ax), (cth, sth), base)
    # ED pixel coordinates of each pixel's material point
    mi = (ay + U * cth - V * sth) / sp - 0.5
    mj = (ax + U * sth + V * cth) / sp + size / 2 - 0.5
    return dict(labels=labels, u=u, v=v, U=U, V=V, d_out=d_out, mi=mi, mj=mj, g=g, g0=g0, y=y, x=x, spacing=sp,
                apex=(ay, ax), rot=(cth, sth))


def true_displacement(pp: PatientParams, view: str, size: int, phases=None, *, full_cycle: bool = False) -> np.ndarray:
    """Exact displacement ``(T, 2, H, W)`` in pixels (channel 0 rows, channel 1 columns) from each frame to ED.

    The registration convention, with ``fixed`` = frame t and ``moving`` = the ED frame: ``warped(p) = ED(p + u(p))``
    shows the ED tissue where it is at frame t.  ``phases`` default: the patient's own frames (half sequence, or
    the full cycle), with their regional motion and rigid drift; explicit ``phases`` give the global contraction
    only.  Above the mitral plane this is the motion that carries the speckle and the labels; inside the blood
    pools it is only a smooth convention.
    """
    motion = None
    if phases is None:
        phases, motion = patient_motion(pp, view, full_cycle)
    geo = view_geometry(pp, view, size, phases, motion)
    ii, jj = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32), indexing="ij")
    return np.stack([geo["mi"] - ii, geo["mj"] - jj], axis=1).astype(np.float32)


def pair_displacement(pp: PatientParams, view: str, size: int, fixed: int, moving: int, *,
                      full_cycle: bool = False, iterations: int = 40) -> np.ndarray:
    """Exact displacement ``(2, H, W)`` (pixels; channel 0 rows, 1 columns) of the pair (frame ``fixed``, frame
    ``moving``): ``moving(p + u(p))`` shows at ``p`` the tissue that frame ``fixed`` has there.

    ``u(p) = X_m^-1(X_f(p)) - p`` with ``X_t`` the backward map of frame ``t`` to ED pixel coordinates; the inverse
    is found by the fixed-point iteration ``q <- q + X_f(p) - X_m(q)`` (bilinear ``X_m``), which converges because
    the maps are close to rigid at the scale of a pixel.  With ``fixed = t + 1, moving = t`` this is the motion
    that sequential label propagation must find.
    """
    from scipy.ndimage import map_coordinates

    phases, motion = patient_motion(pp, view, full_cycle)
    sel = np.array([fixed, moving])
    if sel.min() < 0 or sel.max() >= len(phases):
        raise ValueError(f"{pp.patient} {view}: frames {fixed}, {moving} outside 0..{len(phases) - 1}")
    if motion is not None:
        motion = {k: (v[sel] if isinstance(v, np.ndarray) else v) for k, v in motion.items()}
    geo = view_geometry(pp, view, size, phases[sel], motion)
    ii, jj = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
    target = np.stack([geo["mi"][0], geo["mj"][0]]).astype(np.float64)
    xm = np.stack([geo["mi"][1], geo["mj"][1]]).astype(np.float64)
    q = np.stack([ii, jj]) + target - xm
    for _ in range(iterations):
        qc = np.clip(q, 0, size - 1)  # beyond the image, X_m continues as its edge value plus a translation
        at = np.stack([map_coordinates(xm[c], qc, order=1, mode="nearest") for c in (0, 1)]) + (q - qc)
        q += target - at
    return (q - np.stack([ii, jj])).astype(np.float32)


def render_view(pp: PatientParams, view: str, size: int, phases: np.ndarray, rng: np.random.Generator,
                motion: dict | None = None):
    """Render one view at the given contraction phases (and per-frame extra ``motion``, :func:`patient_motion`).

    Returns ``images`` uint8 ``(T, size, size)``, ``labels`` uint8 ``(T, size, size)`` (exact: evaluated
    analytically at every frame) and the pixel spacing in mm (square pixels).
    """
    q = _QUALITY[pp.quality]
    T = len(phases)
    geo = view_geometry(pp, view, size, phases, motion)
    labels, U, V, d_out, mi, mj = (geo[k] for k in ("labels", "U", "V", "d_out", "mi", "mj"))
    g0, y, x, sp = geo["g0"], geo["y"], geo["x"], geo["spacing"]
    (ay, ax), (cth, sth) = geo["apex"], geo["rot"]

    # echogenicity in material coordinates: tissue background texture (real part), myocardium texture (imag)
    tex = _bilinear_wrap(_fft_field(rng, (1, size, size), (size / 24, size / 24), complex_=True), mi, mj)
    tex_bg, tex_my = tex.real * 1.41, tex.imag * 1.41
    echo = 0.2 * np.clip(1.0 + 0.5 * tex_bg, 0.2, None)
    if view == "4CH":  # right ventricle / atrium: defined at ED, carried by the tissue motion
        W0, t0, c0, H0 = g0["W"], g0["t"], g0["c"], g0["H"]
        w_rv = 0.62 * W0
        v_rv = -(W0 + t0 + 2.5 + w_rv)
        dU = U - c0
        rv = (dU < 0) & ((dU / (0.82 * c0)) ** 2 + ((V - v_rv) / w_rv) ** 2 <= 1.0)
        ra = (dU >= 0) & (((dU - 0.45 * H0) / (0.45 * H0)) ** 2 + ((V - v_rv) / (0.95 * w_rv)) ** 2 <= 1.0)
        echo = np.where((rv | ra) & (labels == 0), q["blood"], echo)
    # pericardium: a bright band just outside the epicardium
    peri = np.exp(-0.5 * ((d_out - 2.0) / 1.5) ** 2)
    echo = echo + 0.55 * peri * (labels == 0)
    echo = np.where(labels == 2, 0.6 * (1.0 + 0.2 * tex_my), echo)
    echo = np.where((labels == 1) | (labels == 3), q["blood"], echo)
    echo = np.clip(echo, 0.0, None)

    # speckle: complex Gaussian field, AR(1) in time, sampled at the material coordinates
    sig = (0.6 * size / 128 + 0.3, 1.2 * size / 128 + 0.4)
    n = _fft_field(rng, (T, size, size), sig, complex_=True)
    rho = q["rho"]
    z = np.empty_like(n)
    z[0] = n[0]
    for k in range(1, T):
        z[k] = rho * z[k - 1] + np.sqrt(1.0 - rho * rho) * n[k]
    zs = _bilinear_wrap(z, mi, mj)
    env = np.abs(zs) / 0.886  # Rayleigh envelope, mean ~1
    amp = echo * ((1.0 - q["speckle"]) + q["speckle"] * env)

    # acquisition (stationary in image coordinates): sector, depth attenuation, dropout, clutter, noise
    r = np.sqrt(y * y + x * x)
    ang = np.arctan2(x, y)
    half = np.deg2rad(40.0)
    # lateral wall (+v side) mid-level position at ED -> its beam angle and depth
    ul, vl = 0.5 * g0["L"] + g0["t"], g0["W"] + 0.5 * g0["t"]
    ly, lx = ay + ul * cth - vl * sth, ax + ul * sth + vl * cth
    la_r, la_a = np.hypot(ly, lx), np.arctan2(lx, ly)
    drop = 1.0 - q["dropout"] * np.exp(-0.5 * ((ang - la_a) / 0.10) ** 2) * np.exp(
        -0.5 * ((r - la_r) / (0.12 * pp.depth)) ** 2
    )
    att = np.exp(-0.6 * r / pp.depth)
    amp = amp * (drop * att)[None]
    clutter_tex = 0.5 + 0.5 * np.abs(_fft_field(rng, (size, size), (size / 40, size / 12)))
    clutter = q["clutter"] * np.exp(-r / (0.14 * pp.depth)) * clutter_tex
    flicker = 1.0 + 0.15 * rng.standard_normal((T, 1, 1))
    noise = np.hypot(rng.standard_normal((T, size, size), dtype=np.float32),
                     rng.standard_normal((T, size, size), dtype=np.float32)) * np.float32(q["noise"])
    amp = amp + clutter[None] * flicker + noise
    img = np.log1p(np.float32(25.0) * amp) / np.float32(np.log1p(25.0))
    sector = (np.abs(ang) <= half) & (r <= pp.depth)
    img = np.where(sector[None], np.clip(img, 0.0, 1.0), 0.0)
    return (img * 255.0 + 0.5).astype(np.uint8), labels, sp


def render_patient(pp: PatientParams, size: int, full_cycle: bool = False) -> dict:
    """Render both views of one patient: ``{view: (images, labels, spacing, phases)}`` (full cycle if asked)."""
    out = {}
    for k, view in enumerate(("2CH", "4CH")):
        phases, motion = patient_motion(pp, view, full_cycle)
        rng = np.random.default_rng([*pp.seed, 7 + k])
        img, lab, sp = render_view(pp, view, size, phases, rng, motion)
        out[view] = (img, lab, sp, phases)
    return out
