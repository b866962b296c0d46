"""Pseudo-labels by propagation and Eq. 1 fusion: the stable import path of DESIGN.md's public API.

Only the contract names live here (``propagate``, ``fuse_bidirectional``, ``pseudo_labels`` and the
``PseudoLabels`` they return). The code lives by concept in :mod:`echo_utils.pseudolabels` (propagation, fusion
weights, the NIfTI store), the batched registration in :mod:`echo_utils.registration.inference` and the Fig. 2
scoring in :mod:`echo_utils.report.fig2`: import any other name from there. Nothing inside ``echo_utils`` imports
this module.
"""

from .pseudolabels import PseudoLabels, fuse_bidirectional, propagate, pseudo_labels

__all__ = ["propagate", "fuse_bidirectional", "pseudo_labels", "PseudoLabels"]
