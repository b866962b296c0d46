"""CAMUS (2023 NIfTI and legacy MHD) and TED readers, returning :class:`EchoSequence`.

Conventions (DESIGN.md): images float32 ``(T, H, W)`` in [0, 1] with the apex at row 0; labels uint8
(0 background, 1 LV cavity, 2 LV myocardium, 3 left atrium); spacing ``(sy, sx)`` in mm per pixel;
ED/ES 0-based frame indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

LABELS = {0: "background", 1: "LV cavity", 2: "LV myocardium", 3: "left atrium"}
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
