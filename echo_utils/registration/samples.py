"""The training samples of the DLIR network: frame pairs, their batches, and the loss's per-frame work.

A sample is an ordered intra-sequence frame pair (fixed frame ``a``, moving frame ``b``), the unsupervised
protocol of the paper (Sec. 2.2) and de Vos et al. (2019).  Batches are a pure function of the iteration number,
so a resumed training draws exactly the batches of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .losses import LossTerms, PreparedFrames, RegistrationLoss

__all__ = ["frame_pairs", "gather", "batch_indices", "check_sequences", "fingerprint", "PreparedLoss",
           "PREPARE_MAX_BYTES"]


def frame_pairs(sequences: Sequence, *, exclude_patients: Sequence[str] = (), max_gap: int | None = None) -> np.ndarray:
    """Every ordered intra-sequence frame pair ``(a, b)``, ``a != b`` (and ``|a - b| <= max_gap`` if given): rows
    ``(sequence index, fixed, moving)``."""
    excluded = set(exclude_patients)
    rows = []
    for si, seq in enumerate(sequences):
        if seq.patient in excluded:
            continue
        t = seq.n_frames
        a, b = np.meshgrid(np.arange(t), np.arange(t), indexing="ij")
        keep = a != b
        if max_gap is not None:
            keep &= np.abs(a - b) <= int(max_gap)
        rows.append(np.stack([np.full(keep.sum(), si), a[keep], b[keep]], axis=1))
    if not rows:
        return np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(rows).astype(np.int64)


def gather(sequences: Sequence, pairs: np.ndarray, device: torch.device | str) -> tuple[Tensor, Tensor]:
    """The fixed and moving frames of ``pairs`` (rows of :func:`frame_pairs`): two float32 ``(N, 1, H, W)``."""
    fixed = np.stack([sequences[s].images[a] for s, a, _ in pairs])[:, None]
    moving = np.stack([sequences[s].images[b] for s, _, b in pairs])[:, None]
    return (
        torch.from_numpy(np.ascontiguousarray(fixed, dtype=np.float32)).to(device),
        torch.from_numpy(np.ascontiguousarray(moving, dtype=np.float32)).to(device),
    )


#: frames prepared once for the loss (:class:`PreparedLoss`) only while they take at most this many bytes
PREPARE_MAX_BYTES = 2 * 1024**3


class PreparedLoss:
    """The loss's per-frame work (:meth:`RegistrationLoss.prepare`: smoothing, sector mask) done once per frame.

    For every frame of ``sequences`` the smoothed frame and its sector mask are computed before training, when they
    fit in ``max_bytes`` (the demo's 1,000 frames at 128 px: ~80 MB); otherwise (the paper's 512-px cohort) each
    batch computes them again, as :meth:`RegistrationLoss.pair_loss` does.  Either way :meth:`loss` gives the values
    of ``loss_fn.pair_loss`` on the same batch.
    """

    def __init__(self, loss_fn: RegistrationLoss, sequences: Sequence, device, max_bytes: int = PREPARE_MAX_BYTES):
        self.loss_fn = loss_fn
        n_frames = sum(int(s.n_frames) for s in sequences)
        h, w = sequences[0].images.shape[1:] if sequences else (0, 0)
        per_frame = h * w * (4 + (1 if loss_fn.mask == "sector" else 0))
        self.frames: list[PreparedFrames] | None = None
        if n_frames * per_frame <= max_bytes:
            self.frames = [
                loss_fn.prepare(torch.from_numpy(np.ascontiguousarray(s.images, dtype=np.float32))[:, None].to(device))
                for s in sequences
            ]

    def loss(self, pairs: np.ndarray, fixed: Tensor, moving: Tensor, displacement: Tensor) -> LossTerms:
        """The loss of the batch ``pairs`` (rows: sequence, fixed frame, moving frame) whose frames are ``fixed`` and
        ``moving`` ``(N, 1, H, W)``, for the ``displacement`` ``(N, 2, H, W)`` px."""
        if self.frames is None:
            return self.loss_fn.pair_loss(fixed, moving, displacement)
        fixed_s = torch.stack([self.frames[s].smoothed[a] for s, a, _ in pairs])
        moving_s = torch.stack([self.frames[s].smoothed[b] for s, _, b in pairs])
        mask = None
        if self.loss_fn.mask == "sector":
            mask = torch.stack([self.frames[s].mask[a] for s, a, _ in pairs])
        return self.loss_fn.prepared_loss(fixed_s, moving_s, mask, displacement)


def check_sequences(sequences: Sequence, what: str) -> tuple[int, int]:
    """The common ``(H, W)`` of the ``what`` ('training', 'validation') sequences; a clear error otherwise."""
    if not sequences:
        raise ValueError(f"train_registration: no {what} sequences")
    shapes = {tuple(s.images.shape[1:]) for s in sequences}
    if len(shapes) != 1:
        raise ValueError(f"train_registration: {what} sequences differ in image size {sorted(shapes)}; resize them first")
    for s in sequences:
        if s.images.ndim != 3 or s.n_frames < 2:
            raise ValueError(f"train_registration: {s.key} needs (T>=2, H, W) images, got {s.images.shape}")
    return shapes.pop()


def fingerprint(sequences: Sequence) -> list:
    """Cheap content fingerprint: key, shape and a hash of every 8th pixel of every frame."""
    out = []
    for s in sequences:
        sub = np.ascontiguousarray(np.asarray(s.images, dtype=np.float32)[:, ::8, ::8])
        out.append([s.key, list(s.images.shape), hashlib.sha1(sub.tobytes()).hexdigest()[:16]])
    return out


def batch_indices(iteration: int, n_pairs: int, batch_size: int, seed: int) -> np.ndarray:
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
