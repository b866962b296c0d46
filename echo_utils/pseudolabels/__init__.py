"""Pseudo-labels: the sparse ED/ES labels propagated through a sequence and fused with Eq. 1 (the paper's method).

* :mod:`.propagate` -- forward and backward label propagation with a registration, and :func:`pseudo_labels`
  (the three kinds of one sequence);
* :mod:`.fuse` -- Eq. 1: the cos²/sin² weights, exact signed distances, assembly of one label map;
* :mod:`.store` -- CAMUS-named NIfTI files per sequence, keyed by the registration's fingerprint;
* :mod:`.confidence` -- a per-pixel confidence of the fused labels from the two directions' disagreement, stored
  beside them, and its scores against an exact truth (AUROC for the errors, reliability table).
"""

from .fuse import fuse_bidirectional, fuse_directions, fused_signed_distance, fusion_weights, signed_distance
from .propagate import KINDS, PseudoLabels, propagate, pseudo_labels
from .store import (
    PseudoLabelCacheMismatch,
    PseudoLabelSet,
    generate_pseudo_labels,
    load_pseudo_labels,
    pseudo_label_path,
    registration_fingerprint,
    save_pseudo_labels,
)

__all__ = [
    "KINDS",
    "PseudoLabels",
    "propagate",
    "pseudo_labels",
    "fusion_weights",
    "signed_distance",
    "fused_signed_distance",
    "fuse_bidirectional",
    "fuse_directions",
    "PseudoLabelCacheMismatch",
    "PseudoLabelSet",
    "pseudo_label_path",
    "save_pseudo_labels",
    "load_pseudo_labels",
    "registration_fingerprint",
    "generate_pseudo_labels",
]
