"""Label propagation: carry the ED and ES labels through a sequence with a registration, and the three pseudo-labels.

The paper's pseudo-labels (Sec. 2.3) in three steps:

1. **Forward propagation** (:func:`propagate`): starting from the ED label at ED, register
   fixed = frame t+1 to moving = frame t and warp label t with nearest-neighbour interpolation to get label t+1
   (``mode='sequential'``, the authors' choice). ``mode='composed'`` registers the same image pairs but composes
   the displacements and warps the start label once per frame, so that sub-pixel frame-to-frame motion is not
   rounded away by repeated nearest-neighbour resampling. The authors' code also has ``mode='fixed'``, which
   registers the start frame directly to every frame and warps the start label once.
2. **Backward propagation**: the same from the ES label at ES, towards ED.
3. **Fusion** (:func:`~echo_utils.pseudolabels.fuse.fuse_bidirectional`, Eq. 1).

:func:`pseudo_labels` does all three for one sequence. Image pairs go through the one batched registration path
(:func:`echo_utils.registration.register_pairs`); only the label warping is sequential.

Conventions: images float32 ``(T, H, W)`` in [0, 1]; labels uint8 (0 background, 1 LV cavity, 2 LV myocardium,
3 left atrium); a *registration* is any callable ``reg(fixed, moving) -> displacement`` on torch tensors
``(N, 1, H, W) -> (N, 2, H, W)`` in pixels with ``warped(p) = moving(p + u(p))``; labels are warped with
``echo_utils.registration.warp(..., mode='nearest')``.

**Frames outside [ED, ES]** (full-cycle sequences such as TED): only one reference is near, so frames before ED
receive the ED label propagated backwards in time and frames after ES the ES label propagated onwards; the three
kinds (forward, backward, bidirectional) share these frames. If ED comes after ES in time, "forward" still starts
at ED and runs towards ES. A class present in one reference label only is a ``UserWarning``: Eq. 1 then claims it
only where that side's weight is (almost) 1.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch

from ..labels import LABEL_NAMES
from ..registration.inference import register_pairs
from ..registration.warp import warp as _registration_warp
from .fuse import Assemble, Weights, _check_images, _check_label, fuse_bidirectional

__all__ = ["KINDS", "PseudoLabels", "propagate", "pseudo_labels"]

KINDS = ("forward", "backward", "bidirectional")
Registration = Callable  # reg(fixed (N,1,H,W), moving (N,1,H,W)) -> displacement (N,2,H,W), torch tensors
Direction = Literal["forward", "backward"]
Mode = Literal["sequential", "composed", "fixed"]


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
    warp = warp or _registration_warp
    path = list(range(t)) if direction == "forward" else list(range(t - 1, -1, -1))
    disp = register_pairs(registration, images, _path_pairs(path, mode), batch_size=batch_size)
    chained = _warp_chain(label, disp, mode, warp)
    out = np.empty((t, h, w), dtype=np.uint8)
    out[path] = chained
    return out


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
    precision: Literal["float32", "bfloat16"] | None = None,
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
    batch_size, precision : see :func:`echo_utils.registration.register_pairs`.

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
    warp = warp or _registration_warp
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
