"""Writing a pseudo-label store's ``(T, H, W)`` volumes (labels and confidence maps) as CAMUS does, atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifacts.atomic import atomic_path

__all__ = ["save_nifti"]


def save_nifti(path: Path, array: np.ndarray, spacing: tuple[float, float], *, dtype=np.uint8,
                description: str | None = None) -> None:
    """Write ``(T,H,W)`` like CAMUS (nibabel axes (W, H, T), pixel spacing (sx, sy, 1) in the header), atomically:
    uint8 labels by default; the confidence maps are float32 with a ``description`` (the header's ``descrip``)."""
    import nibabel as nib

    sy, sx = (float(s) for s in spacing)
    data = np.ascontiguousarray(np.transpose(array.astype(dtype), (2, 1, 0)))
    img = nib.Nifti1Image(data, affine=np.diag([sx, sy, 1.0, 1.0]))
    img.header.set_data_dtype(dtype)
    img.header.set_zooms((sx, sy, 1.0))
    if description is not None:
        img.header["descrip"] = description.encode()
    with atomic_path(path) as tmp:  # the temporary name keeps ".nii.gz": nibabel writes it gzip-compressed
        nib.save(img, tmp)
