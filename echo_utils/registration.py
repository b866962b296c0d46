"""Deformable image registration: the DLIR B-spline network and its instance-optimised twin.

A *registration* is any callable ``reg(fixed, moving) -> displacement`` with ``fixed`` and ``moving`` float tensors
``(N, 1, H, W)`` in [0, 1] and the displacement ``(N, 2, H, W)`` in **pixels** (channel 0 along rows, channel 1
along columns).  The warped image is ``warped(p) = moving(p + u(p))`` (DESIGN.md), computed by :func:`warp`.

Building blocks (one concept each, as in TorchIR / deepali):

* :func:`cubic_bspline`, :func:`bspline_kernel_1d`, :func:`bspline_upsample` -- the cubic B-spline free-form
  deformation (FFD): control-point displacements on a grid of spacing ``s`` pixels become a dense field through a
  separable transposed convolution with the sampled cubic B-spline kernel (stride ``s``, kernel ``4 s``), computed
  as two banded matrix products (the same linear map, faster on CPU).
* :func:`warp` -- ``grid_sample`` (authors' align_corners=True semantics) with border padding (bilinear images, nearest labels,
  or linear interpolation of one-hot maps followed by argmax).
* :func:`ncc`, :func:`bending_energy`, :class:`RegistrationLoss` -- ``-NCC + alpha * bending energy``.
* :class:`BSplineDIR` -- the DIRNet of de Vos et al. (2019) + the B-spline transformer: one network pass per pair.
* :class:`InstanceBSpline` -- the same grid and loss optimised with Adam for each pair (classical FFD,
  Rueckert et al. 1999); needs no training.
* :func:`train_registration` / :func:`load_registration` / :func:`load_training_log` -- cached, resumable training.
* :func:`jacobian_determinant`, :func:`folding_fraction` -- is the deformation invertible?

Control-grid alignment
----------------------
Control point ``k`` sits at pixel coordinate ``k * s + (s - 1) / 2``: the centre of the ``k``-th ``s x s`` tile, so
an image of ``n * s`` pixels has ``n`` control points per axis laid out symmetrically over the whole image, and
every pixel lies within the support (``+-2 s``) of at least three control points per axis.  TorchIR's transposed
convolution puts them at ``k * s + s / 2 - 1`` (half a pixel off the tile centre); the difference is immaterial.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "cubic_bspline",
    "bspline_kernel_1d",
    "control_grid_shape",
    "control_point_positions",
    "bspline_basis_matrix",
    "bspline_upsample",
    "warp",
    "ncc",
    "bending_energy",
    "RegistrationLoss",
    "gaussian_blur",
    "BSplineDIR",
    "InstanceBSpline",
    "jacobian_determinant",
    "folding_fraction",
    "frame_pairs",
    "train_registration",
    "load_registration",
    "load_training_log",
    "evaluate_registration",
    "register",
    "sample_pairs",
    "deformation_grid",
]

NccMode = Literal["global", "pair"]
WarpMode = Literal["bilinear", "nearest", "onehot"]

#: bump when the meaning of a saved checkpoint changes (part of the cache key)
_FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------------------------
# Cubic B-spline transformer
# ---------------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------------
# Warping
# ---------------------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------------------------


def ncc(fixed: Tensor, warped: Tensor, mode: NccMode = "global", eps: float = 1e-6) -> Tensor:
    """Normalised cross-correlation (Pearson correlation of intensities), in [-1, 1].

    ``mode='global'`` (the authors' TorchIR code): one correlation over every pixel of the whole batch, a scalar.
    ``mode='pair'``: one correlation per pair, shape ``(N,)``; average it for a batch value.
    Not windowed in either mode.
    """
    if fixed.shape != warped.shape:
        raise ValueError(f"ncc: shapes differ, {tuple(fixed.shape)} vs {tuple(warped.shape)}")
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


def bending_energy(displacement: Tensor) -> Tensor:
    """Bending energy of a dense 2-D field, per pair ``(N,)``, in px^-2 (pixel units, unit pixel spacing).

    ``mean_p sum_c (d2u_c/dy2)^2 + 2 (d2u_c/dydx)^2 + (d2u_c/dx2)^2`` with second-order forward finite
    differences, as TorchIR's ``bending_energy_2d`` (mean over pixels, summed over the two components).
    """
    d_y = torch.diff(displacement, dim=2)
    d_x = torch.diff(displacement, dim=3)
    d_yy = torch.diff(d_y, dim=2)[:, :, :, :-2]
    d_yx = torch.diff(d_y, dim=3)[:, :, :-1, :-1]
    d_xx = torch.diff(d_x, dim=3)[:, :, :-2, :]
    be = d_yy**2 + d_xx**2 + 2 * d_yx**2
    return be.mean(dim=(2, 3)).sum(1)


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
    authors') smooths both images before the NCC in :meth:`pair_loss`.
    """

    def __init__(self, alpha: float = 1.0, ncc: NccMode = "global", sigma: float = 0.0):
        super().__init__()
        self.alpha = float(alpha)
        self.ncc_mode = ncc
        self.sigma = float(sigma)

    def forward(self, fixed: Tensor, warped: Tensor, displacement: Tensor) -> LossTerms:
        sim = ncc(fixed, warped, self.ncc_mode).mean()
        be = bending_energy(displacement).mean()
        return LossTerms(loss=-sim + self.alpha * be, ncc=sim, bending=be)

    def pair_loss(self, fixed: Tensor, moving: Tensor, displacement: Tensor) -> LossTerms:
        """Loss of ``moving`` warped by ``displacement`` against ``fixed``; with ``sigma > 0`` both images are first
        smoothed (:func:`gaussian_blur`) so that the NCC sees anatomy rather than frame-to-frame speckle."""
        if self.sigma > 0:
            fixed, moving = gaussian_blur(fixed, self.sigma), gaussian_blur(moving, self.sigma)
        return self(fixed, warp(moving, displacement), displacement)


# ---------------------------------------------------------------------------------------------------------------
# DLIR network
# ---------------------------------------------------------------------------------------------------------------


class BSplineDIR(nn.Module):
    """DIRNet (de Vos et al. 2019, as in TorchIR) + cubic B-spline transformer: ``reg(fixed, moving) -> u``.

    Architecture (paper-facts.md): fixed and moving stacked as 2 channels; ``num_conv_layers`` (5) blocks of
    3x3 conv + ELU, the first ``log2(grid_spacing)`` of them followed by 2x2 average pooling (5 poolings at
    spacing 32: 512 -> 16x16 control points; 3 poolings at spacing 8: 128 -> 16x16); then ``num_dense_layers``
    (2) 1x1 conv + ELU and a linear 1x1 conv to 2 channels, zero-initialised so the untrained network is the
    identity.  The output is the control-point displacement in pixels (channel 0 rows, 1 columns), upsampled by
    :func:`bspline_upsample`.

    Parameters
    ----------
    grid_spacing : control-point spacing in pixels, a power of two (paper: 32 at 512x512).
    kernels : feature maps per layer (paper: 32).
    image_size : ``(H, W)``, multiples of ``grid_spacing``; stored in checkpoints (the network itself is fully
        convolutional and accepts any multiple of ``grid_spacing``).
    """

    def __init__(
        self,
        grid_spacing: int = 32,
        kernels: int = 32,
        image_size: Sequence[int] = (512, 512),
        num_conv_layers: int = 5,
        num_dense_layers: int = 2,
    ):
        super().__init__()
        n_pool = math.log2(grid_spacing)
        if grid_spacing < 1 or n_pool != int(n_pool):
            raise ValueError(f"BSplineDIR: grid_spacing must be a power of two (one pooling per factor 2), got {grid_spacing}")
        n_pool = int(n_pool)
        if n_pool > num_conv_layers:
            raise ValueError(f"grid_spacing {grid_spacing} needs {n_pool} poolings but there are {num_conv_layers} conv layers")
        image_size = tuple(int(v) for v in image_size)
        if any(v % grid_spacing for v in image_size):
            raise ValueError(f"image size {image_size} is not a multiple of grid_spacing {grid_spacing}")
        self.config = dict(
            grid_spacing=int(grid_spacing),
            kernels=int(kernels),
            image_size=list(image_size),
            num_conv_layers=int(num_conv_layers),
            num_dense_layers=int(num_dense_layers),
        )
        self.grid_spacing = int(grid_spacing)
        self.image_size = image_size
        layers: list[nn.Module] = []
        in_ch = 2
        for i in range(num_conv_layers):
            layers += [nn.Conv2d(in_ch, kernels, 3, padding=1), nn.ELU()]
            if i < n_pool:
                layers.append(nn.AvgPool2d(2))
            in_ch = kernels
        for _ in range(num_dense_layers):
            layers += [nn.Conv2d(kernels, kernels, 1), nn.ELU()]
        out = nn.Conv2d(kernels, 2, 1)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        layers.append(out)
        self.net = nn.Sequential(*layers)
        self.run_dir: Path | None = None  # set by train_registration / load_registration
        self.inference_dtype: torch.dtype | None = None  # e.g. torch.bfloat16: autocast at inference

    def control_points(self, fixed: Tensor, moving: Tensor) -> Tensor:
        """``(N, 2, H/s, W/s)`` control-point displacements in pixels."""
        if fixed.shape != moving.shape or fixed.ndim != 4 or fixed.shape[1] != 1:
            raise ValueError(f"fixed and moving must both be (N,1,H,W); got {tuple(fixed.shape)}, {tuple(moving.shape)}")
        h, w = fixed.shape[-2:]
        if h % self.grid_spacing or w % self.grid_spacing:
            raise ValueError(f"image size {(h, w)} is not a multiple of grid_spacing {self.grid_spacing}")
        x = torch.cat((fixed, moving), dim=1)
        if not self.training and not torch.is_grad_enabled():
            x = x.contiguous(memory_format=torch.channels_last)
        if self.inference_dtype is not None and not self.training and not torch.is_grad_enabled():
            with torch.autocast(x.device.type, dtype=self.inference_dtype):
                return self.net(x).float().contiguous()
        return self.net(x).contiguous()

    def forward(self, fixed: Tensor, moving: Tensor) -> Tensor:
        """``(N, 2, H, W)`` displacement in pixels such that ``warp(moving, u) ~ fixed``."""
        cp = self.control_points(fixed, moving)
        return bspline_upsample(cp, self.grid_spacing, fixed.shape[-2:])

    def optimise_for_inference(self, dtype: torch.dtype | None = None) -> "BSplineDIR":
        """Eval mode, no gradients, channels_last weights (the fast CPU path); returns self.

        ``dtype=torch.bfloat16`` additionally runs the convolutions under autocast at inference (about 1.6x faster
        on CPUs with AVX-512 bf16; the control points differ from fp32 by ~1e-2 px); the B-spline upsampling stays
        in fp32.  ``None`` keeps (or, passed explicitly after a bf16 call, does not reset) the current setting.
        """
        if dtype is not None:
            self.inference_dtype = None if dtype == torch.float32 else dtype
        self.eval()
        self.requires_grad_(False)
        self.to(memory_format=torch.channels_last)
        return self

    def __call__(self, fixed: Tensor, moving: Tensor) -> Tensor:  # type: ignore[override]
        # In eval mode with nothing requiring a gradient, run under inference_mode (channels_last fast path).
        if not self.training and not (fixed.requires_grad or moving.requires_grad) and not any(
            p.requires_grad for p in self.parameters()
        ):
            with torch.inference_mode():
                return super().__call__(fixed, moving)
        return super().__call__(fixed, moving)


# ---------------------------------------------------------------------------------------------------------------
# Instance optimisation (classical FFD)
# ---------------------------------------------------------------------------------------------------------------


class InstanceBSpline:
    """Free-form deformation optimised per pair: the same B-spline grid and loss as :class:`BSplineDIR`.

    All ``N`` pairs of a call are optimised at once (one batched Adam over an ``(N, 2, gh, gw)`` parameter
    tensor).  The loss is the *sum* over pairs of ``-NCC_i + alpha * P_i`` with per-pair NCC, so the pairs do not
    interact: the result equals optimising each pair alone (Adam's update is element-wise).

    Parameters
    ----------
    grid_spacing : control-point spacing in pixels (any positive integer).
    alpha : bending-energy weight.
    iterations : Adam steps.
    lr : Adam learning rate, in pixels per step for the control points.
    sigma : Gaussian smoothing (px) of both images before the NCC (as ``loss_sigma`` of the network; 0 = raw).
    """

    def __init__(
        self, grid_spacing: int = 32, alpha: float = 1.0, iterations: int = 100, lr: float = 0.05, sigma: float = 0.0
    ):
        if grid_spacing < 1 or iterations < 1 or lr <= 0 or sigma < 0:
            raise ValueError(
                f"InstanceBSpline: bad settings spacing={grid_spacing} iterations={iterations} lr={lr} sigma={sigma}"
            )
        self.grid_spacing = int(grid_spacing)
        self.alpha = float(alpha)
        self.iterations = int(iterations)
        self.lr = float(lr)
        self.sigma = float(sigma)
        self.history: list[float] | None = None

    #: tells callers (``fusion.register_pairs``) to call it under ``no_grad``, not ``inference_mode``; it works
    #: under both, since it re-enables autograd on copies of its inputs.
    needs_grad = True

    def __repr__(self) -> str:
        return (
            f"InstanceBSpline(grid_spacing={self.grid_spacing}, alpha={self.alpha}, "
            f"iterations={self.iterations}, lr={self.lr}, sigma={self.sigma})"
        )

    def control_points(self, fixed: Tensor, moving: Tensor) -> Tensor:
        """Optimise and return the ``(N, 2, gh, gw)`` control-point displacements (pixels)."""
        if fixed.shape != moving.shape or fixed.ndim != 4 or fixed.shape[1] != 1:
            raise ValueError(f"fixed and moving must both be (N,1,H,W); got {tuple(fixed.shape)}, {tuple(moving.shape)}")
        size = fixed.shape[-2:]
        gh, gw = control_grid_shape(size, self.grid_spacing)
        with torch.inference_mode(False), torch.enable_grad():
            fixed = gaussian_blur(fixed.detach().clone().float(), self.sigma)
            moving = gaussian_blur(moving.detach().clone().float(), self.sigma)
            cp = torch.zeros(fixed.shape[0], 2, gh, gw, device=fixed.device, requires_grad=True)
            opt = torch.optim.Adam([cp], lr=self.lr)
            history = []
            for _ in range(self.iterations):
                u = bspline_upsample(cp, self.grid_spacing, size)
                warped = warp(moving, u)
                loss = (-ncc(fixed, warped, "pair") + self.alpha * bending_energy(u)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                history.append(loss.item() / fixed.shape[0])
            self.history = history
            return cp.detach()

    def __call__(self, fixed: Tensor, moving: Tensor) -> Tensor:
        """``(N, 2, H, W)`` displacement in pixels such that ``warp(moving, u) ~ fixed``."""
        cp = self.control_points(fixed, moving)
        return bspline_upsample(cp, self.grid_spacing, fixed.shape[-2:])


# ---------------------------------------------------------------------------------------------------------------
# Deformation quality
# ---------------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------------
# Data: intra-patient frame pairs
# ---------------------------------------------------------------------------------------------------------------


def frame_pairs(sequences: Sequence, *, exclude_patients: Sequence[str] = ()) -> np.ndarray:
    """Every ordered intra-sequence frame pair ``(a, b)``, ``a != b``: rows ``(sequence index, fixed, moving)``."""
    excluded = set(exclude_patients)
    rows = []
    for si, seq in enumerate(sequences):
        if seq.patient in excluded:
            continue
        t = seq.n_frames
        a, b = np.meshgrid(np.arange(t), np.arange(t), indexing="ij")
        keep = a != b
        rows.append(np.stack([np.full(keep.sum(), si), a[keep], b[keep]], axis=1))
    if not rows:
        return np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(rows).astype(np.int64)


def _gather(sequences: Sequence, pairs: np.ndarray, device: torch.device | str) -> tuple[Tensor, Tensor]:
    fixed = np.stack([sequences[s].images[a] for s, a, _ in pairs])[:, None]
    moving = np.stack([sequences[s].images[b] for s, _, b in pairs])[:, None]
    return (
        torch.from_numpy(np.ascontiguousarray(fixed, dtype=np.float32)).to(device),
        torch.from_numpy(np.ascontiguousarray(moving, dtype=np.float32)).to(device),
    )


def _check_sequences(sequences: Sequence, what: str) -> tuple[int, int]:
    if not sequences:
        raise ValueError(f"train_registration: no {what} sequences")
    shapes = {tuple(s.images.shape[1:]) for s in sequences}
    if len(shapes) != 1:
        raise ValueError(f"train_registration: {what} sequences differ in image size {sorted(shapes)}; resize them first")
    for s in sequences:
        if s.images.ndim != 3 or s.n_frames < 2:
            raise ValueError(f"train_registration: {s.key} needs (T>=2, H, W) images, got {s.images.shape}")
    return shapes.pop()


def _fingerprint(sequences: Sequence) -> list:
    """Cheap content fingerprint: key, shape and a hash of every 8th pixel of every frame."""
    import hashlib

    out = []
    for s in sequences:
        sub = np.ascontiguousarray(np.asarray(s.images, dtype=np.float32)[:, ::8, ::8])
        out.append([s.key, list(s.images.shape), hashlib.sha1(sub.tobytes()).hexdigest()[:16]])
    return out


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------

_TRAIN_KEYS = ("grid_spacing", "alpha", "ncc", "iterations", "batch_size", "lr", "kernels", "seed")
MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "log.csv"


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _batch_indices(iteration: int, n_pairs: int, batch_size: int, seed: int) -> np.ndarray:
    """The pair indices of one iteration: consecutive slices of per-epoch permutations seeded by (seed, epoch).

    A pure function of the iteration number, so a resumed run draws exactly the batches of an uninterrupted one.
    """
    start = iteration * batch_size
    idx = []
    pos = start
    while len(idx) < batch_size:
        epoch, offset = divmod(pos, n_pairs)
        perm = np.random.default_rng([seed, epoch]).permutation(n_pairs)
        take = min(batch_size - len(idx), n_pairs - offset)
        idx.extend(perm[offset : offset + take].tolist())
        pos += take
    return np.asarray(idx, dtype=np.int64)


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _cfg_get(config, key, default=None):
    if isinstance(config, dict):
        return config.get(key, default)
    return getattr(config, key, default)


@torch.no_grad()
def _validate(model: BSplineDIR, loss_fn: RegistrationLoss, sequences, pairs, batch_size, device) -> dict:
    model.eval()
    tot = {"loss": 0.0, "ncc": 0.0, "bending": 0.0}
    n = 0
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i : i + batch_size]
        fixed, moving = _gather(sequences, chunk, device)
        u = model(fixed, moving)
        terms = loss_fn.pair_loss(fixed, moving, u)
        for k in tot:
            tot[k] += float(getattr(terms, k)) * len(chunk)
        n += len(chunk)
    model.train()
    return {k: v / max(n, 1) for k, v in tot.items()}


def train_registration(
    sequences: Sequence,
    config,
    run_dir: str | Path,
    *,
    val_sequences: Sequence | None = None,
    device: str | torch.device | None = None,
    exclude_patients: Sequence[str] = (),
    max_val_pairs: int = 128,
    progress: bool = True,
    callback: Callable[[int, dict], None] | None = None,
) -> BSplineDIR:
    """Train (or load from the cache) the DLIR B-spline network on intra-patient frame pairs.

    Parameters
    ----------
    sequences : training :class:`~echo_utils.camus.EchoSequence` list, all of one image size.
    config : :class:`~echo_utils.config.RegistrationConfig` (or a dict with its keys).
    run_dir : the registration cache folder (``paths.registration``); the run lives in ``run_dir/<hash>/`` where
        the hash covers the training settings, the architecture and a fingerprint of the data.
    val_sequences : held-out sequences for the validation curve; ``None`` keeps a random subset of the training
        pairs aside instead (as the authors' 400 validation pairs), which are then not trained on.
    device : ``'cpu'``, ``'cuda'`` or ``None``/``'auto'`` (CUDA if available).
    exclude_patients : patient ids never used (e.g. the evaluation patients, as the paper leaves out TED).
    max_val_pairs : at most this many validation pairs (a deterministic random subset).
    progress : show a tqdm bar with the loss and NCC.
    callback : ``callback(iteration, row)`` after every iteration (row: the logged values); may raise to stop.

    Every ordered pair ``(a, b)``, ``a != b``, of each sequence is a sample (fixed = frame a, moving = frame b);
    batches are drawn from per-epoch permutations seeded by ``config.seed``.  Adam (amsgrad), ``config.lr``,
    ``config.batch_size``, ``config.iterations``.  The checkpoint (``checkpoint.pt``, written atomically every
    ``checkpoint_every`` iterations) holds the model, optimiser and log, so an interrupted run resumes where it
    stopped and reaches the same weights as an uninterrupted one on CPU.  The finished model is ``model.pt``; a
    rerun with the same settings and data loads it without training.  The loss log is ``log.csv``
    (:func:`load_training_log`).  The returned model is in eval mode, ready for inference
    (:meth:`BSplineDIR.optimise_for_inference`), whether it was trained now or loaded.
    """
    from .config import config_hash

    device = _resolve_device(device)
    size = _check_sequences(sequences, "training")
    if val_sequences is not None and len(val_sequences):
        vsize = _check_sequences(val_sequences, "validation")
        if vsize != size:
            raise ValueError(f"validation image size {vsize} differs from the training size {size}")
    settings = {k: _cfg_get(config, k) for k in _TRAIN_KEYS}
    missing = [k for k, v in settings.items() if v is None]
    if missing:
        raise ValueError(f"train_registration: config lacks {missing}")
    loss_sigma = float(_cfg_get(config, "loss_sigma", 0.0) or 0.0)
    if loss_sigma:  # only in the cache key when used, so caches made before the option existed stay valid
        settings["loss_sigma"] = loss_sigma
    arch = dict(grid_spacing=int(settings["grid_spacing"]), kernels=int(settings["kernels"]), image_size=list(size))
    model = BSplineDIR(**arch)  # validates the size/spacing before anything is written

    train_pairs = frame_pairs(sequences, exclude_patients=exclude_patients)
    if len(train_pairs) == 0:
        raise ValueError("train_registration: no training pairs left after excluding patients")
    rng = np.random.default_rng([int(settings["seed"]), 7])
    if val_sequences is not None and len(val_sequences):
        val_seqs = list(val_sequences)
        val_pairs = frame_pairs(val_seqs, exclude_patients=exclude_patients)
        if len(val_pairs) > max_val_pairs:
            val_pairs = val_pairs[np.sort(rng.choice(len(val_pairs), max_val_pairs, replace=False))]
    else:
        val_seqs = list(sequences)
        n_val = min(max_val_pairs, max(1, len(train_pairs) // 10)) if len(train_pairs) > 1 else 0
        chosen = rng.choice(len(train_pairs), n_val, replace=False)
        mask = np.zeros(len(train_pairs), bool)
        mask[chosen] = True
        val_pairs, train_pairs = train_pairs[np.sort(chosen)], train_pairs[~mask]

    key = {
        "format": _FORMAT_VERSION,
        "settings": settings,
        "arch": model.config,
        "train": _fingerprint(sequences),
        "val": _fingerprint(val_sequences) if val_sequences is not None else None,
        "exclude": sorted(exclude_patients),
        "max_val_pairs": max_val_pairs,
    }
    digest = config_hash(key)
    out = Path(run_dir) / digest
    final = out / MODEL_FILE
    if final.exists():
        return load_registration(final, device=device)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(json.dumps(key, indent=1, default=str), out / "key.json")

    seed = int(settings["seed"])
    torch.manual_seed(seed)
    model = BSplineDIR(**arch).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=float(settings["lr"]), amsgrad=True)
    loss_fn = RegistrationLoss(alpha=float(settings["alpha"]), ncc=settings["ncc"], sigma=loss_sigma)
    iterations, batch = int(settings["iterations"]), int(settings["batch_size"])
    validate_every = int(_cfg_get(config, "validate_every", 100))
    checkpoint_every = int(_cfg_get(config, "checkpoint_every", 250))

    log: list[dict] = []
    start = 0
    ckpt_path = out / CHECKPOINT_FILE
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        start, log = int(ckpt["iteration"]), list(ckpt["log"])

    def save_log():
        import pandas as pd

        _atomic_write_text(pd.DataFrame(log).to_csv(index=False), out / LOG_FILE)

    def checkpoint(iteration: int):
        _atomic_torch_save(
            {"state_dict": model.state_dict(), "optimizer": opt.state_dict(), "iteration": iteration, "log": log},
            ckpt_path,
        )
        save_log()

    if start == 0 and len(val_pairs):
        log.append({"iteration": 0, "split": "val", **_validate(model, loss_fn, val_seqs, val_pairs, batch, device), "seconds": 0.0})

    from tqdm.auto import tqdm

    bar = tqdm(total=iterations, initial=start, desc=f"DLIR {digest}", disable=not progress, dynamic_ncols=True)
    model.train()
    t0 = time.perf_counter() - (log[-1]["seconds"] if log else 0.0)
    try:
        for it in range(start, iterations):
            idx = _batch_indices(it, len(train_pairs), batch, seed)
            fixed, moving = _gather(sequences, train_pairs[idx], device)
            u = model(fixed, moving)
            terms = loss_fn.pair_loss(fixed, moving, u)
            opt.zero_grad(set_to_none=True)
            terms.loss.backward()
            opt.step()
            row = {
                "iteration": it + 1,
                "split": "train",
                "loss": terms.loss.item(),
                "ncc": terms.ncc.item(),
                "bending": terms.bending.item(),
                "seconds": time.perf_counter() - t0,
            }
            log.append(row)
            if len(val_pairs) and ((it + 1) % validate_every == 0 or it + 1 == iterations):
                vrow = {"iteration": it + 1, "split": "val", **_validate(model, loss_fn, val_seqs, val_pairs, batch, device)}
                vrow["seconds"] = time.perf_counter() - t0
                log.append(vrow)
                bar.set_postfix(loss=f"{row['loss']:.4f}", ncc=f"{row['ncc']:.4f}", val_ncc=f"{vrow['ncc']:.4f}")
            else:
                bar.set_postfix(loss=f"{row['loss']:.4f}", ncc=f"{row['ncc']:.4f}")
            bar.update(1)
            if (it + 1) % checkpoint_every == 0 and it + 1 < iterations:
                checkpoint(it + 1)
            if callback is not None:
                callback(it + 1, row)
    finally:
        bar.close()

    model.eval()
    save_log()
    _atomic_torch_save(
        {"config": model.config, "state_dict": model.state_dict(), "settings": settings, "iterations": iterations},
        final,
    )
    ckpt_path.unlink(missing_ok=True)
    model.run_dir = out
    return model.optimise_for_inference()


def load_registration(path: str | Path, device: str | torch.device | None = "cpu") -> BSplineDIR:
    """Rebuild a trained :class:`BSplineDIR` from ``model.pt`` (or the run folder holding it), in eval mode.

    The architecture (grid spacing, kernels, image size) is read from the file.  The model is ready for fast
    inference (:meth:`BSplineDIR.optimise_for_inference`).
    """
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no trained registration model at {path}")
    device = _resolve_device(device)
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
        model = BSplineDIR(**ckpt["config"])
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError, EOFError) as exc:
        raise ValueError(f"{path} is not a BSplineDIR checkpoint: {exc}") from exc
    model.to(device).optimise_for_inference()
    model.run_dir = path.parent
    return model


def load_training_log(model_or_dir: BSplineDIR | str | Path):
    """The loss log of a training run as a DataFrame.

    Columns: ``iteration``, ``split`` (``'train'`` per iteration, ``'val'`` every ``validate_every`` and at
    iteration 0 = the identity), ``loss``, ``ncc``, ``bending`` (px^-2), ``seconds`` (wall time since the start).
    """
    import pandas as pd

    if isinstance(model_or_dir, BSplineDIR):
        if model_or_dir.run_dir is None:
            raise ValueError("this BSplineDIR was not trained or loaded from a run folder; pass the folder")
        folder = Path(model_or_dir.run_dir)
    else:
        folder = Path(model_or_dir)
        if folder.is_file():
            folder = folder.parent
    path = folder / LOG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {path}")
    return pd.read_csv(path)


# ---------------------------------------------------------------------------------------------------------------
# Convenience: register many pairs, evaluate
# ---------------------------------------------------------------------------------------------------------------


def register(
    reg: Callable[[Tensor, Tensor], Tensor],
    fixed: np.ndarray | Tensor,
    moving: np.ndarray | Tensor,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Run a registration on ``(N, H, W)`` (or ``(N,1,H,W)``) arrays in batches; returns ``(N, 2, H, W)`` numpy (px)."""
    f = torch.as_tensor(np.asarray(fixed, dtype=np.float32) if not isinstance(fixed, Tensor) else fixed).float()
    m = torch.as_tensor(np.asarray(moving, dtype=np.float32) if not isinstance(moving, Tensor) else moving).float()
    if f.ndim == 3:
        f, m = f[:, None], m[:, None]
    out = []
    for i in range(0, f.shape[0], batch_size):
        with torch.no_grad():
            out.append(reg(f[i : i + batch_size].to(device), m[i : i + batch_size].to(device)).detach().cpu())
    return torch.cat(out).numpy()


def evaluate_registration(
    reg: Callable[[Tensor, Tensor], Tensor],
    fixed: np.ndarray,
    moving: np.ndarray,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
):
    """Per-pair quality of a registration on ``(N, H, W)`` arrays: a DataFrame with columns
    ``ncc_before`` (identity), ``ncc_after``, ``folding`` (fraction of pixels with det J <= 0), ``jac_min``,
    ``max_displacement`` (px), and ``seconds`` (wall time per pair, batch time / batch size).
    """
    import pandas as pd

    f = torch.from_numpy(np.asarray(fixed, dtype=np.float32))[:, None]
    m = torch.from_numpy(np.asarray(moving, dtype=np.float32))[:, None]
    rows = []
    for i in range(0, f.shape[0], batch_size):
        fb, mb = f[i : i + batch_size].to(device), m[i : i + batch_size].to(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            u = reg(fb, mb)
        dt = (time.perf_counter() - t0) / fb.shape[0]
        u = u.detach().float()
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
