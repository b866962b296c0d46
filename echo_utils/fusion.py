"""Pseudo-labels: propagate the sparse ED/ES labels through a sequence, and fuse the two directions (Eq. 1).

The paper's contribution in three steps (paper-facts.md, "Propagation and fusion"):

1. **Forward propagation** (:func:`propagate`): starting from the ED label at ED, register
   fixed = frame t+1 to moving = frame t and warp label t with nearest-neighbour interpolation to get label t+1
   (``mode='sequential'``, the authors' choice). ``mode='composed'`` registers the same image pairs but composes
   the displacements and warps the start label once per frame, so that sub-pixel frame-to-frame motion is not
   rounded away by repeated nearest-neighbour resampling. The authors' code also has ``mode='fixed'``, which
   registers the start frame directly to every frame and warps the start label once.
2. **Backward propagation**: the same from the ES label at ES, towards ED.
3. **Fusion** (:func:`fuse_bidirectional`, Eq. 1): for every class C (background included) the signed distance
   :math:`d = d_\\mathrm{inside} - d_\\mathrm{outside}` of the forward and of the backward mask is weighted by
   :math:`\\cos^2\\varphi_t` and :math:`\\sin^2\\varphi_t`, and the class is claimed where the sum is > 0.

Conventions (DESIGN.md): images float32 ``(T, H, W)`` in [0, 1]; labels uint8 (0 background, 1 LV cavity,
2 LV myocardium, 3 left atrium); a *registration* is any callable ``reg(fixed, moving) -> displacement`` on torch
tensors ``(N, 1, H, W) -> (N, 2, H, W)`` in pixels with ``warped(p) = moving(p + u(p))``; labels are warped with
``echo_utils.registration.warp(..., mode='nearest')``.

Choices this module makes, and the other option it offers:

* **Phase convention** ``weights='authors'`` (default): :math:`\\varphi = \\mathrm{linspace}(0, \\pi/2, T)`, so the
  fused ED frame is exactly the forward label (the ED reference) and the fused ES frame exactly the backward label
  (the ES reference). ``weights='paper'``: Eq. 1 as printed, :math:`\\varphi_t = \\pi t / (2N)` for
  :math:`t = 1..N`; then ES is exactly the backward label but ED still mixes in 1 - cos²(π/2N) of the backward map.
* **Assembly** of one label map from the per-class fused maps ``s_C``:
  ``assemble='sdf'`` (default, chosen on the evidence of notebook 03): each pixel takes the class of **largest fused
  signed distance**, ``argmax_C s_C``. Overlaps go to the class the pixel is deepest inside; a pixel no class
  claims goes to the class whose fused boundary is nearest. ``assemble='argmax'``: the authors' rule,
  ``argmax_C [s_C > 0]`` over the booleans, ties to the lowest label (so a pixel that background claims is
  background) and unclaimed pixels become background.
* **Distance transform**: exact Euclidean (the ``edt`` package), in pixels by default like the authors (whose
  OpenCV transform was the approximate 3x3 one); ``spacing=(sy, sx)`` gives mm instead. Each frame is cropped to the
  bounding box of its foreground (both directions) plus a margin, which leaves the distances inside the box exact
  (see :func:`fuse_bidirectional`) and saves most of the work.
* **Empty mask**: a class absent from one direction in a frame has no boundary; its signed distance is taken as
  ``-(H + W)`` (farther than any pixel of the image), so the class is then only claimed from the other direction
  where that direction's weight dominates completely. :func:`pseudo_labels` warns when this happens because a
  class is in one reference label only.
* **Closing**: ``closing=k`` applies the authors' k x k morphological closing (grey-level closing of the label image,
  as OpenCV's ``morphologyEx`` does on a uint8 label map) after assembly. Off by default: it can change the
  reference ED/ES frames and merges thin structures.
* **Frames outside [ED, ES]** (full-cycle sequences such as TED): only one reference is near, so frames before ED
  receive the ED label propagated backwards in time and frames after ES the ES label propagated onwards; the three
  kinds (forward, backward, bidirectional) share these frames. If ED comes after ES in time, "forward" still starts
  at ED and runs towards ES.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Literal, Mapping

import numpy as np

__all__ = [
    "PseudoLabels",
    "PseudoLabelCacheMismatch",
    "KINDS",
    "register_pairs",
    "MemoizedRegistration",
    "propagate",
    "fusion_weights",
    "signed_distance",
    "fused_signed_distance",
    "fuse_bidirectional",
    "pseudo_labels",
    "pseudo_label_path",
    "save_pseudo_labels",
    "load_pseudo_labels",
    "registration_fingerprint",
    "generate_pseudo_labels",
    "evaluation_sequences",
    "refuse",
    "score_pseudo_labels",
    "per_video",
    "compare_directions",
]

KINDS = ("forward", "backward", "bidirectional")
Registration = Callable  # reg(fixed (N,1,H,W), moving (N,1,H,W)) -> displacement (N,2,H,W), torch tensors
Direction = Literal["forward", "backward"]
Mode = Literal["sequential", "composed", "fixed"]
Weights = Literal["authors", "paper"]
Assemble = Literal["sdf", "argmax"]

_FORMAT_VERSION = 1
_TIE_DECIMALS = 6  # fused distances equal to 1e-6 px are ties (see _fuse_frame)


# ----------------------------------------------------------------------------------------------------------------
# Result container
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class PseudoLabels:
    """The three pseudo-label sequences of one echo sequence, each uint8 ``(T, H, W)`` aligned with its images."""

    forward: np.ndarray
    backward: np.ndarray
    bidirectional: np.ndarray

    def __post_init__(self) -> None:
        shapes = {k: getattr(self, k).shape for k in KINDS}
        if len(set(shapes.values())) != 1 or len(shapes["forward"]) != 3:
            raise ValueError(f"PseudoLabels: forward, backward and bidirectional must share one (T,H,W) shape, "
                             f"got {shapes}")

    def __getitem__(self, kind: str) -> np.ndarray:
        if kind not in KINDS:
            raise KeyError(f"unknown pseudo-label kind {kind!r}; expected one of {KINDS}")
        return getattr(self, kind)

    def items(self):
        return [(k, getattr(self, k)) for k in KINDS]


class PseudoLabelCacheMismatch(ValueError):
    """A pseudo-label folder already holds labels made with other parameters (or another registration)."""


# ----------------------------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------------------------


def _check_images(images: np.ndarray, name: str = "images") -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"{name} must be (T, H, W), got shape {images.shape}")
    if images.shape[0] < 1:
        raise ValueError(f"{name} has no frames")
    return images.astype(np.float32, copy=False)


def _check_label(label: np.ndarray, shape: tuple[int, ...], name: str = "label") -> np.ndarray:
    label = np.asarray(label)
    if label.shape != tuple(shape):
        raise ValueError(f"{name} has shape {label.shape}, expected {tuple(shape)}")
    if label.dtype.kind == "f":
        if not np.all(np.equal(np.mod(label, 1), 0)):
            raise ValueError(f"{name} holds non-integer values; a label map must hold class indices")
    elif label.dtype.kind not in "iub":
        raise ValueError(f"{name} has dtype {label.dtype}; a label map must be integer")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(f"{name} holds values outside [0, 255] (min {label.min()}, max {label.max()})")
    return label.astype(np.uint8, copy=False)


# ----------------------------------------------------------------------------------------------------------------
# Propagation
# ----------------------------------------------------------------------------------------------------------------


def _default_warp():
    try:
        from .registration import warp
    except ImportError as exc:  # pragma: no cover - registration.py is part of the package
        raise ImportError("echo_utils.registration.warp is not available; pass warp= explicitly") from exc
    return warp


def _torch_device(registration) -> "torch.device":  # noqa: F821
    import torch

    if isinstance(registration, torch.nn.Module):
        for p in registration.parameters():
            return p.device
        for b in registration.buffers():
            return b.device
    return torch.device("cpu")


def _grad_context(registration):
    """``inference_mode`` for a trained network (a module with parameters); ``no_grad`` otherwise.

    A per-pair optimiser such as ``InstanceBSpline`` re-enables gradients inside its call, which works under
    ``no_grad`` but not with the inference tensors that ``inference_mode`` would create.
    """
    import torch

    if getattr(registration, "needs_grad", None) is True:
        return torch.no_grad()
    if isinstance(registration, torch.nn.Module) and any(True for _ in registration.parameters()):
        if not hasattr(registration, "iterations"):
            return torch.inference_mode()
    return torch.no_grad()


def register_pairs(
    registration: Registration,
    images: np.ndarray,
    pairs: list[tuple[int, int]],
    *,
    batch_size: int | None = 64,
    precision: Literal["float32", "bfloat16"] = "float32",
) -> "torch.Tensor":  # noqa: F821
    """Register every ``(fixed, moving)`` frame-index pair of ``images`` in batched calls.

    Parameters
    ----------
    registration : ``reg(fixed, moving) -> displacement``, torch ``(N,1,H,W) -> (N,2,H,W)`` in pixels.
    images : float ``(T, H, W)`` in [0, 1].
    pairs : ``[(fixed index, moving index), ...]``.
    batch_size : pairs per call (``None``: all pairs in one call).
    precision : ``'bfloat16'`` runs the convolutions of a network registration (a module with
        ``control_points``, such as ``BSplineDIR``) under CPU/CUDA bfloat16 autocast, about twice as fast on CPUs
        with AVX-512 BF16/AMX; the control points are then upsampled to the dense field in float32. Registrations
        that are not modules (``InstanceBSpline``) always run in float32.

    Returns
    -------
    float32 torch tensor ``(len(pairs), 2, H, W)`` on the CPU, displacements in pixels.
    """
    import torch

    images = _check_images(images)
    h, w = images.shape[1:]
    if not pairs:
        return torch.zeros((0, 2, h, w), dtype=torch.float32)
    device = _torch_device(registration)
    fixed_idx = torch.as_tensor([p[0] for p in pairs])
    moving_idx = torch.as_tensor([p[1] for p in pairs])
    frames = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)  # (T,1,H,W)
    step = len(pairs) if not batch_size else int(batch_size)
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
    low = (
        precision == "bfloat16"
        and isinstance(registration, torch.nn.Module)
        and hasattr(registration, "control_points")
        and hasattr(registration, "grid_spacing")
    )
    out = []
    with _grad_context(registration):
        for s in range(0, len(pairs), step):
            fixed = frames[fixed_idx[s : s + step]].to(device)
            moving = frames[moving_idx[s : s + step]].to(device)
            if low:
                from .registration import bspline_upsample

                with torch.autocast(device.type, dtype=torch.bfloat16):
                    cp = registration.control_points(fixed, moving)
                u = bspline_upsample(cp.float(), registration.grid_spacing, (h, w))
            else:
                u = registration(fixed, moving)
            if tuple(u.shape) != (fixed.shape[0], 2, h, w):
                raise ValueError(
                    f"registration returned a displacement of shape {tuple(u.shape)}; "
                    f"expected {(fixed.shape[0], 2, h, w)}"
                )
            out.append(u.detach().float().cpu())
    return torch.cat(out).clone()


class MemoizedRegistration:
    """Wrap a registration so that an image pair seen before returns its stored displacement (CPU tensors).

    Pairs are keyed by a hash of the two images' bytes, so comparing propagation modes (which register the same
    pairs) or assembly rules costs one registration per pair. ``hits`` and ``misses`` count the pairs.
    """

    def __init__(self, registration: Registration):
        self.registration = registration
        self.store: dict[bytes, "torch.Tensor"] = {}  # noqa: F821
        self.hits = 0
        self.misses = 0
        self.needs_grad = getattr(registration, "needs_grad", False)

    @staticmethod
    def _key(f, m) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        h.update(f.detach().cpu().numpy().tobytes())
        h.update(m.detach().cpu().numpy().tobytes())
        return h.digest()

    def __call__(self, fixed, moving):
        import torch

        keys = [self._key(fixed[i], moving[i]) for i in range(fixed.shape[0])]
        todo = [i for i, k in enumerate(keys) if k not in self.store]
        if todo:
            idx = torch.as_tensor(todo)
            with _grad_context(self.registration):
                u = self.registration(fixed[idx], moving[idx]).detach().float().cpu()
            for j, i in enumerate(todo):
                self.store[keys[i]] = u[j]
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        return torch.stack([self.store[k] for k in keys]).to(fixed.device)

    def __repr__(self) -> str:
        return f"MemoizedRegistration({self.registration!r})"


def _path_pairs(path: list[int], mode: Mode) -> list[tuple[int, int]]:
    """(fixed, moving) pairs that carry the label of ``path[0]`` along ``path``."""
    if mode in ("sequential", "composed"):
        return [(path[k + 1], path[k]) for k in range(len(path) - 1)]
    if mode == "fixed":
        return [(path[k], path[0]) for k in range(1, len(path))]
    raise ValueError(f"unknown propagation mode {mode!r}; expected 'sequential', 'composed' or 'fixed'")


def _warp_chains(labels: list[np.ndarray], displacements: list, mode: Mode, warp) -> list[np.ndarray]:
    """Warp each ``labels[i]`` (H,W) along its path; returns ``[(len(displacements[i]) + 1, H, W) uint8]``.

    Sequential mode: step k of every chain that is still running goes through ``warp`` in one batched call (the
    chains are independent; only the steps of one chain are sequential). Fixed mode: one call per chain.
    """
    import torch

    outs = []
    for lab, d in zip(labels, displacements):
        o = np.empty((d.shape[0] + 1, *lab.shape), dtype=np.uint8)
        o[0] = lab
        outs.append(o)
    with torch.no_grad():
        if mode == "fixed":
            for lab, d, o in zip(labels, displacements, outs):
                if d.shape[0]:
                    src = torch.from_numpy(lab.astype(np.float32))[None, None].expand(d.shape[0], 1, *lab.shape)
                    o[1:] = np.rint(warp(src, d, mode="nearest")[:, 0].cpu().numpy()).astype(np.uint8)
            return outs
        if mode == "composed":
            # U_{k+1}(p) = u_k(p) + U_k(p + u_k(p)): the start label is then warped once per frame, so sub-pixel
            # steps add up instead of being rounded away by every nearest-neighbour resampling.
            total = [None] * len(labels)
            fields = [[] for _ in labels]
            for k in range(max((d.shape[0] for d in displacements), default=0)):
                live = [i for i, d in enumerate(displacements) if d.shape[0] > k]
                u = torch.cat([displacements[i][k : k + 1] for i in live])
                prev = [total[i] for i in live]
                if prev[0] is None:
                    new = u
                else:
                    new = u + warp(torch.cat(prev), u, mode="bilinear")
                for j, i in enumerate(live):
                    total[i] = new[j : j + 1]
                    fields[i].append(total[i])
            for lab, fs, o in zip(labels, fields, outs):
                if fs:
                    src = torch.from_numpy(lab.astype(np.float32))[None, None].expand(len(fs), 1, *lab.shape)
                    o[1:] = np.rint(warp(src, torch.cat(fs), mode="nearest")[:, 0].cpu().numpy()).astype(np.uint8)
            return outs
        current = [torch.from_numpy(lab.astype(np.float32))[None, None] for lab in labels]
        for k in range(max((d.shape[0] for d in displacements), default=0)):
            live = [i for i, d in enumerate(displacements) if d.shape[0] > k]
            warped = warp(torch.cat([current[i] for i in live]), torch.cat([displacements[i][k : k + 1] for i in live]),
                          mode="nearest")
            for j, i in enumerate(live):
                current[i] = warped[j : j + 1]
                outs[i][k + 1] = np.rint(warped[j, 0].cpu().numpy()).astype(np.uint8)
    return outs


def _warp_chain(label: np.ndarray, displacements, mode: Mode, warp) -> np.ndarray:
    """Warp ``label`` (H,W) along one path: ``(len(displacements) + 1, H, W)`` uint8, first = ``label``."""
    return _warp_chains([label], [displacements], mode, warp)[0]


def propagate(
    images: np.ndarray,
    label: np.ndarray,
    registration: Registration,
    direction: Direction = "forward",
    *,
    mode: Mode = "sequential",
    warp: Callable | None = None,
    batch_size: int | None = 64,
) -> np.ndarray:
    """Propagate one label map through a sequence with a registration.

    Parameters
    ----------
    images : float ``(T, H, W)`` in [0, 1]; the frames from the labelled start frame to the end frame.
    label : ``(H, W)`` integer label map of the start frame: frame 0 for ``direction='forward'`` (ED),
        frame T-1 for ``'backward'`` (ES).
    registration : ``reg(fixed, moving) -> displacement`` (torch ``(N,1,H,W) -> (N,2,H,W)``, pixels).
    mode : ``'sequential'`` (default): register fixed = next frame to moving = current frame, warp the current label;
        all T-1 image pairs are registered in one batched call (they do not depend on the labels), only the label
        warping is sequential. ``'composed'``: the same registrations, but the displacements are composed
        (``U_{k+1}(p) = u_k(p) + U_k(p + u_k(p))``, bilinear) and the start label is warped once to every frame, so
        sub-pixel frame-to-frame motion is not rounded away by repeated nearest-neighbour resampling.
        ``'fixed'``: register fixed = every frame to moving = the start frame and warp the start label once per
        frame (the authors' alternative).
    warp : ``warp(x (N,C,H,W), u (N,2,H,W), mode='nearest')``; default ``echo_utils.registration.warp``.
    batch_size : image pairs per registration call (``None``: all at once).

    Returns
    -------
    uint8 ``(T, H, W)``: the start frame holds ``label`` unchanged.
    """
    images = _check_images(images)
    t, h, w = images.shape
    label = _check_label(label, (h, w))
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    warp = warp or _default_warp()
    path = list(range(t)) if direction == "forward" else list(range(t - 1, -1, -1))
    disp = register_pairs(registration, images, _path_pairs(path, mode), batch_size=batch_size)
    chained = _warp_chain(label, disp, mode, warp)
    out = np.empty((t, h, w), dtype=np.uint8)
    out[path] = chained
    return out


# ----------------------------------------------------------------------------------------------------------------
# Eq. 1 fusion
# ----------------------------------------------------------------------------------------------------------------


def fusion_weights(n_frames: int, convention: Weights = "authors") -> tuple[np.ndarray, np.ndarray]:
    """The Eq. 1 weights ``(w_forward, w_backward)``, each ``(T,)``, with ``w_forward + w_backward = 1``.

    ``'authors'``: phase = linspace(0, pi/2, T) over frames 0..T-1 (ED weight 1 forward, ES weight 1 backward).
    ``'paper'``: phase_t = pi t / (2N) for t = 1..N as printed (N = T).
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if convention == "authors":
        phase = np.linspace(0.0, np.pi / 2, n_frames) if n_frames > 1 else np.zeros(1)
    elif convention == "paper":
        phase = np.pi * np.arange(1, n_frames + 1) / (2 * n_frames)
    else:
        raise ValueError(f"unknown weights convention {convention!r}; expected 'authors' or 'paper'")
    wf = np.cos(phase) ** 2
    wf[np.isclose(wf, 0.0, atol=1e-12)] = 0.0
    wf[np.isclose(wf, 1.0, rtol=0, atol=1e-12)] = 1.0
    return wf, 1.0 - wf


def _sd2d(mask: np.ndarray, spacing, far: float) -> np.ndarray:
    """Exact signed distance (float64) of a 2D boolean mask: distance inside minus distance outside (one EDT call)."""
    import edt

    if not mask.any() or mask.all():
        # no boundary: infinitely far outside (empty) / inside (full); capped at ``far``
        return np.full(mask.shape, -far if not mask.any() else far, dtype=np.float64)
    # two labels (1 outside, 2 inside): each pixel gets the distance to the nearest pixel of the other label.
    # Squared distances are integers (exact in float32) at unit spacing; the root is taken in float64.
    d = np.sqrt(edt.edtsq(mask.astype(np.uint8) + 1, anisotropy=spacing, parallel=1).astype(np.float64))
    return np.where(mask, d, -d)


def signed_distance(mask: np.ndarray, spacing: tuple[float, float] | None = None) -> np.ndarray:
    """Exact signed Euclidean distance of a boolean mask, ``(H,W)`` or per frame of ``(T,H,W)``.

    Positive inside (distance to the nearest outside pixel), negative outside (minus the distance to the nearest
    inside pixel), so the boundary lies at the zero crossing between the two. Units: pixels, or mm with
    ``spacing=(sy, sx)``. An empty mask is ``-(H + W)`` everywhere (scaled by the largest spacing).
    """
    mask = np.asarray(mask, dtype=bool)
    sp = tuple(float(s) for s in spacing) if spacing is not None else (1.0, 1.0)
    far = float(sum(mask.shape[-2:])) * max(sp)
    if mask.ndim == 2:
        return _sd2d(mask, sp, far)
    if mask.ndim == 3:
        return np.stack([_sd2d(m, sp, far) for m in mask])
    raise ValueError(f"mask must be (H,W) or (T,H,W), got shape {mask.shape}")


def fused_signed_distance(
    forward: np.ndarray,
    backward: np.ndarray,
    label: int,
    *,
    weights: Weights = "authors",
    spacing: tuple[float, float] | None = None,
) -> np.ndarray:
    """Eq. 1 before thresholding, for one class: ``cos² d(forward == C) + sin² d(backward == C)``, float ``(T,H,W)``.

    Full-frame and unoptimised: meant for figures. :func:`fuse_bidirectional` computes the same values per crop.
    """
    forward, backward = _check_pair(forward, backward)
    wf, wb = fusion_weights(forward.shape[0], weights)
    df = signed_distance(forward == label, spacing)
    db = signed_distance(backward == label, spacing)
    return wf[:, None, None] * df + wb[:, None, None] * db


def _check_pair(forward, backward) -> tuple[np.ndarray, np.ndarray]:
    forward = np.asarray(forward)
    backward = np.asarray(backward)
    if forward.ndim != 3:
        raise ValueError(f"forward must be a (T,H,W) label map, got shape {forward.shape}")
    if forward.shape != backward.shape:
        raise ValueError(f"forward {forward.shape} and backward {backward.shape} label maps differ in shape")
    return _check_label(forward, forward.shape, "forward"), _check_label(backward, backward.shape, "backward")


def _crop_box(fg: np.ndarray, margin: int) -> tuple[slice, slice]:
    rows = np.flatnonzero(fg.any(axis=1))
    cols = np.flatnonzero(fg.any(axis=0))
    h, w = fg.shape
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)),
    )


