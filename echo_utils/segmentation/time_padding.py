"""Temporal reflect padding of the 3D (2D+time) volumes: context past ED and ES for the 3D nnU-Nets.

A half sequence runs from ED (frame 0) to ES (frame T-1), exactly the two frames Tables 1 and 2 read. A 3D
network sees nothing before frame 0 and nothing after frame T-1: nnU-Net pads its patches there (zeros in the
image, the padding value in the segmentation) and its convolutions pad every feature map with zeros, so the end
frames are segmented from half a temporal context, unlike every interior frame. With ``nnunet.time_padding:
reflect`` each sequence is extended by ``k`` frames at each end by reflection about its end frames (numpy's
``'reflect'``: the end frame itself is not repeated)::

    frames      0 1 2 ... T-1              (ED ... ES)
    padded      k .. 2 1 | 0 1 2 ... T-1 | T-2 T-3 .. T-1-k

Physically the mirror is a plausible continuation of an ED -> ES half cycle: before ED the ventricle was filling
(its volume rose towards the ED maximum, which the frames after ED, read backwards, mimic), and after ES it
re-expands (the frames before ES, read backwards). The area curve is continuous at both ends and has a turning
point there, as the true cycle has; only the mirror is exact in its shape, not the heart.

The 3D datasets are written padded (images and training labels alike, :func:`pad_time`): every padded frame
carries the label of the frame it copies, so a pseudo-labelled frame gives a pseudo-labelled copy and an ignored
frame an ignored copy, a manually labelled frame a copy with its manual label: no padded frame invents a label,
and none hides one. The end frames themselves are not repeated, and in a half sequence they are ED and ES, so with
``k <= T - 2`` (the demo: ``T >= 10``, ``k = 7``) the manual labels are never copied: each is supervised once, as
without padding, and every reflected frame of the 3D sparse dataset is ignored. A longer padding folds back (frame
``-(T-1)`` shows ES again, as numpy's 'reflect' does); those copies of ED and ES carry their manual labels, exact
supervision of an exact copy, only counted twice. Prediction
pads the input the same way and crops the ``k`` frames off the output (:func:`crop_time`) before anything is
written, so every prediction, and every metric computed from it, has exactly the sequence's frames.

``k`` (``nnunet.time_padding_frames``, default half the 3D patch's time extent, :func:`time_padding_frames`) is
chosen so that a patch centred on ED or ES lies inside the padded volume.
"""

from __future__ import annotations

import numpy as np

from ..config import NnUNetConfig
from .env import _section

__all__ = ["time_padding_frames", "pad_time", "crop_time", "padded_sources"]


def time_padding_frames(nn: NnUNetConfig) -> int:
    """Frames added at each end of a 3D volume: 0 for ``nnunet.time_padding: none``; with 'reflect'
    ``nnunet.time_padding_frames``, or half the time extent of ``nnunet.patch_3d`` (``patch_3d[0] // 2``: a patch
    of ``P`` frames centred on frame ``c`` spans ``c - P // 2 .. c - P // 2 + P - 1``, inside the padded volume for
    ``c = 0`` and ``c = T - 1``)."""
    if _section(nn).time_padding == "none":
        return 0
    if nn.time_padding_frames is not None:
        return int(nn.time_padding_frames)
    if nn.patch_3d is None:  # the config refuses this; kept for configs built without validation
        raise ValueError("nnunet.time_padding 'reflect' needs nnunet.patch_3d or nnunet.time_padding_frames")
    return int(nn.patch_3d[0]) // 2


def padded_sources(n_frames: int, k: int) -> np.ndarray:
    """``(n_frames + 2k,)`` int: the original frame each frame of the padded volume shows (numpy 'reflect';
    ``k`` may exceed ``n_frames - 1``, the reflection then folds back and forth)."""
    if n_frames < 2 and k > 0:
        raise ValueError(f"reflect padding needs at least 2 frames, got {n_frames}")
    if k < 0:
        raise ValueError(f"padding frames must be >= 0, got {k}")
    return np.pad(np.arange(n_frames), k, mode="reflect") if k else np.arange(n_frames)


def pad_time(volume: np.ndarray, k: int) -> np.ndarray:
    """``(T, ...)`` -> ``(T + 2k, ...)``: ``volume`` reflected about its first and last frames along axis 0
    (:func:`padded_sources`), dtype kept; ``k = 0`` returns ``volume`` unchanged."""
    volume = np.asarray(volume)
    if k == 0:
        return volume
    if volume.ndim < 1:
        raise ValueError("pad_time needs an array with a time axis")
    return volume[padded_sources(volume.shape[0], k)]


def crop_time(volume: np.ndarray, k: int, n_frames: int | None = None) -> np.ndarray:
    """``(T + 2k, ...)`` -> ``(T, ...)``: the ``k`` padded frames removed at each end of axis 0 (inverse of
    :func:`pad_time`). ``n_frames``: the expected ``T``, checked (a ValueError names both lengths)."""
    volume = np.asarray(volume)
    if k < 0:
        raise ValueError(f"padding frames must be >= 0, got {k}")
    if volume.shape[0] <= 2 * k:
        raise ValueError(f"cannot crop {k} frames off each end of a volume of {volume.shape[0]} frames")
    out = volume[k: volume.shape[0] - k] if k else volume
    if n_frames is not None and out.shape[0] != n_frames:
        raise ValueError(f"cropped volume has {out.shape[0]} frames, the sequence {n_frames} "
                         f"(padded volume {volume.shape[0]}, {k} frames padded at each end)")
    return out
