"""Registrations: the DLIR B-spline network, its instance-optimised twin, the identity control, and their factory.

A *registration* is any callable ``reg(fixed, moving) -> displacement`` with ``fixed`` and ``moving`` float tensors
``(N, 1, H, W)`` in [0, 1] and the displacement ``(N, 2, H, W)`` in **pixels** (channel 0 along rows, channel 1
along columns); ``warp(moving, u) ~ fixed``.

* :class:`BSplineDIR` -- the DIRNet of de Vos et al. (2019), as in TorchIR and the paper's authors' code, + the
  cubic B-spline transformer: one network pass per pair.
* :class:`InstanceBSpline` -- the same grid and loss optimised with Adam for each pair (classical FFD,
  Rueckert et al. 1999); needs no training.
* :class:`IdentityRegistration` -- the zero field: the control that shows what registration adds.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .bspline import bspline_upsample, control_grid_shape
from .losses import bending_energy, ncc, prepare_frames, scaled_alpha
from .warp import warp

__all__ = ["BSplineDIR", "ELU", "elu_", "InstanceBSpline", "IdentityRegistration", "RefinedRegistration",
           "input_scale_for"]


class _ELUFunction(torch.autograd.Function):
    """ELU (alpha 1) as ``max(x, exp(min(x, 0)) - 1)`` with the backward ``grad * (min(y, 0) + 1)`` from the output
    ``y``: the same function as ``torch.nn.functional.elu`` (to one rounding), built from vectorised element-wise
    kernels. PyTorch's CPU ELU kernel costs ~10 ns per element in the forward pass on this project's machines; in
    training the extra passes and allocations of this form cost about as much as they save (profiled at the demo
    size), the large gain is in the in-place inference path (:func:`elu_`)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = torch.clamp(x, max=0).exp_().sub_(1)
        torch.maximum(x, y, out=y)  # exp(t) - 1 >= t, with equality only at 0: one buffer, no relu pass
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.clamp(y, max=0).add_(1).mul_(grad)


class ELU(nn.ELU):
    """``torch.nn.ELU`` with ``alpha = 1`` computed by :class:`_ELUFunction` (same values, faster on CPU)."""

    def __init__(self):
        super().__init__(alpha=1.0)

    def forward(self, x: Tensor) -> Tensor:
        return _ELUFunction.apply(x)


def elu_(x: Tensor, scratch: dict) -> Tensor:
    """ELU (alpha 1) in place, as ``max(x, exp(min(x, 0)) - 1)`` (``exp(t) - 1 >= t``, with equality only at 0): four
    vectorised passes over a buffer of ``scratch`` (``{(shape, dtype, device): tensor}``, reused from call to call).
    PyTorch's CPU ELU kernel costs ~10 ns per element here, several times the rest of the network at 512 px; this
    form is ~5x cheaper and agrees to one rounding of the dtype (positive values are exact).  No autograd: the
    inference path of :meth:`BSplineDIR.control_points`."""
    key = (tuple(x.shape), x.dtype, x.device)
    buf = scratch.get(key)
    if buf is None:
        buf = scratch[key] = torch.empty_like(x)
    torch.clamp(x, max=0, out=buf)
    buf.exp_().sub_(1)
    return torch.maximum(x, buf, out=x)


