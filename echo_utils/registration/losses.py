"""The registration loss: ``-NCC(fixed, warped) + alpha * bending energy`` (paper Sec. 2.2).

The similarity is the normalised cross-correlation of intensities and the regulariser the bending energy of the
dense field, as in the authors' code, which uses TorchIR (de Vos et al. 2019).  :func:`gaussian_blur` optionally
smooths both images before the NCC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .warp import warp

__all__ = ["ncc", "sector_mask", "bending_energy", "scaled_alpha", "gaussian_blur", "LossTerms", "PreparedFrames",
           "prepare_frames", "RegistrationLoss"]

NccMode = Literal["global", "pair"]


def ncc(fixed: Tensor, warped: Tensor, mode: NccMode = "global", eps: float = 1e-6, mask: Tensor | None = None) -> Tensor:
    """Normalised cross-correlation (Pearson correlation of intensities), in [-1, 1].

    ``mode='global'`` (the authors' TorchIR code): one correlation over every pixel of the whole batch, a scalar.
    ``mode='pair'``: one correlation per pair, shape ``(N,)``; average it for a batch value.
    Not windowed in either mode.  ``mask`` (bool, the images' shape): only these pixels count (e.g.
    :func:`sector_mask`, the authors' optional loss mask).
    """
    if fixed.shape != warped.shape:
        raise ValueError(f"ncc: shapes differ, {tuple(fixed.shape)} vs {tuple(warped.shape)}")
    if mask is not None:
        if mask.shape != fixed.shape:
            raise ValueError(f"ncc: mask shape {tuple(mask.shape)} differs from the images' {tuple(fixed.shape)}")
        n = fixed.shape[0] if mode == "pair" else 1
        if mode not in ("global", "pair"):
            raise ValueError(f"unknown ncc mode {mode!r}; use 'global' or 'pair'")
        w = mask.reshape(n, -1).to(fixed.dtype)
        a, b = fixed.reshape(n, -1), warped.reshape(n, -1)
        count = w.sum(1).clamp_min(1.0)
        a = (a - (a * w).sum(1, keepdim=True) / count[:, None]) * w
        b = (b - (b * w).sum(1, keepdim=True) / count[:, None]) * w
        out = (a * b).sum(1) / torch.sqrt((a * a).sum(1) * (b * b).sum(1) + (eps * count) ** 2)
        return out[0] if mode == "global" else out
    if mode == "global":
        a, b = fixed.reshape(1, -1), warped.reshape(1, -1)
    elif mode == "pair":
        a, b = fixed.reshape(fixed.shape[0], -1), warped.reshape(warped.shape[0], -1)
    else:
        raise ValueError(f"unknown ncc mode {mode!r}; use 'global' or 'pair'")
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    cc = (a * b).mean(1)
    std = torch.sqrt((a * a).mean(1) * (b * b).mean(1) + eps**2)
    out = cc / std
    return out[0] if mode == "global" else out


def sector_mask(fixed: Tensor, threshold: float = 0.05, sigma: float = 2.0, margin: int = 4) -> Tensor:
    """The ultrasound sector of ``(N, 1, H, W)`` images in [0, 1], without its edge: bool, same shape.

    The authors' optional loss mask keeps the pixels above 1e-2 of the fixed image; dark speckle and blood pools
    inside the sector would leave holes, so the image is first smoothed (Gaussian ``sigma`` px) and thresholded
    at ``threshold``, then eroded by ``margin`` px: the sector's edge does not move with the heart, and a
    correlation that includes it pulls every field towards zero motion.
    """
    inside = (gaussian_blur(fixed, sigma) > threshold).to(fixed.dtype)
    if margin > 0:
        k = 2 * int(margin) + 1
        inside = F.avg_pool2d(F.pad(inside, (int(margin),) * 4), k, stride=1) > 1.0 - 1e-6
    return inside.bool()


def bending_energy(displacement: Tensor) -> Tensor:
    """Bending energy of a dense 2-D field ``(N, 2, H, W)`` (pixels), per pair ``(N,)``, in px^-2.

    ``mean_{p, c} (d2u_c/dy2)^2 + 2 (d2u_c/dydx)^2 + (d2u_c/dx2)^2`` with second-order forward finite
    differences in pixel units, exactly as TorchIR's ``bending_energy_2d``, which the authors' code uses: the
    mean over the pixels *and over the two displacement components* (not their sum; a sum would double the
    authors' ``alpha``).
    """
    d_y = torch.diff(displacement, dim=2)
    d_x = torch.diff(displacement, dim=3)
    d_yy = torch.diff(d_y, dim=2)[:, :, :, :-2]
    d_yx = torch.diff(d_y, dim=3)[:, :, :-1, :-1]
    d_xx = torch.diff(d_x, dim=3)[:, :, :-2, :]
    be = d_yy**2 + d_xx**2 + 2 * d_yx**2
    return be.mean(dim=(1, 2, 3))


def scaled_alpha(alpha: float, image_size: int | tuple[int, int], reference_size: int | None) -> float:
    """The bending weight at ``image_size`` that matches ``alpha`` at ``reference_size`` for the same anatomy.

    The bending energy is measured in pixel units: a field of the same physical shape sampled on an image ``k``
    times smaller has displacements ``k`` times smaller and second derivatives ``k`` times larger
    (``u_small(x) = u(k x) / k`` gives ``u_small'' = k u''``), hence ``k^2`` times the energy.  The NCC does not
    change with the image size, so ``alpha * (size / reference_size)^2`` keeps the paper's balance (``alpha = 1``
    at 512 px is ``1/16`` at 128 px, with the control grid scaled alike).  ``reference_size=None``: ``alpha``
    unchanged.  Non-square images use the mean of their two sides.
    """
    if reference_size is None:
        return float(alpha)
    if reference_size <= 0:
        raise ValueError(f"reference_size must be positive, got {reference_size}")
    size = float(np.mean(image_size)) if np.ndim(image_size) else float(image_size)
    return float(alpha) * (size / float(reference_size)) ** 2


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian smoothing of ``(N, C, H, W)`` images, ``sigma`` in pixels (0: unchanged), reflect padding."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    n, c, h, w = x.shape
    y = x.reshape(n * c, 1, h, w)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return y.reshape(n, c, h, w)


@dataclass
class PreparedFrames:
    """The per-frame inputs of :class:`RegistrationLoss` (:meth:`RegistrationLoss.prepare`)."""

    smoothed: Tensor  # (N, 1, H, W) the frames after the loss's Gaussian smoothing (the frames if sigma = 0)
    mask: Tensor | None  # (N, 1, H, W) bool sector masks, or None (loss mask 'none', or not asked for)


def prepare_frames(frames: Tensor, sigma: float, mask: str = "none") -> PreparedFrames:
    """The loss's per-frame work on ``(N, 1, H, W)`` frames: smoothed by :func:`gaussian_blur` (``sigma`` px; 0:
    the frames themselves) and, for ``mask='sector'``, their :func:`sector_mask` (``'none'``: no mask).  The one
    place :class:`RegistrationLoss` and :class:`~echo_utils.registration.models.InstanceBSpline` do it."""
    smoothed = gaussian_blur(frames, sigma) if sigma > 0 else frames
    return PreparedFrames(smoothed=smoothed, mask=sector_mask(frames) if mask == "sector" else None)


@dataclass
class LossTerms:
    loss: Tensor
    ncc: Tensor
    bending: Tensor


class RegistrationLoss(nn.Module):
    """``L = -NCC(fixed, warped) + alpha * P(u)`` (paper Sec. 2.2; de Vos et al. 2019).

    ``ncc='global'`` (default, the authors' code and hence the published numbers): one correlation over the
    whole batch.  ``ncc='pair'``: one per pair, averaged; every pair then weighs the same whatever its contrast,
    and the loss of a pair does not depend on which other pairs share its batch (needed by :class:`InstanceBSpline`).
    ``P`` is the mean bending energy over the batch (:func:`bending_energy`).  ``sigma`` (px, default 0 = the
    authors') smooths both images before the NCC in :meth:`pair_loss`; ``mask='sector'`` correlates only the
    pixels of the fixed image's sector (:func:`sector_mask`; default ``'none'``, the authors' default).
    """

    def __init__(self, alpha: float = 1.0, ncc: NccMode = "global", sigma: float = 0.0, mask: str = "none"):
        super().__init__()
        if mask not in ("none", "sector"):
            raise ValueError(f"unknown loss mask {mask!r}; use 'none' or 'sector'")
        self.alpha = float(alpha)
        self.ncc_mode = ncc
        self.sigma = float(sigma)
        self.mask = mask

    def forward(self, fixed: Tensor, warped: Tensor, displacement: Tensor, mask: Tensor | None = None) -> LossTerms:
        sim = ncc(fixed, warped, self.ncc_mode, mask=mask).mean()
        be = bending_energy(displacement).mean()
        return LossTerms(loss=-sim + self.alpha * be, ncc=sim, bending=be)

    def pair_loss(self, fixed: Tensor, moving: Tensor, displacement: Tensor) -> LossTerms:
        """Loss of ``moving`` warped by ``displacement`` against ``fixed``; with ``sigma > 0`` both images are first
        smoothed (:func:`gaussian_blur`) so that the NCC sees anatomy rather than frame-to-frame speckle; with
        ``mask='sector'`` only the fixed image's sector counts.  The same as :meth:`prepare` on both frames and
        :meth:`prepared_loss`."""
        fixed_p, moving_p = self.prepare(fixed), self.prepare(moving, mask=False)
        return self.prepared_loss(fixed_p.smoothed, moving_p.smoothed, fixed_p.mask, displacement)

    def prepare(self, frames: Tensor, mask: bool = True) -> PreparedFrames:
        """What the loss computes from a single frame, once (:func:`prepare_frames` with this loss's ``sigma`` and
        ``mask``; ``mask=False``: no sector mask, as for the moving frames).  Training computes this for every frame
        of its sequences before the first iteration instead of again in every batch (the smoothing and the mask's
        erosion were about a quarter of an iteration's time at 128 px on 2 CPU threads)."""
        return prepare_frames(frames, self.sigma, self.mask if mask else "none")

    def prepared_loss(self, fixed: Tensor, moving: Tensor, mask: Tensor | None, displacement: Tensor) -> LossTerms:
        """:meth:`pair_loss` on frames already :meth:`prepare` d: ``fixed`` and ``moving`` smoothed ``(N, 1, H, W)``,
        ``mask`` the fixed frames' sector masks (``None``: every pixel), ``displacement`` ``(N, 2, H, W)`` px."""
        return self(fixed, warp(moving, displacement), displacement, mask)