def _fuse_frame(f: np.ndarray, b: np.ndarray, wf: float, wb: float, n_classes: int, assemble: Assemble, spacing, far):
    """One frame of Eq. 1 + assembly; only pixels where the two directions disagree can change."""
    fg = (f > 0) | (b > 0)
    if not fg.any():
        return np.zeros_like(f)
    # Crop: the box of all foreground (both directions) + 1 px of background. Every foreground class lies inside
    # it, and its one-pixel rim is background, so for any pixel inside the box the nearest pixel of another label
    # is inside the box too (clamping a point outside onto the rim only brings it closer): the distances are exact.
    ys, xs = _crop_box(fg, margin=1)
    fc, bc = f[ys, xs], b[ys, xs]
    s = np.empty((n_classes, *fc.shape), dtype=np.float64)
    for c in range(n_classes):
        s[c] = wf * _sd2d(fc == c, spacing, far) + wb * _sd2d(bc == c, spacing, far)
    # Exact ties are common (a pixel halfway between two boundaries): round away the floating-point noise so that
    # a tie goes to the lowest label and a fused distance of 0 is not "> 0", deterministically.
    s = np.round(s, _TIE_DECIMALS)
    if assemble == "sdf":
        crop = np.argmax(s, axis=0).astype(np.uint8)
    else:
        crop = np.argmax(s > 0, axis=0).astype(np.uint8)  # first True; all False -> 0 (background)
    # Both rules keep a pixel that the two directions give the same class (its fused distance is the only
    # positive one); setting it explicitly guards against ties in floating point.
    agree = fc == bc
    crop[agree] = fc[agree]
    out = np.zeros_like(f)  # outside the box both directions say background, and so do both rules
    out[ys, xs] = crop
    return out


