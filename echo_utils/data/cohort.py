"""The cohort's data, in plain arguments: data set roots, the train/val/test split, the sequences of given keys and
the TED selections.  Every function takes folders, split dicts or the profile's ``data`` section at most; which
cohort a *study* reads (its profile and run directory, resolved once) is :mod:`echo_utils.study.cohort`.

* :func:`cohort_root`, :func:`cohort_split`, :func:`cohort_views`, :func:`split_keys`: the data set root of a
  ``data`` section (the synthetic phantom, generated if missing, or CAMUS / TED on disk), its split (official
  files, or seeded and kept in ``split.json``: :func:`split_record`) and the ``(patient, view)`` keys of a split;
  :func:`read_sequences` reads given keys from their folders.
* :func:`ted_exclusions`: the patients the registration never trains on.  The paper (Section 3,
  "Pseudo-label generation") trained its DIR network "on the CAMUS training set after leaving out the overlapping
  94 TED echocardiograms" and evaluated the pseudo-labels on those 94.
* :func:`ted_pairs`, :func:`paired_sequences`: the sequences Fig. 2 scores on real data, the authors' protocol: for
  each TED patient, the **CAMUS** 4CH half-sequence of the same patient with its **CAMUS** manual ED/ES labels as
  seeds, and the TED manual labels as the dense reference over ED...ES (:func:`pair_ted_with_camus`).
* :func:`check_unseen`: the train/evaluation disjointness check, on CAMUS patient ids.
* what notebooks 01 and 03 show of the cohort (the TED pairing, the frame matching, the one-pass overview) is in
  :mod:`echo_utils.report.cohort`.

Readers are in :mod:`echo_utils.data.camus`; the generator in :mod:`echo_utils.data.phantom` (its cohort writer in
:mod:`echo_utils.data.phantom_cohort`); the seeded patient split in :mod:`echo_utils.data.split`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from ..artifacts.files import SPLIT_FILE
from ..artifacts.record import KeyedRecord, RecordMismatch
from .camus import (
    EchoDataError,
    EchoSequence,
    list_patients,
    load_sequence,
    load_ted_sequence,
    read_split,
    read_ted_map,
    resize_sequence,
)
from .split import split_patients

__all__ = [
    "SPLIT_ALIASES",
    "data_folder",
    "cohort_root",
    "cohort_views",
    "split_keys",
    "split_record",
    "SplitMismatch",
    "split_patients",
    "cohort_split",
    "read_sequences",
    "uses_ted",
    "ted_map",
    "ted_root",
    "ted_pairs",
    "ted_exclusions",
    "pair_ted_with_camus",
    "paired_sequences",
    "check_unseen",
]

#: the split names a caller may use -> the split
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "validation": "val", "test": "test",
                  "testing": "test", "all": "all"}


# ----------------------------------------------------------------------------------------------------------------
# Cohort and split
# ----------------------------------------------------------------------------------------------------------------


def data_folder(path: str, key: str) -> Path:
    """The folder ``path`` of the ``data.<key>`` setting, ``~`` and ``${VAR}`` expanded; an unset variable or a
    missing folder is an :class:`EchoDataError` naming the key."""
    expanded = os.path.expanduser(os.path.expandvars(path))
    if "$" in expanded:
        raise EchoDataError(f"data.{key} = {path!r}: environment variable not set ({expanded!r}); "
                            "export it (e.g. CAMUS_ROOT=/path/to/camus) or give a path")
    p = Path(expanded)
    if not p.is_dir():
        raise EchoDataError(f"data.{key} = {path!r} -> {p}: folder not found")
    return p


def cohort_root(data, data_dir: str | Path, *, generate: bool = True) -> Path:
    """The data set root of the ``data`` section (:class:`~echo_utils.config.DataConfig`): the synthetic cohort
    (under ``data.root``, else ``data_dir``, the run's ``paths.data``; generated there if missing unless
    ``generate=False``) or the real data set's folder (``data.root`` for CAMUS, ``data.ted_root`` or ``data.root``
    for TED)."""
    d = data
    if d.source == "synthetic":
        from .phantom_cohort import make_cohort

        root = Path(os.path.expandvars(d.root)) if d.root else Path(data_dir)
        if generate:
            make_cohort(root, d.n_patients, size=d.size, frames=tuple(d.frames), seed=d.seed,
                        full_cycle=d.full_cycle, test_fraction=d.test_fraction, val_fraction=d.val_fraction)
        return root
    if d.source == "camus":
        if not d.root:
            raise EchoDataError("data.source is 'camus' but data.root is not set (e.g. root: ${CAMUS_ROOT})")
        return data_folder(d.root, "root")
    if not (d.ted_root or d.root):
        raise EchoDataError("data.source is 'ted' but neither data.ted_root nor data.root is set")
    return data_folder(d.ted_root or d.root, "ted_root" if d.ted_root else "root")


def cohort_views(data) -> tuple[str, ...]:
    """The views read per patient: ``data.views``, or ``('4CH',)`` for TED (one full-cycle 4CH sequence)."""
    return ("4CH",) if data.source == "ted" else tuple(data.views)


def split_keys(split: Mapping[str, Iterable[str]], views: Iterable[str], name: str = "all") -> list[tuple[str, str]]:
    """``[(patient, view), ...]`` of the split ``name`` (``'train'``, ``'val'``, ``'test'``, ``'all'``, or
    ``'training'``, ``'validation'``, ``'testing'``) of ``split`` (``{'train', 'val', 'test'}`` -> patient ids), in
    the study's order: patient id, then ``views``."""
    key = SPLIT_ALIASES.get(name)
    if key is None:
        raise EchoDataError(f"unknown split {name!r}: expected train, val, test or all")
    pats = sorted(set().union(*map(set, split.values()))) if key == "all" else list(split[key])
    return [(p, v) for p in pats for v in views]


