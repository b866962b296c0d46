"""Warping: resample an image or a label map at ``p + u(p)`` for a displacement field ``u`` in pixels.

``warped(p) = moving(p + u(p))`` with pixel centres at integer pixel coordinates and border padding: the paper's
authors' ``grid_sample(..., align_corners=True, padding_mode='border')`` semantics.  Images are resampled
bilinearly, label maps with nearest neighbour (the authors' choice) or by linear interpolation of one-hot maps.
:func:`deformation_grid` draws the deformed pixel grid of one field for figures.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["sampling_grid", "warp", "deformation_grid"]

WarpMode = Literal["bilinear", "nearest", "onehot"]


_GRID_CACHE: dict[tuple, Tensor] = {}


def _normalised_centres(n: int) -> Tensor:
    """float64 grid_sample coordinates of pixel centres ``k = 0..n-1`` with ``align_corners=False``: (2k+1)/n - 1."""
    return (2.0 * torch.arange(n, dtype=torch.float64) + 1.0) / n - 1.0


def _identity_normalised(h: int, w: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(1, H, W, 2)`` identity grid in grid_sample's normalised (x, y) coordinates (align_corners=False)."""
    key = (h, w, dtype, str(device))
    g = _GRID_CACHE.get(key)
    if g is None:
        with torch.inference_mode(False):  # a cached tensor must be usable with and without autograd
            gy, gx = torch.meshgrid(_normalised_centres(h), _normalised_centres(w), indexing="ij")
            g = torch.stack((gx, gy), dim=-1)[None].to(dtype=dtype, device=device)
        if len(_GRID_CACHE) > 16:
            _GRID_CACHE.clear()
        _GRID_CACHE[key] = g
    return g


def sampling_grid(displacement: Tensor) -> Tensor:
    """``(N, H, W, 2)`` grid_sample coordinates (x, y; ``align_corners=False``) of the points ``p + u(p)``.

    Pixel ``k`` has the normalised coordinate ``(2k + 1) / n - 1``.  Sampling is the same as the authors'
    ``align_corners=True`` convention (pixel centres at integer pixel coordinates, border padding clamps to
    ``[0, n-1]``); this form is used because for power-of-two sizes every pixel centre is an exact binary
    fraction, so a zero displacement reproduces the image exactly (with ``align_corners=True`` the float32
    round trip is off by up to ~1e-5 px at 512).
    """
    n, two, h, w = displacement.shape
    if two != 2:
        raise ValueError(f"displacement must be (N, 2, H, W), got {tuple(displacement.shape)}")
    base = _identity_normalised(h, w, displacement.dtype, displacement.device)
    scale = displacement.new_tensor([2.0 / w, 2.0 / h])
    # channel 1 (columns) is grid_sample's x, channel 0 (rows) its y
    return base + displacement.flip(1).permute(0, 2, 3, 1) * scale


def warp(x: Tensor, displacement: Tensor, mode: WarpMode = "bilinear", *, n_classes: int | None = None) -> Tensor:
    """Resample ``x`` at ``p + u(p)``: ``warped(p) = x(p + u(p))``, with border padding.

    Pixel centres sit at integer pixel coordinates and out-of-image points take the nearest edge value (the
    authors' ``grid_sample(..., align_corners=True, padding_mode='border')`` semantics; see :func:`sampling_grid`).

    Parameters
    ----------
    x : ``(N, C, H, W)`` images (float) or label maps (any dtype; ``C == 1`` for ``'onehot'``).
    displacement : ``(N, 2, H, W)`` in pixels, channel 0 rows, channel 1 columns.  ``N`` may be 1 for ``x`` with
        ``N > 1`` and vice versa (broadcast).
    mode : ``'bilinear'`` for images; ``'nearest'`` for label maps (nearest neighbour, the authors' choice);
        ``'onehot'`` for label maps: bilinear interpolation of the one-hot maps followed by argmax (smoother
        boundaries, no aliasing of thin structures).
    n_classes : number of labels for ``'onehot'`` (default ``max(x) + 1``).

    Returns
    -------
    ``(N, C, H, W)`` with the dtype of ``x``.
    """
    if x.ndim != 4 or displacement.ndim != 4:
        raise ValueError(f"warp expects (N,C,H,W) and (N,2,H,W), got {tuple(x.shape)} and {tuple(displacement.shape)}")
    if x.shape[-2:] != displacement.shape[-2:]:
        raise ValueError(f"image {tuple(x.shape[-2:])} and displacement {tuple(displacement.shape[-2:])} differ in size")
    if x.shape[0] != displacement.shape[0]:
        if x.shape[0] == 1:
            x = x.expand(displacement.shape[0], *x.shape[1:])
        elif displacement.shape[0] == 1:
            displacement = displacement.expand(x.shape[0], *displacement.shape[1:])
        else:
            raise ValueError(f"batch sizes differ: {x.shape[0]} images, {displacement.shape[0]} displacements")
    dtype = displacement.dtype if displacement.is_floating_point() else torch.float32
    grid = sampling_grid(displacement.to(dtype))
    if mode == "bilinear":
        src = x if x.is_floating_point() else x.to(dtype)
        out = F.grid_sample(src.to(grid.dtype), grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.to(x.dtype) if x.is_floating_point() else out
    if mode == "nearest":
        out = F.grid_sample(x.to(grid.dtype), grid, mode="nearest", padding_mode="border", align_corners=False)
        return out.to(x.dtype) if not x.is_floating_point() else out
    if mode == "onehot":
        if x.shape[1] != 1:
            raise ValueError(f"'onehot' warping needs a single-channel label map, got {x.shape[1]} channels")
        labels = x[:, 0].long()
        k = int(n_classes) if n_classes is not None else int(labels.max().item()) + 1
        onehot = F.one_hot(labels, k).permute(0, 3, 1, 2).to(grid.dtype)
        prob = F.grid_sample(onehot, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return prob.argmax(1, keepdim=True).to(x.dtype)
    raise ValueError(f"unknown warp mode {mode!r}; use 'bilinear', 'nearest' or 'onehot'")


def deformation_grid(displacement: np.ndarray | Tensor, step: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """Polylines of the deformed grid ``phi(p) = p + u(p)`` for one ``(2, H, W)`` field (pixels).

    Every ``step``-th row and column of the fixed image's pixel grid, mapped to where it samples the moving image.
    Returns ``[(rows, cols), ...]`` arrays to draw as lines (rows downwards).
    """
    u = displacement.detach().cpu().numpy() if isinstance(displacement, Tensor) else np.asarray(displacement)
    if u.ndim != 3 or u.shape[0] != 2:
        raise ValueError(f"deformation_grid expects one (2, H, W) field, got {u.shape}")
    h, w = u.shape[1:]
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    py, px = yy + u[0], xx + u[1]
    lines = [(py[r, :], px[r, :]) for r in range(0, h, step)]
    lines += [(py[:, c], px[:, c]) for c in range(0, w, step)]
    return lines
