"""End-point error of a registration against the synthetic phantom's exact motion (the truth a loss cannot give).

A registration's loss says how well the warped image matches, not whether the field is the tissue's motion: raw
NCC on decorrelating speckle, for example, rewards a sub-pixel blur.  On the phantom the motion of every pixel is
known exactly (:func:`echo_utils.data.phantom.pair_displacement`), so a registration can be judged by its
**end-point error** (EPE), ``|u_registered(p) - u_true(p)|`` in pixels, averaged over the myocardium of the fixed
frame (where the motion is physical: the blood pools' motion is only a convention of the phantom).  The identity
(no motion) scores the mean true displacement: the control every registration must beat.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .inference import register

__all__ = ["PAIR_KINDS", "phantom_pairs", "endpoint_error"]

#: ``'step'``: consecutive frames ``(t + 1, t)`` from ED to ES (what sequential propagation registers);
#: ``'ed_es'``: ``(ES, ED)`` and ``(ED, ES)`` (the largest motion of the half sequence)
PAIR_KINDS = ("step", "ed_es")


def phantom_pairs(root: str | Path, sequences: Sequence, kind: str = "step", *, label: int = 2) -> dict:
    """Frame pairs of phantom sequences with their exact displacement.

    Parameters
    ----------
    root : the synthetic cohort's folder (holding ``cohort.json``; the run's ``paths.data``).
    sequences : :class:`~echo_utils.camus.EchoSequence` of that cohort, with ``dense`` labels.
    kind : one of :data:`PAIR_KINDS`.
    label : the structure over which errors are averaged (2: myocardium).

    Returns
    -------
    ``{'fixed', 'moving'}`` float32 ``(N, H, W)``, ``'truth'`` float32 ``(N, 2, H, W)`` (pixels),
    ``'mask'`` bool ``(N, H, W)`` (``label`` in the fixed frame) and ``'info'`` (one dict per pair: key, fixed,
    moving, kind).
    """
    from ..data import phantom

    if kind not in PAIR_KINDS:
        raise ValueError(f"unknown pair kind {kind!r}; expected one of {PAIR_KINDS}")
    fixed, moving, truth, mask, info = [], [], [], [], []
    for seq in sequences:
        if seq.dense is None:
            raise ValueError(f"{seq.key}: no dense labels; phantom_pairs needs a synthetic sequence")
        pp = phantom.patient_params(root, seq.patient)
        ed, es = int(seq.ed), int(seq.es)
        if kind == "step":
            step = 1 if es > ed else -1
            pairs = [(t + step, t) for t in range(ed, es, step)]
        else:
            pairs = [(es, ed), (ed, es)]
        size = seq.images.shape[1]
        for f, m in pairs:
            fixed.append(seq.images[f])
            moving.append(seq.images[m])
            truth.append(phantom.pair_displacement(pp, seq.view, size, f, m))
            mask.append(np.asarray(seq.dense[f]) == label)
            info.append({"key": seq.key, "fixed": f, "moving": m, "kind": kind})
    return {
        "fixed": np.stack(fixed).astype(np.float32),
        "moving": np.stack(moving).astype(np.float32),
        "truth": np.stack(truth).astype(np.float32),
        "mask": np.stack(mask),
        "info": info,
    }


def endpoint_error(registrations: Mapping[str, Callable], pairs: dict, *, batch_size: int = 32) -> "pd.DataFrame":  # noqa: F821
    """Per-pair end-point error (px) of each registration on :func:`phantom_pairs`.

    Returns a long table, one row per (registration, pair): ``registration``, ``key``, ``fixed``, ``moving``,
    ``kind``, ``epe_px`` (mean EPE over the mask), ``true_px`` (mean true displacement there: the identity's EPE)
    and ``fields`` is not stored (call :func:`~echo_utils.registration.inference.register` to get them).
    """
    import pandas as pd

    truth, mask = pairs["truth"], pairs["mask"]
    true_mag = np.hypot(truth[:, 0], truth[:, 1])
    rows = []
    for name, reg in registrations.items():
        u = register(reg, pairs["fixed"], pairs["moving"], batch_size=batch_size)
        err = np.hypot(u[:, 0] - truth[:, 0], u[:, 1] - truth[:, 1])
        for i, inf in enumerate(pairs["info"]):
            m = mask[i]
            rows.append({"registration": name, **inf, "epe_px": float(err[i][m].mean()),
                         "true_px": float(true_mag[i][m].mean())})
    return pd.DataFrame(rows)
