"""Loading an nnU-Net checkpoint without running code from the file: the one loader of the trainer (a resumed
training) and of prediction, below both of them."""

from __future__ import annotations

from pathlib import Path

__all__ = ["load_checkpoint"]


def load_checkpoint(path: Path) -> dict:
    """An nnU-Net checkpoint, loaded without running code from the file (:func:`echo_utils.safe_load.load_torch`:
    ``torch.load(weights_only=True)`` and a narrow NumPy allowlist).

    nnU-Net writes tensors, plain containers and a few NumPy scalars (its logged curves); a checkpoint that carries
    any other pickled object (code to run on load) is refused with :class:`~echo_utils.safe_load.UnsafeFile` (a
    ``pickle.UnpicklingError``), a truncated one is a :class:`~echo_utils.safe_load.DamagedFile`. nnU-Net's own
    loader uses ``weights_only=False``; ``EchoTrainer.load_checkpoint`` (a resumed training) uses this one.
    """
    from ..safe_load import load_torch, rerun_hint

    return load_torch(path, map_location="cpu", rebuild=lambda: rerun_hint(path, "04", delete=True))
