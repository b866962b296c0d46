"""The echocardiographic sequence every reader returns (CAMUS, TED, the synthetic cohort), and its resampling.

:class:`EchoSequence` holds one view of one patient in memory: images float32 ``(T, H, W)`` in [0, 1] with the apex
at row 0, spacing ``(sy, sx)`` in mm per pixel, 0-based ED/ES indices, the sparse manual labels and, where it
exists, a dense reference with its kind.  :func:`resize_sequence` resamples one to another grid, spacing scaled so
that physical distances are kept.  The readers are in :mod:`echo_utils.data.camus`, which re-exports both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["DenseKind", "EchoSequence", "resize_sequence"]

DenseKind = Literal["exact", "manual", "interpolated"]


@dataclass
class EchoSequence:
    """One echocardiographic sequence of one view of one patient.

    Attributes
    ----------
    patient : e.g. ``"patient0001"``.
    view : ``"2CH"`` or ``"4CH"``.
    images : float32 ``(T, H, W)`` in [0, 1], apex at the top.
    spacing : ``(sy, sx)`` in mm per pixel.
    ed, es : 0-based frame indices of end-diastole and end-systole.
    labels : the sparse manual labels, ``{frame index: (H, W) uint8}`` (ED and ES).
    dense : uint8 ``(T, H, W)`` reference for every frame, or ``None``.
    dense_kind : ``"exact"`` (synthetic), ``"manual"`` (TED) or ``"interpolated"`` (CAMUS half_sequence_gt).
    info : the ``Info_*.cfg`` values, as read.
    """

    patient: str
    view: str
    images: np.ndarray
    spacing: tuple[float, float]
    ed: int
    es: int
    labels: dict[int, np.ndarray] = field(default_factory=dict)
    dense: np.ndarray | None = None
    dense_kind: DenseKind | None = None
    info: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def key(self) -> str:
        """``patientXXXX_2CH``: the stem used by every file the study writes for this sequence."""
        return f"{self.patient}_{self.view}"


def resize_sequence(seq: EchoSequence, size: int | tuple[int, int] = (512, 512)) -> EchoSequence:
    """Resample to ``size`` = (H, W): cubic B-spline for images (clipped to [0, 1]), nearest for labels.

    The pixel spacing is scaled by the same factor (``sy' = sy * H / H'``), so physical distances are preserved.
    """
    from scipy import ndimage

    if isinstance(size, int):
        size = (size, size)
    H, W = seq.shape
    fy, fx = size[0] / H, size[1] / W
    if (H, W) == tuple(size):
        return seq

    def zoom(a: np.ndarray, order: int) -> np.ndarray:
        factors = (1.0,) * (a.ndim - 2) + (fy, fx)
        out = ndimage.zoom(a, factors, order=order, mode="nearest", grid_mode=True, prefilter=order > 1)
        return out

    images = np.clip(zoom(seq.images, 3), 0.0, 1.0).astype(np.float32)
    labels = {k: zoom(v, 0).astype(np.uint8) for k, v in seq.labels.items()}
    dense = None if seq.dense is None else zoom(seq.dense, 0).astype(np.uint8)
    spacing = (seq.spacing[0] / fy, seq.spacing[1] / fx)
    return EchoSequence(patient=seq.patient, view=seq.view, images=images, spacing=spacing, ed=seq.ed, es=seq.es,
                        labels=labels, dense=dense, dense_kind=seq.dense_kind, info=dict(seq.info))