def fuse_bidirectional(
    forward: np.ndarray,
    backward: np.ndarray,
    *,
    weights: Weights = "authors",
    assemble: Assemble = "sdf",
    closing: int = 0,
    spacing: tuple[float, float] | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """Fuse forward and backward pseudo-labels with Eq. 1.

    Parameters
    ----------
    forward, backward : uint8 ``(T, H, W)`` label maps (frame 0 = ED, frame T-1 = ES).
    weights : phase convention, ``'authors'`` (linspace(0, pi/2, T); default) or ``'paper'`` (Eq. 1 as printed),
        see :func:`fusion_weights`.
    assemble : ``'sdf'`` (class of largest fused signed distance; default) or ``'argmax'`` (authors: first class
        whose fused distance is > 0, background first; unclaimed pixels become background).
    closing : size k of the authors' optional k x k grey-level closing of the label image (0 = off, default).
    spacing : ``(sy, sx)`` to compute the distances in mm instead of pixels.
    workers : threads over frames (the EDT releases the GIL); default: the usable CPU cores, at most 4.

    Returns
    -------
    uint8 ``(T, H, W)``, values in the classes present in the inputs.

    Notes
    -----
    Where both directions give a pixel the same class, both rules keep it (that class's fused distance is the only
    positive one), so only disagreement pixels are decided by Eq. 1. A frame whose weight is exactly 1 on one side
    returns that side unchanged (before closing): with ``'authors'`` weights, ED is the forward and ES the
    backward label.
    """
    forward, backward = _check_pair(forward, backward)
    if assemble not in ("sdf", "argmax"):
        raise ValueError(f"unknown assembly rule {assemble!r}; expected 'sdf' or 'argmax'")
    if closing < 0:
        raise ValueError(f"closing must be >= 0, got {closing}")
    t, h, w = forward.shape
    wf, wb = fusion_weights(t, weights)
    sp = tuple(float(x) for x in spacing) if spacing is not None else (1.0, 1.0)
    far = float(h + w) * max(sp)
    n_classes = int(max(forward.max(initial=0), backward.max(initial=0))) + 1
    out = np.empty_like(forward)
    todo = []
    for k in range(t):
        if wb[k] == 0.0 or np.array_equal(forward[k], backward[k]):
            out[k] = forward[k]
        elif wf[k] == 0.0:
            out[k] = backward[k]
        else:
            todo.append(k)

    def one(k: int) -> None:
        out[k] = _fuse_frame(forward[k], backward[k], wf[k], wb[k], n_classes, assemble, sp, far)

    if workers is None:
        workers = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 4)
    if workers > 1 and len(todo) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(workers, len(todo))) as pool:
            list(pool.map(one, todo))
    else:
        for k in todo:
            one(k)
    if closing:
        from scipy import ndimage as ndi

        out = ndi.grey_closing(out, size=(1, int(closing), int(closing))).astype(np.uint8)
    return out


