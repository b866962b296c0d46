"""Registration quality: Jacobian determinant, folding, and a per-pair quality table.

:func:`jacobian_determinant` says whether a deformation is invertible (``det J <= 0`` marks folding);
:func:`evaluate_registration` runs a registration on pairs (through the batched path of
:mod:`echo_utils.registration.inference`) and tabulates NCC before and after, folding and speed, as the book's
registration chapter reports them; :func:`sample_pairs` draws the chapter's evaluation pairs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .losses import ncc
from .warp import warp

__all__ = ["jacobian_determinant", "folding_fraction", "evaluate_registration", "sample_pairs"]


def jacobian_determinant(displacement: Tensor) -> Tensor:
    """Determinant of the Jacobian of ``phi(p) = p + u(p)``, ``(N, H, W)`` (dimensionless).

    ``det = (1 + du_y/dy)(1 + du_x/dx) - (du_y/dx)(du_x/dy)`` with central differences inside the image and
    one-sided differences at its edges (``torch.gradient``).  ``det <= 0`` marks folding; 1 means no area change.
    """
    if displacement.ndim != 4 or displacement.shape[1] != 2:
        raise ValueError(f"displacement must be (N, 2, H, W), got {tuple(displacement.shape)}")
    uy, ux = displacement[:, 0], displacement[:, 1]
    duy_dy, duy_dx = torch.gradient(uy, dim=(1, 2))
    dux_dy, dux_dx = torch.gradient(ux, dim=(1, 2))
    return (1 + duy_dy) * (1 + dux_dx) - duy_dx * dux_dy


def folding_fraction(displacement: Tensor) -> Tensor:
    """Fraction of pixels with a non-positive Jacobian determinant, per pair ``(N,)``."""
    return (jacobian_determinant(displacement) <= 0).float().mean(dim=(1, 2))


def evaluate_registration(
    reg: Callable[[Tensor, Tensor], Tensor],
    fixed: np.ndarray,
    moving: np.ndarray,
    *,
    batch_size: int = 32,
    precision: str | None = None,
):
    """Per-pair quality of a registration on ``(N, H, W)`` arrays, registered through
    :func:`~echo_utils.registration.inference.register` (the batched inference path).

    Returns a DataFrame, one row per pair: ``ncc_before`` (identity), ``ncc_after``, ``folding`` (fraction of pixels
    with det J <= 0), ``jac_min``, ``max_displacement`` (px), and ``seconds`` (wall time per pair, batch time /
    batch size).
    """
    import pandas as pd

    from .inference import register

    f = torch.from_numpy(np.asarray(fixed, dtype=np.float32))[:, None]
    m = torch.from_numpy(np.asarray(moving, dtype=np.float32))[:, None]
    if f.shape != m.shape:
        raise ValueError(f"fixed {tuple(f.shape[::2])} and moving {tuple(m.shape[::2])} differ in shape")
    rows = []
    for i in range(0, f.shape[0], batch_size):
        fb, mb = f[i : i + batch_size], m[i : i + batch_size]
        t0 = time.perf_counter()
        u = torch.from_numpy(register(reg, fb, mb, batch_size=batch_size, precision=precision))
        dt = (time.perf_counter() - t0) / fb.shape[0]
        with torch.no_grad():
            before = ncc(fb, mb, "pair")
            after = ncc(fb, warp(mb, u), "pair")
            det = jacobian_determinant(u)
        for j in range(fb.shape[0]):
            rows.append(
                {
                    "ncc_before": float(before[j]),
                    "ncc_after": float(after[j]),
                    "folding": float((det[j] <= 0).float().mean()),
                    "jac_min": float(det[j].min()),
                    "max_displacement": float(u[j].norm(dim=0).max()),
                    "seconds": dt,
                }
            )
    return pd.DataFrame(rows)


def sample_pairs(sequences: Sequence, n_random: int = 2, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Evaluation pairs per sequence: (ED fixed, ES moving), (ES fixed, ED moving) and ``n_random`` random ordered
    pairs.  Returns ``fixed (N,H,W)``, ``moving (N,H,W)`` and one dict per pair (key, fixed, moving, kind)."""
    rng = np.random.default_rng(seed)
    fixed, moving, info = [], [], []
    for seq in sequences:
        chosen = [(seq.ed, seq.es, "ED<-ES"), (seq.es, seq.ed, "ES<-ED")]
        for _ in range(n_random):
            a, b = rng.choice(seq.n_frames, 2, replace=False)
            chosen.append((int(a), int(b), "random"))
        for a, b, kind in chosen:
            fixed.append(seq.images[a])
            moving.append(seq.images[b])
            info.append({"key": seq.key, "fixed": a, "moving": b, "kind": kind})
    return np.stack(fixed).astype(np.float32), np.stack(moving).astype(np.float32), info