def _limit_split(split: dict[str, list[str]], n: int) -> dict[str, list[str]]:
    """Keep ``n`` patients in all: the first of each split (sorted), in proportion to the split sizes, at least one
    per non-empty split."""
    total = sum(len(v) for v in split.values())
    counts = {k: (1 if v else 0) for k, v in split.items()}
    while sum(counts.values()) < n:
        k = max((k for k in split if counts[k] < len(split[k])),
                key=lambda k: len(split[k]) * n / total - counts[k])
        counts[k] += 1
    return {k: sorted(v)[: counts[k]] for k, v in split.items()}


class SplitMismatch(EchoDataError, RecordMismatch):
    """``split.json`` was written for another data set root, seed or fractions: names them, both values and the file."""


def split_record(data_dir: str | Path) -> KeyedRecord:
    """``data_dir/split.json`` (the run's ``paths.data``): the seeded split (``"split"``) of a data set without
    split files and the settings it was made for (``"params"``: root, seed, fractions; a difference is a
    :class:`SplitMismatch`), written as ``json.dumps(indent=1)``."""
    from ..safe_load import rerun_hint

    path = Path(data_dir) / SPLIT_FILE
    return KeyedRecord(path, what="the seeded split", field="params", error=SplitMismatch,
                       advice="Delete it or use another run directory.",
                       rebuild=lambda: rerun_hint(path, "01", delete=True), indent=1, sort_keys=False)


def cohort_split(data, root: str | Path, data_dir: str | Path, *, write: bool = True) -> dict[str, list[str]]:
    """Patient ids per split, ``{'train', 'val', 'test'}`` (sorted), of the data set at ``root``
    (:func:`cohort_root`) with the ``data`` section's settings, without loading any image.

    Official split files when the data set has them (the synthetic cohort writes CAMUS-style ones); otherwise a
    split seeded by ``data.seed`` with ``data.test_fraction`` / ``data.val_fraction``, written to
    ``data_dir/split.json`` (:func:`split_record`) and reused.  ``data.max_patients`` keeps the first patients of
    each split in proportion (at least one per non-empty split). ``write=False`` computes a new split without
    writing it (``--check``).
    """
    d = data
    root = Path(root)
    official = read_split(root)
    if official is not None and official["test"] and not official["val"] and d.val_fraction > 0:
        # legacy CAMUS: carve a seeded validation set out of the training patients
        rng = np.random.default_rng([d.seed, 4321])
        train = official["train"]
        n_val = max(1, int(round(len(train) * d.val_fraction))) if len(train) > 1 else 0
        pick = set(train[i] for i in rng.permutation(len(train))[:n_val])
        official = {"train": sorted(set(train) - pick), "val": sorted(pick), "test": official["test"]}
    if official is None:
        record = split_record(data_dir)
        params = {"root": str(root), "seed": d.seed, "test_fraction": d.test_fraction,
                  "val_fraction": d.val_fraction}
        stored = record.check(params)
        if stored is not None:
            official = stored["split"]
        else:
            pats = list(list_patients(root))
            s = split_patients(pats, d.seed, d.test_fraction, d.val_fraction)
            official = {"train": s["training"], "val": s["validation"], "test": s["testing"]}
            if write:
                record.write({"params": params, "split": official})
    if d.max_patients is not None and d.source != "synthetic":
        total = sum(len(v) for v in official.values())
        if d.max_patients < total:
            official = _limit_split(official, d.max_patients)
    return {k: sorted(official[k]) for k in ("train", "val", "test")}