# ----------------------------------------------------------------------------------------------------------------
# One sequence
# ----------------------------------------------------------------------------------------------------------------


def _resolve_options(config, **explicit):
    defaults = {"mode": "sequential", "weights": "authors", "assemble": "sdf", "closing": 0}
    out = {}
    for k, d in defaults.items():
        v = explicit.get(k)
        if v is None and config is not None:
            v = getattr(config, k)
        out[k] = d if v is None else v
    return out


def _seq_name(seq) -> str:
    return getattr(seq, "key", None) or f"{getattr(seq, 'patient', '?')}_{getattr(seq, 'view', '?')}"


def _check_sequence(seq) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    name = _seq_name(seq)
    images = np.asarray(seq.images)
    if images.ndim != 3:
        raise ValueError(f"{name}: images must be (T,H,W), got shape {images.shape}")
    t = images.shape[0]
    labels = seq.labels or {}
    for what, idx in (("ED", seq.ed), ("ES", seq.es)):
        if idx is None or not 0 <= int(idx) < t:
            raise ValueError(f"{name}: {what} index {idx} is outside the sequence's {t} frames")
        if int(idx) not in labels:
            raise ValueError(
                f"{name}: no {what} label (frame {idx}); pseudo-labels need both the ED and the ES reference "
                f"labels, got labels for frames {sorted(labels)}"
            )
    if int(seq.ed) == int(seq.es):
        raise ValueError(f"{name}: ED and ES are the same frame ({seq.ed}); nothing to propagate between")
    ed = _check_label(labels[int(seq.ed)], images.shape[1:], f"{name} ED label")
    es = _check_label(labels[int(seq.es)], images.shape[1:], f"{name} ES label")
    for what, lab in (("ED", ed), ("ES", es)):
        if not lab.any():
            raise ValueError(f"{name}: the {what} label is empty (background only)")
    from .labels import LABEL_NAMES

    for c in sorted(set(np.unique(ed)) ^ set(np.unique(es))):
        where, missing = ("ES", "ED") if c in es else ("ED", "ES")
        warnings.warn(
            f"{name}: class {c} ({LABEL_NAMES.get(int(c), '?')}) is in the {where} label but not in the {missing} "
            f"label. Propagation from {missing} has no such class; Eq. 1 treats its missing mask as infinitely far, "
            f"so the fused label claims class {c} only where the {where} side's weight is (almost) 1.",
            UserWarning,
            stacklevel=3,
        )
    return images.astype(np.float32, copy=False), ed, es