class BSplineDIR(nn.Module):
    """DIRNet (de Vos et al. 2019, as in TorchIR) + cubic B-spline transformer: ``reg(fixed, moving, dtype=None) -> u``.

    A :class:`~echo_utils.registration.protocol.Registration`: ``needs_grad`` False, ``inference_dtype`` the
    precision of its fast inference path when the caller does not choose one (``None``: the device's choice), and
    one forward pass whose ``dtype`` selects that path (:meth:`control_points`).

    Architecture (the paper, Sec. 2.2, and the authors' TorchIR code): fixed and moving stacked as 2 channels; ``num_conv_layers`` (5) blocks of
    3x3 conv + ELU (+ group norm before the ELU with ``group_norm``), the first ``log2(grid_spacing)`` of them followed by 2x2 average pooling (5 poolings at
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
    input_scale : the network reads the two frames average-pooled by this factor (a power of two dividing
        ``grid_spacing``; 1 = full resolution, the paper) and its encoder pools ``log2(grid_spacing / input_scale)``
        times, so the control grid (``H / grid_spacing`` x ``W / grid_spacing``) and the output (control-point
        displacements in **full-resolution** pixels, upsampled at full resolution) are those of the full-resolution
        network: only the convolutions run on fewer pixels (the config key ``registration.input_size``, see
        :func:`input_scale_for`).  Kept in :attr:`config` only when it is not 1.
    group_norm : 0 (the paper's and TorchIR's DIRNet: no normalisation) or the number of groups of a
        ``torch.nn.GroupNorm`` (Wu & He 2018) after every convolution but the output layer, before its ELU (it
        normalises each pair's own feature maps: unlike batch norm, a pair's field does not depend on its batch).
        Must divide ``kernels``.  Kept in :attr:`config` only when not 0.
    """

    def __init__(
        self,
        grid_spacing: int = 32,
        kernels: int = 32,
        image_size: Sequence[int] = (512, 512),
        num_conv_layers: int = 5,
        num_dense_layers: int = 2,
        input_scale: int = 1,
        group_norm: int = 0,
    ):
        super().__init__()
        n_pool = math.log2(grid_spacing)
        if grid_spacing < 1 or n_pool != int(n_pool):
            raise ValueError(f"BSplineDIR: grid_spacing must be a power of two (one pooling per factor 2), got {grid_spacing}")
        scale = int(input_scale)
        if scale < 1 or scale & (scale - 1) or grid_spacing % scale:
            raise ValueError(f"BSplineDIR: input_scale must be a power of two dividing grid_spacing {grid_spacing}, "
                             f"got {input_scale}")
        n_pool = int(n_pool) - int(math.log2(scale))  # the input is already pooled log2(scale) times
        if n_pool > num_conv_layers:
            raise ValueError(f"grid_spacing {grid_spacing} needs {n_pool} poolings but there are {num_conv_layers} conv layers")
        groups = int(group_norm)
        if groups < 0 or (groups and kernels % groups):
            raise ValueError(f"BSplineDIR: group_norm must be 0 or a number of groups dividing kernels {kernels}, "
                             f"got {group_norm}")
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
        if scale != 1:  # absent at 1: a full-resolution network keeps its architecture record (and cache key)
            self.config["input_scale"] = scale
        if groups:  # absent at 0: the paper's network keeps its architecture record (and cache key)
            self.config["group_norm"] = groups
        self.input_scale = scale
        self.grid_spacing = int(grid_spacing)
        self.image_size = image_size
        layers: list[nn.Module] = []
        in_ch = 2
        def norm() -> list[nn.Module]:
            return [nn.GroupNorm(groups, kernels)] if groups else []

        for i in range(num_conv_layers):
            layers += [nn.Conv2d(in_ch, kernels, 3, padding=1), *norm(), ELU()]
            if i < n_pool:
                layers.append(nn.AvgPool2d(2))
            in_ch = kernels
        for _ in range(num_dense_layers):
            layers += [nn.Conv2d(kernels, kernels, 1), *norm(), ELU()]
        out = nn.Conv2d(kernels, 2, 1)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        layers.append(out)
        self.net = nn.Sequential(*layers)
        self.to(memory_format=torch.channels_last)  # oneDNN's native layout: no reorders in training or inference
        self.run_dir: Path | None = None  # set by train_registration / load_registration
        self.inference_dtype: torch.dtype | None = None  # preferred precision of the batched inference path
        #: ``torch.bfloat16``: the convolutions run under autocast in training (float32 master weights, loss and
        #: B-spline upsampling in float32); ``None``: float32 throughout
        self.training_dtype: torch.dtype | None = None
        #: :func:`~echo_utils.registration.train.field_variation` of the kept weights on the validation pairs (set by
        #: train_registration / load_registration; ``None`` for a network that was not trained by them)
        self.field_variation: float | None = None
        self.kept_iteration: int | None = None

    def init_output(self, std: float) -> "BSplineDIR":
        """Draw the output layer's weights from N(0, ``std``) (bias zero) instead of zeros, as VoxelMorph and CLAS
        initialise their flow heads (1e-5): the untrained field is then near, not exactly, the identity and every
        layer receives a gradient from the first update.  Uses torch's global generator (seed it first)."""
        out = self.net[-1]
        with torch.no_grad():
            out.weight.normal_(0.0, float(std))
            out.bias.zero_()
        return self

    def network_input(self, fixed: Tensor, moving: Tensor) -> Tensor:
        """The encoder's input: ``fixed`` and ``moving`` ``(N, 1, H, W)`` stacked to ``(N, 2, H/f, W/f)``,
        average-pooled by ``f = input_scale`` (nothing at 1), channels_last.  Checks the shapes."""
        if fixed.shape != moving.shape or fixed.ndim != 4 or fixed.shape[1] != 1:
            raise ValueError(f"fixed and moving must both be (N,1,H,W); got {tuple(fixed.shape)}, {tuple(moving.shape)}")
        h, w = fixed.shape[-2:]
        if h % self.grid_spacing or w % self.grid_spacing:
            raise ValueError(f"image size {(h, w)} is not a multiple of grid_spacing {self.grid_spacing}")
        x = torch.cat((fixed, moving), dim=1)
        if self.input_scale != 1:
            x = F.avg_pool2d(x, self.input_scale)
        return x.contiguous(memory_format=torch.channels_last)

    #: the registration protocol (:mod:`~echo_utils.registration.protocol`): a trained network needs no gradients
    needs_grad = False

    def control_points(self, fixed: Tensor, moving: Tensor, dtype: torch.dtype | None = None,
                       scratch: dict | None = None) -> Tensor:
        """``(N, 2, H/s, W/s)`` control-point displacements in (full-resolution) pixels: the network's one pass.

        ``dtype=None`` (and always in training mode): the layers as modules, under autocast to ``training_dtype``
        in training when it is set (the autograd path).  A ``dtype`` in eval mode: the fast inference path of the
        same layers, activations in ``dtype`` (the convolutions' weights cast once per call: the arithmetic of
        autocast), ELU in place (:func:`elu_`, buffers from ``scratch``), float32 out; the batched path
        (:func:`~echo_utils.registration.inference.register_pairs`) calls it so."""
        x = self.network_input(fixed, moving)
        fast = dtype is not None and not self.training
        low = self.training_dtype if self.training else None
        autocast = low is not None and low != torch.float32
        if fast:
            x = x.to(dtype)
            scratch = {} if scratch is None else scratch
        with torch.autocast(x.device.type, dtype=low) if autocast else contextlib.nullcontext():
            for layer in self.net:
                if fast and isinstance(layer, nn.Conv2d):
                    b = None if layer.bias is None else layer.bias.to(dtype)
                    x = F.conv2d(x, layer.weight.to(dtype), b, layer.stride, layer.padding, layer.dilation,
                                 layer.groups)
                elif fast and isinstance(layer, nn.GroupNorm):  # the affine parameters in dtype, as the convs'
                    x = F.group_norm(x, layer.num_groups, layer.weight.to(dtype), layer.bias.to(dtype), layer.eps)
                elif fast and isinstance(layer, nn.ELU) and layer.alpha == 1.0:
                    x = elu_(x, scratch)
                else:
                    x = layer(x)
        return (x.float() if fast or autocast else x).contiguous()

    def forward(self, fixed: Tensor, moving: Tensor, dtype: torch.dtype | None = None,
                scratch: dict | None = None) -> Tensor:
        """``(N, 2, H, W)`` displacement in pixels such that ``warp(moving, u) ~ fixed`` (upsampled in float32);
        ``dtype`` and ``scratch``: :meth:`control_points`."""
        cp = self.control_points(fixed, moving, dtype, scratch).float()
        with torch.autocast(fixed.device.type, enabled=False):
            return bspline_upsample(cp, self.grid_spacing, fixed.shape[-2:])

    def flops(self, image_size: Sequence[int] | None = None) -> int:
        """Floating-point operations of one forward pass for one pair: ``2 * C_in * C_out * k^2`` per output pixel
        of every convolution (multiply and add; biases, activations, pooling and the B-spline upsampling, all
        linear in the pixels and below 2 % of the total, are not counted). About 1.9 GFLOP at the paper's 512 px,
        spacing 32, 32 kernels. A training step costs about three times this (forward, and the backward's
        gradients with respect to inputs and weights). ``image_size``: the full-resolution size; the convolutions
        run at ``image_size / input_scale``."""
        h, w = (int(v) // self.input_scale for v in (image_size or self.image_size))
        total = 0
        for layer in self.net:
            if isinstance(layer, nn.Conv2d):
                kh, kw = layer.kernel_size
                total += 2 * layer.in_channels * layer.out_channels * kh * kw * h * w
            elif isinstance(layer, nn.AvgPool2d):
                h, w = h // 2, w // 2
        return total

    def optimise_for_inference(self, dtype: torch.dtype | None = None) -> "BSplineDIR":
        """Eval mode, no gradients, channels_last weights (the fast CPU path); returns self.

        ``dtype`` sets the precision that the batched inference path
        (:func:`echo_utils.registration.inference.register_pairs`) uses for this network when its caller does not
        choose one: ``torch.bfloat16`` or ``torch.float32``.  ``None`` keeps the current setting (default: the
        CPU's native choice, see :func:`~echo_utils.registration.inference.default_precision`).
        """
        if dtype is not None:
            self.inference_dtype = dtype
        self.eval()
        self.requires_grad_(False)
        self.to(memory_format=torch.channels_last)
        return self

    def __call__(self, fixed: Tensor, moving: Tensor, dtype: torch.dtype | None = None,  # type: ignore[override]
                 scratch: dict | None = None) -> Tensor:
        # In eval mode with nothing requiring a gradient, run under inference_mode (channels_last fast path).
        if not self.training and not (fixed.requires_grad or moving.requires_grad) and not any(
            p.requires_grad for p in self.parameters()
        ):
            with torch.inference_mode():
                return super().__call__(fixed, moving, dtype, scratch)
        return super().__call__(fixed, moving, dtype, scratch)


def input_scale_for(image_size: Sequence[int], input_size: int | None, grid_spacing: int) -> int:
    """The :class:`BSplineDIR` ``input_scale`` of the config key ``registration.input_size``: the network reads
    ``(H, W)`` frames pooled to ``input_size`` rows, i.e. by ``f = H / input_size``; ``None`` (or ``H``): 1.

    ``f`` must be a power of two that divides ``W`` and ``grid_spacing`` (the encoder pools
    ``log2(grid_spacing / f)`` times, so the control grid stays ``H / grid_spacing`` rows); otherwise a
    ``ValueError`` names the key."""
    if input_size is None:
        return 1
    h, w = (int(v) for v in image_size)
    f, rest = divmod(h, int(input_size)) if int(input_size) >= 1 else (0, 1)
    if rest or f < 1 or f & (f - 1) or w % f or int(grid_spacing) % f:
        raise ValueError(
            f"registration.input_size {input_size}: the images are {h}x{w} and grid_spacing is {grid_spacing}; "
            f"input_size must be the image height divided by a power of two that divides the width and "
            f"grid_spacing (e.g. {h // 2} for a factor 2), or null for the full resolution")
    return f


class InstanceBSpline:
    """Free-form deformation optimised per pair: the same B-spline grid and loss as :class:`BSplineDIR`.

    All ``N`` pairs of a call are optimised at once (one batched Adam over an ``(N, 2, gh, gw)`` parameter
    tensor).  The loss is the *sum* over pairs of ``-NCC_i + alpha * P_i`` with per-pair NCC, so the pairs do not
    interact: the result equals optimising each pair alone (Adam's update is element-wise).

    Parameters
    ----------
    grid_spacing : control-point spacing in pixels (any positive integer).
    alpha : bending-energy weight.
    mask : ``'sector'``: the NCC counts only the fixed image's sector (:func:`.losses.sector_mask`), as the network's
        ``loss_mask``; ``'none'`` (default): every pixel.
    alpha_reference_size : image size (px) at which ``alpha`` is given; the loss uses
        ``scaled_alpha(alpha, image size, alpha_reference_size)`` (:mod:`.losses`); ``None``: ``alpha`` as is.
    iterations : Adam steps.
    lr : Adam learning rate, in pixels per step for the control points.
    sigma : Gaussian smoothing (px) of both images before the NCC (as ``loss_sigma`` of the network; 0 = raw).
    """

    def __init__(
        self, grid_spacing: int = 32, alpha: float = 1.0, iterations: int = 100, lr: float = 0.05, sigma: float = 0.0,
        alpha_reference_size: int | None = None, mask: str = "none",
    ):
        if grid_spacing < 1 or iterations < 1 or lr <= 0 or sigma < 0:
            raise ValueError(
                f"InstanceBSpline: bad settings spacing={grid_spacing} iterations={iterations} lr={lr} sigma={sigma}"
            )
        self.grid_spacing = int(grid_spacing)
        self.alpha = float(alpha)
        self.alpha_reference_size = None if alpha_reference_size is None else int(alpha_reference_size)
        if mask not in ("none", "sector"):
            raise ValueError(f"InstanceBSpline: unknown mask {mask!r}; use 'none' or 'sector'")
        self.mask = mask
        self.iterations = int(iterations)
        self.lr = float(lr)
        self.sigma = float(sigma)
        self.history: list[float] | None = None

    #: the registration protocol (:mod:`~echo_utils.registration.protocol`): called under ``no_grad``, not
    #: ``inference_mode`` (it works under both, since it re-enables autograd on copies of its inputs); float32 only
    needs_grad = True
    inference_dtype = None

    def __repr__(self) -> str:
        return (
            f"InstanceBSpline(grid_spacing={self.grid_spacing}, alpha={self.alpha}, "
            f"iterations={self.iterations}, lr={self.lr}, sigma={self.sigma}"
            + (f", alpha_reference_size={self.alpha_reference_size}" if self.alpha_reference_size else "")
            + (f", mask={self.mask!r})" if self.mask != "none" else ")")
        )

    def control_points(self, fixed: Tensor, moving: Tensor, init: Tensor | None = None) -> Tensor:
        """Optimise and return the ``(N, 2, gh, gw)`` control-point displacements (pixels).

        ``init``: the ``(N, 2, gh, gw)`` control points the optimisation starts from (pixels; e.g. a network's
        output, :class:`RefinedRegistration`); ``None``: zeros, the identity."""
        if fixed.shape != moving.shape or fixed.ndim != 4 or fixed.shape[1] != 1:
            raise ValueError(f"fixed and moving must both be (N,1,H,W); got {tuple(fixed.shape)}, {tuple(moving.shape)}")
        size = fixed.shape[-2:]
        gh, gw = control_grid_shape(size, self.grid_spacing)
        if init is not None and tuple(init.shape) != (fixed.shape[0], 2, gh, gw):
            raise ValueError(f"InstanceBSpline: init must be (N, 2, gh, gw) = {(fixed.shape[0], 2, gh, gw)} control "
                             f"points, got {tuple(init.shape)}")
        alpha = scaled_alpha(self.alpha, tuple(size), self.alpha_reference_size)
        with torch.inference_mode(False), torch.enable_grad():
            prepared = prepare_frames(fixed.detach().clone().float(), self.sigma, self.mask)
            fixed, mask = prepared.smoothed, prepared.mask
            moving = prepare_frames(moving.detach().clone().float(), self.sigma).smoothed
            if init is None:
                cp = torch.zeros(fixed.shape[0], 2, gh, gw, device=fixed.device, requires_grad=True)
            else:  # a copy outside inference mode: a network's output may be an inference tensor
                cp = init.detach().to(device=fixed.device, dtype=torch.float32).clone().requires_grad_(True)
            opt = torch.optim.Adam([cp], lr=self.lr)
            history = []
            for _ in range(self.iterations):
                u = bspline_upsample(cp, self.grid_spacing, size)
                warped = warp(moving, u)
                loss = (-ncc(fixed, warped, "pair", mask=mask) + alpha * bending_energy(u)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                history.append(loss.item() / fixed.shape[0])
            self.history = history
            return cp.detach()

    def __call__(self, fixed: Tensor, moving: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """``(N, 2, H, W)`` displacement in pixels such that ``warp(moving, u) ~ fixed`` (``dtype`` ignored: float32)."""
        cp = self.control_points(fixed, moving)
        return bspline_upsample(cp, self.grid_spacing, fixed.shape[-2:])



class RefinedRegistration:
    """A trained network's field refined per pair: :class:`InstanceBSpline`'s optimisation started from the
    network's control points instead of zeros (test-time instance optimisation).  Not the paper's method (DLIR is
    one network pass per pair); the control that measures the network's *amortisation gap*: how far its one pass
    is from the optimum of the loss it was trained on, and how many per-pair steps close it.

    ``network``: a :class:`BSplineDIR` (its ``control_points`` on the same grid spacing as ``instance``);
    ``instance``: the optimiser (loss, bending weight, step size, ``iterations`` = the refinement steps).
    """

    needs_grad = True  # the registration protocol: the refinement optimises with autograd inside the call
    inference_dtype = None

    def __init__(self, network: "BSplineDIR", instance: InstanceBSpline):
        if int(network.grid_spacing) != instance.grid_spacing:
            raise ValueError(f"RefinedRegistration: the network's grid spacing {network.grid_spacing} differs from "
                             f"the optimiser's {instance.grid_spacing}")
        self.network, self.instance = network, instance

    def __repr__(self) -> str:
        return f"RefinedRegistration({type(self.network).__name__}, {self.instance!r})"

    def __call__(self, fixed: Tensor, moving: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """``(N, 2, H, W)`` displacement in pixels (float32; ``dtype`` ignored)."""
        with torch.no_grad():
            start = self.network.control_points(fixed, moving).float()
        cp = self.instance.control_points(fixed, moving, init=start)
        return bspline_upsample(cp, self.instance.grid_spacing, fixed.shape[-2:])


class IdentityRegistration:
    """The zero displacement: a registration that moves nothing, the control for every claim about registration.

    With it, forward propagation copies the ED label to every frame, backward the ES label, and Eq. 1 becomes a
    pure shape interpolation between the two references.
    """

    needs_grad = False  # the registration protocol (:mod:`~echo_utils.registration.protocol`)
    inference_dtype = None

    def __repr__(self) -> str:
        return "IdentityRegistration()"

    def __call__(self, fixed: Tensor, moving: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """``(N, 2, H, W)`` zeros (pixels) on the device of ``fixed``."""
        if fixed.shape != moving.shape or fixed.ndim != 4 or fixed.shape[1] != 1:
            raise ValueError(f"fixed and moving must both be (N,1,H,W); got {tuple(fixed.shape)}, {tuple(moving.shape)}")
        return torch.zeros(fixed.shape[0], 2, *fixed.shape[-2:], dtype=torch.float32, device=fixed.device)
