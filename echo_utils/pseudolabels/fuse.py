"""Eq. 1 fusion: forward and backward label maps merged through their signed distance maps.

For every class C (background included) the signed distance :math:`d = d_\\mathrm{inside} - d_\\mathrm{outside}` of
the forward and of the backward mask is weighted by :math:`\\cos^2\\varphi_t` and :math:`\\sin^2\\varphi_t` (Eq. 1 of
the paper), and the class is claimed where the sum is > 0.

Choices this module makes, and the other option it offers:

* **Phase convention** ``weights='authors'`` (default, the authors' code): :math:`\\varphi =
  \\mathrm{linspace}(0, \\pi/2, T)`, so the fused ED frame is exactly the forward label (the ED reference) and the
  fused ES frame exactly the backward label (the ES reference). ``weights='paper'``: Eq. 1 as printed,
  :math:`\\varphi_t = \\pi t / (2N)` for :math:`t = 1..N`; then ES is exactly the backward label but ED still mixes in
  1 - cos²(π/2N) of the backward map.
* **Assembly** of one label map from the per-class fused maps ``s_C``: ``assemble='sdf'`` (default, chosen on the
  evidence of the book's pseudo-label chapter): each pixel takes the class of **largest fused signed distance**,
  ``argmax_C s_C``. Overlaps go to the class the pixel is deepest inside; a pixel no class claims goes to the class
  whose fused boundary is nearest. ``assemble='argmax'``: the authors' rule, ``argmax_C [s_C > 0]`` over the
  booleans, ties to the lowest label (so a pixel that background claims is background) and unclaimed pixels become
  background.
* **Distance transform**: exact Euclidean (the ``edt`` package), in pixels by default like the authors (whose
  OpenCV transform was the approximate 3x3 one); ``spacing=(sy, sx)`` gives mm instead. Each frame is cropped to the
  bounding box of its foreground (both directions) plus a margin, which leaves the distances inside the box exact
  (see :func:`fuse_bidirectional`) and saves most of the work.
* **Empty mask**: a class absent from one direction in a frame has no boundary; its signed distance is taken as
  ``-(H + W)`` (farther than any pixel of the image), so the class is then only claimed from the other direction
  where that direction's weight dominates completely.
* **Closing**: ``closing=k`` applies the authors' k x k morphological closing (grey-level closing of the label image,
  as OpenCV's ``morphologyEx`` does on a uint8 label map) after assembly. Off by default: it can change the
  reference ED/ES frames and merges thin structures.
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np

__all__ = ["fusion_weights", "signed_distance", "fused_signed_distance", "fuse_bidirectional", "fuse_directions"]

Weights = Literal["authors", "paper"]
Assemble = Literal["sdf", "argmax"]

_TIE_DECIMALS = 6  # fused distances equal to 1e-6 px are ties (see _fuse_frame)


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



def fuse_directions(seq, labels, **fuse_kwargs) -> np.ndarray:
    """Fuse the forward and backward pseudo-labels of ``seq`` again with other Eq. 1 options.

    ``labels`` is the sequence's :class:`~echo_utils.pseudolabels.propagate.PseudoLabels`; the frames from ED to ES
    are fused with ``fuse_kwargs`` (``weights``, ``assemble``, ``closing``, ``spacing``; see
    :func:`fuse_bidirectional`) and the frames outside [ED, ES] are copied from ``labels.bidirectional``. No
    registration runs. Returns uint8 ``(T, H, W)``.
    """
    ed, es = int(seq.ed), int(seq.es)
    step = 1 if es > ed else -1
    frames = np.arange(ed, es + step, step)
    out = np.array(labels.bidirectional, copy=True)
    out[frames] = fuse_bidirectional(labels.forward[frames], labels.backward[frames], **fuse_kwargs)
    return out