def pseudo_labels(
    seq,
    registration: Registration,
    *,
    config=None,
    mode: Mode | None = None,
    weights: Weights | None = None,
    assemble: Assemble | None = None,
    closing: int | None = None,
    warp: Callable | None = None,
    batch_size: int | None = 64,
    precision: Literal["float32", "bfloat16"] = "float32",
) -> PseudoLabels:
    """Forward, backward and bidirectional pseudo-labels of one :class:`~echo_utils.camus.EchoSequence`.

    All registrations of the sequence (both directions, and the frames outside [ED, ES]) go to the registration in
    batched calls of ``batch_size`` pairs; only the label warping is sequential.

    Parameters
    ----------
    seq : an ``EchoSequence`` with ``images (T,H,W)``, ``ed``, ``es`` and ``labels[ed]``, ``labels[es]``.
    registration : ``reg(fixed, moving) -> displacement``.
    config : a ``PseudoLabelConfig`` supplying ``mode``, ``weights``, ``assemble``, ``closing``; explicit keyword
        arguments win over it.
    mode, weights, assemble, closing : see :func:`propagate` and :func:`fuse_bidirectional`.
    warp : label warping function (default ``echo_utils.registration.warp``).
    batch_size, precision : see :func:`register_pairs`.

    Returns
    -------
    :class:`PseudoLabels`, each uint8 ``(T, H, W)``. Frames outside [ED, ES] are propagated from the nearest
    reference and shared by the three kinds (module docstring).

    Raises
    ------
    ValueError when the ED or ES label is missing or empty, the indices are out of range or equal, or the label and
    image shapes differ. A class present in only one reference label is a ``UserWarning``.
    """
    opts = _resolve_options(config, mode=mode, weights=weights, assemble=assemble, closing=closing)
    images, ed_label, es_label = _check_sequence(seq)
    warp = warp or _default_warp()
    t, h, w = images.shape
    ed, es = int(seq.ed), int(seq.es)
    step = 1 if es > ed else -1
    fwd_path = list(range(ed, es + step, step))
    bwd_path = fwd_path[::-1]
    before_path = list(range(ed, -1, -1)) if step == 1 else list(range(ed, t))  # ED outwards, away from ES
    after_path = list(range(es, t)) if step == 1 else list(range(es, -1, -1))  # ES outwards, away from ED
    paths = [(fwd_path, ed_label), (bwd_path, es_label), (before_path, ed_label), (after_path, es_label)]
    pair_lists = [_path_pairs(p, opts["mode"]) for p, _ in paths]
    disp = register_pairs(registration, images, [pp for pl in pair_lists for pp in pl], batch_size=batch_size,
                          precision=precision)
    bounds = np.cumsum([0] + [len(pl) for pl in pair_lists])
    chains = _warp_chains([lab for _, lab in paths], [disp[a:b] for a, b in zip(bounds[:-1], bounds[1:])],
                          opts["mode"], warp)
    fwd_seg, bwd_seg, before, after = chains
    bwd_seg = bwd_seg[::-1]  # back into ED -> ES order
    fused_seg = fuse_bidirectional(
        fwd_seg, bwd_seg, weights=opts["weights"], assemble=opts["assemble"], closing=opts["closing"]
    )
    result = {}
    for kind, seg in (("forward", fwd_seg), ("backward", bwd_seg), ("bidirectional", fused_seg)):
        full = np.zeros((t, h, w), dtype=np.uint8)
        full[before_path] = before
        full[after_path] = after
        full[fwd_path] = seg
        result[kind] = full
    return PseudoLabels(**result)


