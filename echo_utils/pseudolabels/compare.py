"""Comparison runs of the pseudo-label chapter: registrations, propagation modes and assembly rules side by side.

The book's pseudo-label chapter (notebook 03) compares, on the evaluation sequences, the registration the study uses
with the other one and with the identity control, the propagation modes (the authors' ``sequential``, ``composed``
and ``fixed``) and the assembly rules of Eq. 1 (the authors' ``argmax`` with and without their closing, the largest
fused signed distance, the phase as printed). This module produces those label sets, cached where they are
expensive: one folder per registration fingerprint and mode under ``pseudo_labels/comparison/``, never read by the
segmentation step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .fuse import fuse_directions
from .propagate import PseudoLabels
from .store import generate_pseudo_labels, registration_fingerprint

__all__ = ["comparison_dir", "study_pseudo_labels", "mode_pseudo_labels", "assembly_variants", "fuse_variants",
           "unclaimed_pixels"]


def comparison_dir(root: str | Path, name: str, registration, mode: str) -> Path:
    """``root/comparison/<name>_<mode>_<fingerprint>``: the cache of comparison-only pseudo-labels."""
    return Path(root) / "comparison" / f"{name}_{mode}_{registration_fingerprint(registration)}"


def study_pseudo_labels(
    registrations: Mapping[str, object],
    method: str,
    training: Sequence,
    evaluation: Sequence,
    root: str | Path,
    cfg_pl,
    *,
    progress: bool = True,
) -> dict[str, dict[str, PseudoLabels]]:
    """The pseudo-label sets of the study, ``{registration name: {sequence key: PseudoLabels}}``.

    * ``method`` (the study's registration): every ``training`` sequence, written under ``root/<method>/`` for the
      segmentation step, and every ``evaluation`` sequence not among them, in memory only;
    * the other registrations except ``'identity'``: the first ``cfg_pl.instance_sequences`` evaluation sequences
      when ``cfg_pl.compare_instance`` (a per-pair optimiser is slow), cached by :func:`comparison_dir`;
    * ``'identity'`` (the control), if given: every evaluation sequence, in memory (it costs no registration).
    """
    labels: dict[str, dict[str, PseudoLabels]] = {}
    primary = registrations[method]
    labels[method] = generate_pseudo_labels(training, primary, Path(root) / method, cfg_pl=cfg_pl,
                                            method_name=method, progress=progress)
    extra = [s for s in evaluation if s.key not in labels[method]]
    labels[method].update(generate_pseudo_labels(extra, primary, None, cfg_pl=cfg_pl, method_name=method,
                                                 progress=progress))
    for name, reg in registrations.items():
        if name in (method, "identity") or not cfg_pl.compare_instance:
            continue
        seqs = list(evaluation)[: cfg_pl.instance_sequences]
        labels[name] = generate_pseudo_labels(seqs, reg, comparison_dir(root, name, reg, cfg_pl.mode),
                                              cfg_pl=cfg_pl, method_name=name, progress=progress)
    if "identity" in registrations:
        labels["identity"] = generate_pseudo_labels(evaluation, registrations["identity"], None, cfg_pl=cfg_pl,
                                                    method_name="identity", progress=False)
    return labels


def mode_pseudo_labels(
    registrations: Mapping[str, object],
    sequences: Mapping[str, Sequence],
    modes: Mapping[str, Sequence[str]],
    root: str | Path,
    cfg_pl,
) -> dict[tuple[str, str], dict[str, PseudoLabels]]:
    """Pseudo-labels of each registration (on its ``sequences[name]``) in each of its ``modes[name]``:
    ``{(name, mode): {key: PseudoLabels}}``, cached by :func:`comparison_dir` (the identity is not cached)."""
    out = {}
    for name, name_modes in modes.items():
        if name not in registrations or name not in sequences:
            continue
        reg = registrations[name]
        for mode in name_modes:
            cfg_mode = cfg_pl.model_copy(update={"mode": mode})
            where = None if name == "identity" else comparison_dir(root, name, reg, mode)
            out[(name, mode)] = generate_pseudo_labels(sequences[name], reg, where, cfg_pl=cfg_mode,
                                                       method_name=name, progress=False)
    return out


def assembly_variants(width: int, weights: str = "authors") -> dict[str, dict]:
    """The assembly rules compared in the book: ``sdf`` (largest fused signed distance), the authors' ``argmax``,
    ``argmax`` followed by the authors' closing (their 5 x 5 kernel at 512 px scaled to ``width`` px, odd, >= 3), and
    ``sdf`` with the phase as printed in Eq. 1. Values are keyword arguments of :func:`fuse_directions`."""
    k = max(3, int(round(5 * width / 512)) | 1)
    return {
        "sdf": dict(assemble="sdf", weights=weights),
        "argmax": dict(assemble="argmax", weights=weights),
        f"argmax + {k}×{k} closing": dict(assemble="argmax", weights=weights, closing=k),
        "sdf, paper weights": dict(assemble="sdf", weights="paper"),
    }


def fuse_variants(sequences: Sequence, labels: Mapping[str, PseudoLabels], variants: Mapping[str, dict]):
    """``{key: {variant: (T, H, W) uint8}}``: the forward and backward labels of every sequence fused again under
    each variant (:func:`fuse_directions`); no registration runs."""
    return {s.key: {name: fuse_directions(s, labels[s.key], **kw) for name, kw in variants.items()}
            for s in sequences}


def unclaimed_pixels(sequences: Sequence, labels: Mapping[str, PseudoLabels], fused: Mapping[str, Mapping],
                     rules: Sequence[str] = ("argmax", "sdf")) -> dict[str, int]:
    """Per rule, the pixels between ED and ES that both directions put inside the heart (any foreground class) but
    the fused map assigns to background: the holes an assembly rule leaves."""
    out = {r: 0 for r in rules}
    for s in sequences:
        lo, hi = min(s.ed, s.es), max(s.ed, s.es) + 1
        both = (labels[s.key].forward[lo:hi] > 0) & (labels[s.key].backward[lo:hi] > 0)
        for r in rules:
            out[r] += int((both & (np.asarray(fused[s.key][r])[lo:hi] == 0)).sum())
    return out