def read_sequences(
    patients: Mapping[str, str | Path],
    keys: Iterable[tuple[str, str]],
    *,
    root: str | Path,
    ted: bool = False,
    resize: int | None = None,
    listed_in: str,
) -> Iterator[EchoSequence]:
    """The sequences ``keys`` (``(patient, view)`` pairs), read from their folders and resized to ``resize`` x
    ``resize`` px (``None``: as stored), one at a time; every patient folder is checked before the first is read.

    Parameters
    ----------
    patients : ``{patient id: folder}`` of the cohort (:func:`echo_utils.data.camus.list_patients` of ``root``).
    keys : the ``(patient, view)`` pairs to read, in the order they are returned.
    root : the data set root, named in the error message.
    ted : TED folders (one full-cycle 4CH sequence per patient, :func:`load_ted_sequence`) instead of CAMUS.
    resize : the side in px of the square the sequences are resized to (``data.resize``), or ``None``.
    listed_in : where the keys came from, for the error message (e.g. ``"the split"``).
    """
    keys = list(keys)
    missing = sorted({pid for pid, _ in keys if pid not in patients})
    if missing:
        raise EchoDataError(f"{root}: patients {missing[:5]} are listed in {listed_in} but have no folder")
    for pid, view in keys:
        folder = Path(patients[pid])
        seq = load_ted_sequence(folder) if ted else load_sequence(folder, view)
        if resize:
            seq = resize_sequence(seq, (resize, resize))
        yield seq


# ----------------------------------------------------------------------------------------------------------------
# TED: the registration's exclusions and the Fig. 2 evaluation set
# ----------------------------------------------------------------------------------------------------------------


TED_MAP_NOTE = "data.ted_map, default: the authors' data/ted2camus.csv"


def uses_ted(data) -> bool:
    """Whether the profile's ``data`` section (:class:`~echo_utils.config.DataConfig`) is the paper's protocol:
    CAMUS with a TED root (the TED patients are evaluated in Fig. 2 and left out of the registration)."""
    return data.source == "camus" and bool(data.ted_root)


def ted_map(data) -> dict[str, str]:
    """TED id -> CAMUS id from the ``data`` section's ``ted_map`` (default: the authors' ``data/ted2camus.csv``,
    shipped)."""
    return read_ted_map(data.ted_map)


def ted_exclusions(data) -> list[str]:
    """CAMUS patient ids the registration must never train (or validate) on, sorted, of the ``data`` section.

    With ``data.source: camus`` and a ``data.ted_root``: every CAMUS patient of the TED -> CAMUS mapping (the
    paper's 94), whether or not it is in the current split, so that the TED evaluation in Fig. 2 is on patients
    unseen by the registration.  Both views of a patient are left out (the paper's 806 training sequences kept the
    2CH of these patients; the same heart seen in another view is not unseen).  Otherwise (synthetic cohort,
    CAMUS without TED) no patient: the evaluation sequences come from the validation/test split, which the
    registration never trains on.  The study keeps them as ``study.cohort.exclusions`` and passes them as
    ``train_registration(..., exclude_patients=...)``; they are recorded in the registration's cache key
    (``key.json``, field ``exclude``).
    """
    if not uses_ted(data):
        return []
    return sorted(ted_map(data).values())


def _nearest_phase(n_camus: int, ed: int, es: int, ted_ed: int, ted_es: int) -> np.ndarray:
    """For each CAMUS frame, the TED frame at the nearest normalised phase between ED (0) and ES (1), clipped."""
    t = np.arange(n_camus)
    phase = np.clip((t - ed) / max(es - ed, 1), 0.0, 1.0) if es != ed else np.zeros(n_camus)
    return np.rint(ted_ed + phase * (ted_es - ted_ed)).astype(int)