# ----------------------------------------------------------------------------------------------------------------
# NIfTI files (CAMUS naming) and the dataset-level cache
# ----------------------------------------------------------------------------------------------------------------


def _split_key(seq) -> tuple[str, str]:
    if isinstance(seq, str):
        patient, _, view = seq.rpartition("_")
        if not patient or view not in ("2CH", "4CH"):
            raise ValueError(f"sequence key {seq!r} is not of the form 'patientXXXX_2CH' / 'patientXXXX_4CH'")
        return patient, view
    return seq.patient, seq.view


def pseudo_label_path(root: str | Path, seq, kind: str) -> Path:
    """``root/patientXXXX/patientXXXX_<view>_half_sequence_<kind>.nii.gz`` (``seq``: sequence or its key)."""
    if kind not in KINDS:
        raise ValueError(f"unknown pseudo-label kind {kind!r}; expected one of {KINDS}")
    patient, view = _split_key(seq)
    return Path(root) / patient / f"{patient}_{view}_half_sequence_{kind}.nii.gz"


def _save_nifti(path: Path, labels: np.ndarray, spacing: tuple[float, float]) -> None:
    """Write uint8 ``(T,H,W)`` like CAMUS: nibabel axes (W, H, T), pixel spacing (sx, sy, 1) in the header."""
    import nibabel as nib

    sy, sx = (float(s) for s in spacing)
    data = np.ascontiguousarray(np.transpose(labels.astype(np.uint8), (2, 1, 0)))
    img = nib.Nifti1Image(data, affine=np.diag([sx, sy, 1.0, 1.0]))
    img.header.set_data_dtype(np.uint8)
    img.header.set_zooms((sx, sy, 1.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name.replace(".nii.gz", ""), suffix=".tmp.nii.gz", dir=path.parent)
    os.close(fd)
    try:
        nib.save(img, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_pseudo_labels(labels: PseudoLabels, root: str | Path, seq) -> dict[str, Path]:
    """Write the three kinds as NIfTI (atomically) under ``root`` (= ``paths.pseudo_labels / <method>``)."""
    shape = tuple(np.asarray(seq.images).shape)
    if labels.forward.shape != shape:
        raise ValueError(f"{_seq_name(seq)}: pseudo-labels {labels.forward.shape} do not match the images {shape}")
    written = {}
    for kind, arr in labels.items():
        path = pseudo_label_path(root, seq, kind)
        _save_nifti(path, arr, seq.spacing)
        written[kind] = path
    return written


def load_pseudo_labels(root: str | Path, seq) -> PseudoLabels:
    """Read the pseudo-labels of ``seq`` (an ``EchoSequence`` or its key) from ``root``
    (= ``paths.pseudo_labels/<method>``).

    Returns uint8 ``(T, H, W)`` arrays; with an ``EchoSequence`` their shape is checked against its images.
    """
    import nibabel as nib

    out = {}
    for kind in KINDS:
        path = pseudo_label_path(root, seq, kind)
        if not path.is_file():
            raise FileNotFoundError(f"pseudo-label file {path} does not exist; "
                                    "run notebook 03 (generate_pseudo_labels)")
        arr = np.asarray(nib.load(str(path)).dataobj)
        if arr.ndim != 3:
            raise ValueError(f"{path}: expected a 3D (W,H,T) volume, got shape {arr.shape}")
        out[kind] = np.ascontiguousarray(np.transpose(arr, (2, 1, 0))).astype(np.uint8)
        if not isinstance(seq, str) and out[kind].shape != tuple(np.asarray(seq.images).shape):
            raise ValueError(f"{path}: shape {out[kind].shape} does not match the sequence images "
                             f"{np.asarray(seq.images).shape}")
    return PseudoLabels(**out)


def registration_fingerprint(registration) -> str:
    """A short hash that identifies a registration: its class, its weights (a module) and its simple attributes."""
    if isinstance(registration, MemoizedRegistration):
        registration = registration.registration
    h = hashlib.sha256(type(registration).__qualname__.encode())
    state = getattr(registration, "state_dict", None)
    if callable(state):
        for k, v in sorted(state().items()):
            h.update(k.encode())
            h.update(np.ascontiguousarray(v.detach().cpu().float().numpy()).tobytes())
    attrs = {}
    if hasattr(registration, "__dict__"):
        attrs = {k: v for k, v in sorted(vars(registration).items()) if isinstance(v, (int, float, str, bool, tuple))}
    h.update(json.dumps(attrs, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _params_record(method: str, registration_id: str, opts: dict) -> dict:
    return {"format": _FORMAT_VERSION, "method": method, "registration": registration_id, "pseudo_labels": opts}


def _check_params(out_dir: Path, record: dict) -> None:
    path = out_dir / "params.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != record:
            diff = {k: (old.get(k), record.get(k)) for k in set(old) | set(record) if old.get(k) != record.get(k)}
            raise PseudoLabelCacheMismatch(
                f"{out_dir} already holds pseudo-labels made with other parameters: "
                + "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in sorted(diff.items()))
                + ". Refusing to mix them: use another method name or run directory, or delete the folder."
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".json.tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)


def generate_pseudo_labels(
    sequences: Iterable,
    registration: Registration,
    out_dir: str | Path | None,
    *,
    cfg_pl=None,
    method_name: str = "dlir",
    registration_id: str | None = None,
    warp: Callable | None = None,
    batch_size: int | None = 64,
    progress: bool = True,
) -> dict[str, PseudoLabels]:
    """Pseudo-labels for a whole dataset, cached as NIfTI under ``out_dir`` (= ``paths.pseudo_labels / method``).

    ``out_dir/params.json`` records the method, ``registration_id`` (default :func:`registration_fingerprint`) and
    the pseudo-label settings; a folder made with other values is a :class:`PseudoLabelCacheMismatch`. Sequences
    whose three files already exist are read back instead of recomputed. ``out_dir=None`` computes without writing.

    Returns ``{sequence key: PseudoLabels}`` in input order.
    """
    from tqdm.auto import tqdm

    sequences = list(sequences)
    opts = _resolve_options(cfg_pl)
    warp = warp or _default_warp()
    if out_dir is not None:
        out_dir = Path(out_dir)
        rid = registration_id or registration_fingerprint(registration)
        _check_params(out_dir, _params_record(method_name, rid, opts))
    result: dict[str, PseudoLabels] = {}
    n_cached = 0
    for seq in tqdm(sequences, desc=f"pseudo-labels ({method_name})", disable=not progress, unit="seq"):
        key = _seq_name(seq)
        if out_dir is not None and all(pseudo_label_path(out_dir, seq, k).is_file() for k in KINDS):
            result[key] = load_pseudo_labels(out_dir, seq)
            n_cached += 1
            continue
        pl = pseudo_labels(seq, registration, warp=warp, batch_size=batch_size, **opts)
        if out_dir is not None:
            save_pseudo_labels(pl, out_dir, seq)
        result[key] = pl
    if progress and n_cached:
        print(f"pseudo-labels ({method_name}): {n_cached}/{len(sequences)} sequences read from {out_dir}")
    return result


# ----------------------------------------------------------------------------------------------------------------
# Evaluation against a dense reference (Fig. 2)
# ----------------------------------------------------------------------------------------------------------------


def evaluation_sequences(cfg, paths, *, limit: int | None = None) -> list:
    """The sequences the pseudo-labels are evaluated on: dense reference, patients unseen by the registration.

    * synthetic cohort: the ``val`` and ``test`` splits (exact dense truth; notebook 02 trains the registration on
      ``train`` only, as the paper left the TED patients out of its training set);
    * CAMUS with ``data.ted_root``: the TED sequences (full cycle, manual dense labels), resized like the study;
    * CAMUS without TED: the ``val`` split with the ``half_sequence_gt`` files, which are *interpolated*, not
      manual (a ``UserWarning`` says so).

    ``limit`` (default ``cfg.pseudo_labels.max_sequences``) keeps the first N sequences.
    """
    import os

    from . import camus

    limit = cfg.pseudo_labels.max_sequences if limit is None else limit
    d = cfg.data
    if d.source == "synthetic":
        seqs = camus.load_study(cfg, paths, "val") + camus.load_study(cfg, paths, "test")
    elif d.ted_root:
        root = Path(os.path.expandvars(d.ted_root))
        seqs = list(camus.iter_sequences(root))
        if d.resize:
            seqs = [camus.resize_sequence(s, (d.resize, d.resize)) for s in seqs]
    else:
        seqs = camus.load_study(cfg, paths, "val")
        warnings.warn("no TED root: evaluating pseudo-labels against CAMUS half_sequence_gt, which is interpolated "
                      "between ED and ES, not manual", UserWarning, stacklevel=2)
    seqs = [s for s in seqs if s.dense is not None]
    if not seqs:
        raise ValueError("no sequence with a dense reference to evaluate the pseudo-labels on")
    return seqs[:limit] if limit else seqs


def refuse(seq, labels: PseudoLabels, **fuse_kwargs) -> np.ndarray:
    """Re-run Eq. 1 on the forward/backward pseudo-labels of ``seq`` between ED and ES with other fusion options
    (``weights``, ``assemble``, ``closing``); frames outside [ED, ES] are copied. Returns uint8 ``(T, H, W)``."""
    ed, es = int(seq.ed), int(seq.es)
    step = 1 if es > ed else -1
    frames = np.arange(ed, es + step, step)
    out = labels.bidirectional.copy()
    out[frames] = fuse_bidirectional(labels.forward[frames], labels.backward[frames], **fuse_kwargs)
    return out



def score_pseudo_labels(
    sequences: Iterable,
    labels: Mapping[str, PseudoLabels],
    *,
    classes: tuple[int, ...] = (1, 2, 3),
    method: str = "dlir",
    reference_size: int = 512,
    progress: bool = True,
) -> "pd.DataFrame":  # noqa: F821
    """Per-frame scores of every kind against the dense reference, over the frames from ED to ES (Fig. 2).

    Uses :func:`echo_utils.metrics.score_sequence` (its contour and empty-mask conventions) twice: in mm with the
    sequence's spacing, and in pixels of the image resized to ``reference_size`` x ``reference_size`` (spacing
    ``(512/H, 512/W)``), the unit of the paper's Fig. 2.

    Returns a long table, one row per (sequence, kind, structure, frame): ``patient, view, key, method, kind,
    structure`` ('LV', 'MYO' ring, 'EPI' = LV + MYO, 'LA'), ``frame`` (index in the sequence), ``phase`` (0 at ED,
    1 at ES), ``dice``, ``hd_mm``, ``mad_mm``, ``hd_px``, ``mad_px``. A structure absent from the dense reference
    of a sequence between ED and ES (e.g. LA in TED) is left out for that sequence.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from . import metrics

    tables = []
    for seq in tqdm(list(sequences), desc=f"scoring ({method})", disable=not progress, unit="seq"):
        key = _seq_name(seq)
        if seq.dense is None:
            raise ValueError(f"{key}: no dense reference to score pseudo-labels against")
        if key not in labels:
            raise KeyError(f"{key}: no pseudo-labels were generated for this sequence")
        ed, es = int(seq.ed), int(seq.es)
        step = 1 if es > ed else -1
        frames = np.arange(ed, es + step, step)
        ref = np.asarray(seq.dense)[frames]
        present = tuple(c for c in classes if (ref == c).any())
        h, w = ref.shape[1:]
        px = (reference_size / h, reference_size / w)
        sy, sx = (float(v) for v in seq.spacing)
        # px-at-512 distances are mm distances times one factor when both spacings have the same aspect ratio
        # (square pixels on a square image, e.g.); otherwise the contours are measured a second time.
        scale = px[0] / sy if np.isclose(px[0] / sy, px[1] / sx, rtol=1e-9) else None
        for kind, pred in labels[key].items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", metrics.EmptyMaskWarning)  # NaN frames are counted by the caller
                mm = metrics.score_sequence(pred[frames], ref, seq.spacing, classes=present)
                pxt = None if scale else metrics.score_sequence(pred[frames], ref, px, classes=present)
            t = mm.rename(columns={"hd": "hd_mm", "mad": "mad_mm"}).drop(columns=["pred_px", "ref_px"])
            t["hd_px"] = t["hd_mm"] * scale if scale else pxt["hd"].to_numpy()
            t["mad_px"] = t["mad_mm"] * scale if scale else pxt["mad"].to_numpy()
            t["phase"] = t["frame"] / max(len(frames) - 1, 1)
            t["frame"] = frames[t["frame"].to_numpy()]
            t.insert(0, "kind", kind)
            t.insert(0, "method", method)
            t.insert(0, "key", key)
            t.insert(0, "view", seq.view)
            t.insert(0, "patient", seq.patient)
            tables.append(t)
    cols = ["patient", "view", "key", "method", "kind", "frame", "structure", "dice", "hd_mm", "mad_mm",
            "hd_px", "mad_px", "phase"]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=cols)


def per_video(scores: "pd.DataFrame") -> "pd.DataFrame":  # noqa: F821
    """Average :func:`score_pseudo_labels` rows over the frames of each video (NaN frames skipped), as the paper."""
    keys = ["patient", "view", "key", "method", "kind", "structure"]
    metrics_ = ["dice", "hd_mm", "mad_mm", "hd_px", "mad_px"]
    g = scores.groupby(keys, sort=False)
    out = g[metrics_].mean()
    out["n_frames"] = g.size()
    return out.reset_index()


def compare_directions(
    videos: "pd.DataFrame",  # noqa: F821
    *,
    metrics_: tuple[str, ...] = ("dice", "hd_mm", "mad_mm", "hd_px", "mad_px"),
    reference: str = "bidirectional",
) -> "pd.DataFrame":  # noqa: F821
    """Medians per (method, structure, kind) and a paired two-sided Wilcoxon test of ``reference`` against each kind.

    ``videos``: :func:`per_video` output, one row per (key, method, kind, structure). Returns one
    row per (method, structure, metric) with the median of each kind and the Wilcoxon p-value of
    ``reference`` vs every other kind (NaN when fewer than 2 videos or all differences are zero).
    """
    import pandas as pd
    from scipy.stats import wilcoxon

    rows = []
    for (method, structure), g in videos.groupby(["method", "structure"], sort=False):
        wide = {m: g.pivot_table(index="key", columns="kind", values=m) for m in metrics_}
        for m, tab in wide.items():
            row = {"method": method, "structure": structure, "metric": m, "n_videos": len(tab)}
            for kind in tab.columns:
                row[f"median_{kind}"] = float(tab[kind].median())
            for kind in tab.columns:
                if kind == reference or reference not in tab.columns:
                    continue
                pair = tab[[reference, kind]].dropna()
                diff = pair[reference] - pair[kind]
                if len(pair) < 2 or np.allclose(diff, 0):
                    p = np.nan
                else:
                    p = float(wilcoxon(pair[reference], pair[kind]).pvalue)
                row[f"p_{reference}_vs_{kind}"] = p
            rows.append(row)
    return pd.DataFrame(rows)
