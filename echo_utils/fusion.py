"""Pseudo-labels by propagation and Eq. 1 fusion: the stable import path of the book's first chapters.

The code lives by concept in :mod:`echo_utils.pseudolabels` (propagation, fusion, the NIfTI store), the batched
registration in :mod:`echo_utils.registration.inference`, the choice of evaluation sequences in
:mod:`echo_utils.data.study` and the Fig. 2 scoring in :mod:`echo_utils.report.fig2`; this module re-exports their
public names.
"""

from .data.study import evaluation_sequences
from .pseudolabels import (
    KINDS,
    PseudoLabelCacheMismatch,
    PseudoLabels,
    fuse_bidirectional,
    fuse_directions,
    fused_signed_distance,
    fusion_weights,
    generate_pseudo_labels,
    load_pseudo_labels,
    propagate,
    pseudo_label_path,
    pseudo_labels,
    registration_fingerprint,
    save_pseudo_labels,
    signed_distance,
)
from .registration.inference import MemoizedRegistration, register_pairs
from .report.fig2 import compare_directions, per_video, score_pseudo_labels

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
    "fuse_directions",
    "pseudo_labels",
    "pseudo_label_path",
    "save_pseudo_labels",
    "load_pseudo_labels",
    "registration_fingerprint",
    "generate_pseudo_labels",
    "evaluation_sequences",
    "score_pseudo_labels",
    "per_video",
    "compare_directions",
]