def pair_ted_with_camus(camus_seq: EchoSequence, ted_seq: EchoSequence) -> EchoSequence:
    """The authors' Fig. 2 sequence of one TED patient: CAMUS images and seeds, TED dense reference.

    Returns an :class:`EchoSequence` with the CAMUS patient id, the CAMUS 4CH half-sequence ``images``, spacing, ED
    and ES, the CAMUS manual ED/ES ``labels`` (the seeds the propagation starts from) and, as ``dense``
    (``dense_kind='manual'``), the TED manual labels of the frames ED...ES matched to the CAMUS frames:

    * same number of frames from ED to ES in both: frame by frame (``info['FrameMatch'] = 'exact'``);
    * otherwise each CAMUS frame takes the TED frame at the nearest normalised phase between ED and ES
      (``'phase'``; the counts are in ``info['TEDFramesEDES']`` and ``info['CAMUSFramesEDES']``);
    * TED labels of another image size are resampled (nearest neighbour) to the CAMUS grid, as the authors
      resized both to 512x512 (``info['TEDResampled']``).

    TED has no left-atrium labels, so the LA is left out of the scores (see ``fusion.score_pseudo_labels``).
    """
    from scipy import ndimage

    ted_ed, ted_es = int(ted_seq.ed), int(ted_seq.es)
    ed, es = int(camus_seq.ed), int(camus_seq.es)
    n_ted, n_cam = abs(ted_es - ted_ed) + 1, abs(es - ed) + 1
    exact = n_ted == n_cam
    idx = _nearest_phase(camus_seq.n_frames, ed, es, ted_ed, ted_es)
    dense = ted_seq.dense[idx]
    resampled = dense.shape[1:] != camus_seq.shape
    if resampled:
        (h, w), (H, W) = dense.shape[1:], camus_seq.shape
        dense = ndimage.zoom(dense, (1.0, H / h, W / w), order=0, mode="nearest", grid_mode=True)
    info = dict(camus_seq.info)
    info.update(TED=ted_seq.patient, TEDFramesEDES=n_ted, CAMUSFramesEDES=n_cam,
                FrameMatch="exact" if exact else "phase", TEDResampled=bool(resampled))
    return EchoSequence(patient=camus_seq.patient, view="4CH", images=camus_seq.images, spacing=camus_seq.spacing,
                        ed=ed, es=es, labels={k: v.copy() for k, v in camus_seq.labels.items()},
                        dense=dense.astype(np.uint8), dense_kind="manual", info=info)


def ted_pairs(data) -> tuple[list[tuple[str, str]], list[str]]:
    """``([(TED id, CAMUS id), ...] sorted by CAMUS id, [TED ids without a mapping])`` of the ``data`` section's
    ``ted_root`` and ``ted_map``."""
    ted = list_patients(data_folder(data.ted_root, "ted_root"))
    mapping = ted_map(data)
    pairs = sorted(((t, mapping[t]) for t in ted if t in mapping), key=lambda p: p[1])
    return pairs, sorted(t for t in ted if t not in mapping)


def ted_root(data) -> Path:
    """The TED root of the ``data`` section (``data.ted_root``, checked to be a folder)."""
    return data_folder(data.ted_root, "ted_root")


def paired_sequences(
    pairs: Iterable[tuple[str, str]],
    camus_patients: Mapping[str, str | Path],
    ted_patients: Mapping[str, str | Path],
    *,
    resize: int | None = None,
    root: str | Path = "the CAMUS root",
) -> list[EchoSequence]:
    """The Fig. 2 sequences of the paper's protocol: for each ``(TED id, CAMUS id)`` of ``pairs``, the CAMUS 4CH
    half-sequence of ``camus_patients[CAMUS id]`` paired with the TED sequence of ``ted_patients[TED id]``
    (:func:`pair_ted_with_camus`), resized to ``resize`` x ``resize`` px if set.

    A CAMUS id without a folder is an :class:`EchoDataError` naming ``root``; sequences whose frames had to be
    matched by phase are counted in a ``UserWarning``.
    """
    pairs = list(pairs)
    missing = [c for _, c in pairs if c not in camus_patients]
    if missing:
        raise EchoDataError(f"{root}: CAMUS patients {missing[:5]} (mapped from TED) have no folder")
    seqs = []
    for t, c in pairs:
        seq = pair_ted_with_camus(load_sequence(Path(camus_patients[c]), "4CH"),
                                  load_ted_sequence(Path(ted_patients[t])))
        seqs.append(resize_sequence(seq, (resize, resize)) if resize else seq)
    n_phase = sum(s.info["FrameMatch"] == "phase" for s in seqs)
    if n_phase:
        warnings.warn(f"{n_phase} of {len(seqs)} TED patients have another number of frames from ED to ES than "
                      "their CAMUS half-sequence: their TED labels are matched by normalised phase "
                      "(see report.cohort.frame_matching)", UserWarning, stacklevel=3)
    return seqs


def check_unseen(train_sequences: Iterable, eval_sequences: Iterable, exclude_patients: Iterable[str] = ()) -> None:
    """Raise :class:`EchoDataError` if an evaluation patient is among the registration's training patients.

    Patients are compared by id (CAMUS ids on real data: :func:`paired_sequences` names TED sequences by their
    CAMUS patient), after removing ``exclude_patients`` from the training set, exactly as ``train_registration``
    does.  Pass the sequences and exclusions the registration was trained with (the ``train`` split: validation
    patients only give validation pairs, and the synthetic cohort is evaluated on them).
    """
    trained = {s.patient for s in train_sequences} - set(exclude_patients)
    leak = sorted(trained & {s.patient for s in eval_sequences})
    if leak:
        raise EchoDataError(f"{len(leak)} evaluation patient(s) are in the registration's training data: "
                            f"{leak[:6]}; pass study.cohort.exclusions as exclude_patients")
