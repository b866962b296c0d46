"""Cubic B-spline free-form deformation: control-point displacements -> dense displacement field.

Control points on a grid of spacing ``s`` pixels become a dense field through a separable transposed convolution
with the sampled cubic B-spline kernel (stride ``s``, kernel ``4 s``; the TorchIR formulation used by the paper's
authors), computed here as two banded matrix products (the same linear map, faster on CPU).  Rueckert et al. (1999)
introduced this free-form deformation for image registration; de Vos et al. (2019) put it behind a network.

Control-grid alignment
----------------------
Control point ``k`` sits at pixel coordinate ``k * s + (s - 1) / 2``: the centre of the ``k``-th ``s x s`` tile, so
an image of ``n * s`` pixels has ``n`` control points per axis laid out symmetrically over the whole image, and
every pixel lies within the support (``+-2 s``) of at least three control points per axis.  TorchIR's transposed
convolution puts them at ``k * s + s / 2 - 1`` (half a pixel off the tile centre); the difference is immaterial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "cubic_bspline",
    "bspline_kernel_1d",
    "control_grid_shape",
    "control_point_positions",
    "bspline_basis_matrix",
    "bspline_upsample",
]


def cubic_bspline(t: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """The centred cubic B-spline basis function beta3(t), support ``|t| < 2``.

    ``beta3(t) = 2/3 - t^2 + |t|^3 / 2`` for ``|t| < 1``, ``(2 - |t|)^3 / 6`` for ``1 <= |t| < 2``, else 0.
    Works on numpy arrays and torch tensors (same type out).
    """
    lib = torch if isinstance(t, Tensor) else np
    a = lib.abs(t)
    inner = 2.0 / 3.0 - a**2 + a**3 / 2.0
    outer = (2.0 - a) ** 3 / 6.0
    zero = lib.zeros_like(a)
    return lib.where(a < 1, inner, lib.where(a < 2, outer, zero))


def bspline_kernel_1d(grid_spacing: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The sampled cubic B-spline kernel for a transposed convolution with stride ``grid_spacing``.

    Returns a 1-D tensor of length ``L = 4 s - (s mod 2)`` holding ``beta3((j - (L - 1) / 2) / s)``: the weights of one
    control point on the pixels around it (pixel offsets ``-2s+1/2 ... 2s-1/2`` for even ``s``).  Its samples
    sum to ``s`` (partition of unity after the stride-``s`` overlap).
    """
    s = int(grid_spacing)
    if s < 1:
        raise ValueError(f"grid_spacing must be a positive integer, got {grid_spacing}")
    length = 4 * s - (s % 2)
    t = (torch.arange(length, dtype=torch.float64) - (length - 1) / 2) / s
    return cubic_bspline(t).to(dtype)


def control_grid_shape(image_size: Sequence[int], grid_spacing: int) -> tuple[int, int]:
    """Control points per axis, ``ceil(size / s)``: one per ``s x s`` tile."""
    return tuple(int(math.ceil(n / grid_spacing)) for n in image_size)  # type: ignore[return-value]


def control_point_positions(n: int, grid_spacing: int) -> np.ndarray:
    """Pixel coordinates of the ``n`` control points along one axis: ``k s + (s - 1) / 2``."""
    return np.arange(n) * grid_spacing + (grid_spacing - 1) / 2


_KERNEL_CACHE: dict[tuple, Tensor] = {}


def _kernel(grid_spacing: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    key = (grid_spacing, dtype, str(device))
    k = _KERNEL_CACHE.get(key)
    if k is None:
        with torch.inference_mode(False):  # a cached tensor must be usable with and without autograd
            k = bspline_kernel_1d(grid_spacing, dtype).to(device)
        _KERNEL_CACHE[key] = k
    return k


def bspline_basis_matrix(size: int, n_control: int, grid_spacing: int) -> np.ndarray:
    """``(size, n_control)`` float64 matrix ``B[y, i] = beta3((y - p_i) / s)``: one axis of the FFD.

    A stride-``s`` transposed convolution with :func:`bspline_kernel_1d` is multiplication by this banded matrix.
    """
    p = control_point_positions(n_control, grid_spacing)
    return cubic_bspline((np.arange(size)[:, None] - p[None, :]) / grid_spacing)


_BASIS_CACHE: dict[tuple, Tensor] = {}


def _basis(size: int, n_control: int, s: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    key = (size, n_control, s, dtype, str(device))
    b = _BASIS_CACHE.get(key)
    if b is None:
        with torch.inference_mode(False):  # a cached tensor must be usable with and without autograd
            b = torch.from_numpy(bspline_basis_matrix(size, n_control, s)).to(dtype=dtype, device=device)
        if len(_BASIS_CACHE) > 32:
            _BASIS_CACHE.clear()
        _BASIS_CACHE[key] = b
    return b


def bspline_upsample(
    coefficients: Tensor, grid_spacing: int, size: Sequence[int], method: Literal["matmul", "conv"] = "matmul"
) -> Tensor:
    """Dense displacement from control-point displacements (cubic B-spline FFD).

    Parameters
    ----------
    coefficients : ``(N, C, gh, gw)`` control-point displacements (any unit; the output has the same unit).
    grid_spacing : ``s``, control-point spacing in pixels.
    size : ``(H, W)`` of the output, at most ``(gh s, gw s)``.
    method : ``'conv'``: two separable 1-D transposed convolutions with the sampled cubic kernel (stride ``s``,
        kernel ``~4 s``, the TorchIR formulation); ``'matmul'`` (default): the same linear map written as
        ``B_y @ C @ B_x^T`` with the banded matrices of :func:`bspline_basis_matrix` -- identical values (to float
        rounding), several times faster on CPU where PyTorch's large-kernel transposed convolution is slow.

    Returns
    -------
    ``(N, C, H, W)``: ``u(y, x) = sum_ij c_ij beta3((y - p_i) / s) beta3((x - p_j) / s)`` with
    ``p_k = k s + (s - 1) / 2`` (see the module docstring).
    """
    n, c, gh, gw = coefficients.shape
    h, w = int(size[0]), int(size[1])
    s = int(grid_spacing)
    if h > gh * s or w > gw * s:
        raise ValueError(f"a {gh}x{gw} control grid of spacing {s} covers {gh * s}x{gw * s} px, not {h}x{w}")
    if method == "matmul":
        by = _basis(h, gh, s, coefficients.dtype, coefficients.device)
        bx = _basis(w, gw, s, coefficients.dtype, coefficients.device)
        return by @ coefficients @ bx.T
    if method != "conv":
        raise ValueError(f"unknown upsampling method {method!r}; use 'matmul' or 'conv'")
    k = _kernel(s, coefficients.dtype, coefficients.device)
    length = k.numel()
    crop = (3 * s) // 2
    x = coefficients.reshape(n * c, 1, gh, gw)
    x = F.conv_transpose2d(x, k.view(1, 1, length, 1), stride=(s, 1), padding=(crop, 0))
    x = F.conv_transpose2d(x, k.view(1, 1, 1, length), stride=(1, s), padding=(0, crop))
    return x[:, :, :h, :w].reshape(n, c, h, w)
