"""The study's data: which cohort a profile reads, its train/val/test split, and the sequences each step may use.

* :func:`study_root`, :func:`study_split`, :func:`study_sequences`, :func:`load_split`, :func:`iter_split`: the
  cohort of a profile (the synthetic phantom, generated here if missing, or CAMUS / TED on disk) and its split;
  :func:`read_sequences` reads given ``(patient, view)`` pairs from their folders (plain arguments: what
  :class:`echo_utils.study.Study` calls with its resolved cohort).
* :func:`registration_exclusions`: the patients the registration never trains on.  The paper (Section 3,
  "Pseudo-label generation") trained its DIR network "on the CAMUS training set after leaving out the overlapping
  94 TED echocardiograms" and evaluated the pseudo-labels on those 94.
* :func:`evaluation_sequences`: the sequences Fig. 2 scores.  On real data this is the authors' protocol: for each
  TED patient, the **CAMUS** 4CH half-sequence of the same patient with its **CAMUS** manual ED/ES labels as
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
    "read_sequences",
    "study_root",
    "study_split",
    "split_record",
    "SplitMismatch",
    "split_patients",
    "study_sequences",
    "iter_split",
    "load_split",
    "uses_ted",
    "ted_map",
    "ted_pairs",
    "registration_exclusions",
    "pair_ted_with_camus",
    "evaluation_sequences",
    "check_unseen",
]

#: the split names a caller may use -> the split
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "validation": "val", "test": "test",
                  "testing": "test", "all": "all"}


# ----------------------------------------------------------------------------------------------------------------
# Cohort and split
# ----------------------------------------------------------------------------------------------------------------


def _expand(path: str, key: str) -> Path:
    expanded = os.path.expanduser(os.path.expandvars(path))
    if "$" in expanded:
        raise EchoDataError(f"data.{key} = {path!r}: environment variable not set ({expanded!r}); "
                            "export it (e.g. CAMUS_ROOT=/path/to/camus) or give a path")
    p = Path(expanded)
    if not p.is_dir():
        raise EchoDataError(f"data.{key} = {path!r} -> {p}: folder not found")
    return p


def study_root(cfg, paths, *, generate: bool = True) -> Path:
    """The data set root of a study: the synthetic cohort (generated if missing) or the real data set's folder."""
    d = cfg.data
    if d.source == "synthetic":
        from .phantom_cohort import make_cohort

        root = Path(os.path.expandvars(d.root)) if d.root else Path(paths.data)
        if generate:
            make_cohort(root, d.n_patients, size=d.size, frames=tuple(d.frames), seed=d.seed,
                        full_cycle=d.full_cycle, test_fraction=d.test_fraction, val_fraction=d.val_fraction)
        return root
    if d.source == "camus":
        if not d.root:
            raise EchoDataError("data.source is 'camus' but data.root is not set (e.g. root: ${CAMUS_ROOT})")
        return _expand(d.root, "root")
    if not (d.ted_root or d.root):
        raise EchoDataError("data.source is 'ted' but neither data.ted_root nor data.root is set")
    return _expand(d.ted_root or d.root, "ted_root" if d.ted_root else "root")


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


def split_record(paths) -> KeyedRecord:
    """``paths.data/split.json``: the seeded split (``"split"``) of a data set without split files and the settings
    it was made for (``"params"``: root, seed, fractions; a difference is a :class:`SplitMismatch`), written as
    ``json.dumps(indent=1)``."""
    from ..safe_load import rerun_hint

    path = Path(paths.data) / SPLIT_FILE
    return KeyedRecord(path, what="the seeded split", field="params", error=SplitMismatch,
                       advice="Delete it or use another run directory.",
                       rebuild=lambda: rerun_hint(path, "01", delete=True), indent=1, sort_keys=False)


def study_split(cfg, paths, *, write: bool = True) -> dict[str, list[str]]:
    """Patient ids per split, ``{'train', 'val', 'test'}`` (sorted), without loading any image.

    Official split files when the data set has them (the synthetic cohort writes CAMUS-style ones); otherwise a
    split seeded by ``data.seed`` with ``data.test_fraction`` / ``data.val_fraction``, written to
    ``paths.data/split.json`` and reused.  ``data.max_patients`` keeps the first patients of each split in
    proportion (at least one per non-empty split). ``write=False`` computes a new split without writing it (and
    without generating a missing synthetic cohort: ``--check``).
    """
    d = cfg.data
    root = study_root(cfg, paths, generate=write)
    official = read_split(root)
    if official is not None and official["test"] and not official["val"] and d.val_fraction > 0:
        # legacy CAMUS: carve a seeded validation set out of the training patients
        rng = np.random.default_rng([d.seed, 4321])
        train = official["train"]
        n_val = max(1, int(round(len(train) * d.val_fraction))) if len(train) > 1 else 0
        pick = set(train[i] for i in rng.permutation(len(train))[:n_val])
        official = {"train": sorted(set(train) - pick), "val": sorted(pick), "test": official["test"]}
    if official is None:
        record = split_record(paths)
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


def study_sequences(cfg, paths, split: str = "all") -> list[tuple[str, str]]:
    """``[(patient, view), ...]`` of a split in the order :func:`load_split` returns them (no image loaded)."""
    key = SPLIT_ALIASES.get(split)
    if key is None:
        raise EchoDataError(f"unknown split {split!r}: expected train, val, test or all")
    s = study_split(cfg, paths)
    pats = sorted(set().union(*s.values())) if key == "all" else s[key]
    views = ("4CH",) if cfg.data.source == "ted" else tuple(cfg.data.views)
    return [(p, v) for p in pats for v in views]


def iter_split(cfg, paths, split: str = "all") -> Iterator[EchoSequence]:
    """Like :func:`load_split`, one sequence at a time (real CAMUS at 512x512 does not fit in memory at once).

    The split and every patient folder are checked before the first sequence is read.
    """
    root = study_root(cfg, paths)
    yield from read_sequences(list_patients(root), study_sequences(cfg, paths, split), root=root,
                              ted=cfg.data.source == "ted", resize=cfg.data.resize, listed_in="the split")


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


def load_split(cfg, paths, split: str = "all") -> list[EchoSequence]:
    """The study's sequences of one split (``'train'``, ``'val'``, ``'test'`` or ``'all'``), in a deterministic
    order (patient id, then ``data.views``), resized to ``data.resize`` if set.

    The synthetic cohort is generated under ``data.root`` or ``paths.data`` if missing (cached: a cohort made
    with other parameters is refused).  ``data.root`` may reference an environment variable (``${CAMUS_ROOT}``).
    """
    from tqdm import tqdm

    n = len(study_sequences(cfg, paths, split))
    return list(tqdm(iter_split(cfg, paths, split), total=n, desc=f"load {split}", disable=n < 40))


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


def registration_exclusions(cfg, paths=None) -> list[str]:
    """CAMUS patient ids the registration must never train (or validate) on, sorted.

    With ``data.source: camus`` and a ``data.ted_root``: every CAMUS patient of the TED -> CAMUS mapping (the
    paper's 94), whether or not it is in the current split, so that the TED evaluation in Fig. 2 is on patients
    unseen by the registration.  Both views of a patient are left out (the paper's 806 training sequences kept the
    2CH of these patients; the same heart seen in another view is not unseen).  Otherwise (synthetic cohort,
    CAMUS without TED) no patient: the evaluation sequences come from the validation/test split, which the
    registration never trains on.  Pass the result as ``train_registration(..., exclude_patients=...)``; it is
    recorded in the registration's cache key (``key.json``, field ``exclude``).
    """
    if not uses_ted(cfg.data):
        return []
    return sorted(ted_map(cfg.data).values())


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
    ted = list_patients(_expand(data.ted_root, "ted_root"))
    mapping = ted_map(data)
    pairs = sorted(((t, mapping[t]) for t in ted if t in mapping), key=lambda p: p[1])
    return pairs, sorted(t for t in ted if t not in mapping)


def evaluation_sequences(cfg, paths, *, limit: int | None = None) -> list[EchoSequence]:
    """The sequences the pseudo-labels are evaluated on (Fig. 2): a dense reference, patients unseen by the
    registration.

    * synthetic cohort: the ``val`` and ``test`` splits (exact dense truth; the registration trains on ``train``);
    * CAMUS with ``data.ted_root`` (the paper): one sequence per TED patient of the TED -> CAMUS mapping, built by
      :func:`pair_ted_with_camus` (CAMUS images and manual ED/ES seeds, TED manual labels as reference); the
      patient id is the CAMUS one.  TED patients without a mapping (the 4 in the CAMUS test set) are skipped with a
      ``UserWarning`` that counts them, as are patients whose frames had to be matched by phase;
    * CAMUS without TED: the ``val`` split with the ``half_sequence_gt`` files, which are *interpolated*, not
      manual (a ``UserWarning`` says so);
    * TED alone (``data.source: ted``): the ``val`` and ``test`` TED sequences, seeded by their own ED/ES labels
      (a ``UserWarning`` says that ED and ES then copy their reference).

    Sequences are resized to ``data.resize`` if set.  ``limit`` (default ``cfg.pseudo_labels.max_sequences``) keeps
    the first N sequences.
    """
    limit = cfg.pseudo_labels.max_sequences if limit is None else limit
    d = cfg.data
    if d.source == "synthetic":
        seqs = load_split(cfg, paths, "val") + load_split(cfg, paths, "test")
    elif uses_ted(d):
        pairs, unmapped = ted_pairs(d)
        if unmapped:
            warnings.warn(f"{len(unmapped)} TED patient(s) have no CAMUS id in the TED -> CAMUS mapping and are not "
                          f"evaluated: {unmapped[:6]}", UserWarning, stacklevel=2)
        if not pairs:
            raise EchoDataError(f"{d.ted_root}: no TED patient maps to a CAMUS patient ({TED_MAP_NOTE})")
        pairs = pairs[:limit] if limit else pairs
        camus_dirs = list_patients(study_root(cfg, paths))
        missing = [c for _, c in pairs if c not in camus_dirs]
        if missing:
            raise EchoDataError(f"{d.root}: CAMUS patients {missing[:5]} (mapped from TED) have no folder")
        ted_dirs = list_patients(_expand(d.ted_root, "ted_root"))
        seqs = []
        for t, c in pairs:
            seq = pair_ted_with_camus(load_sequence(camus_dirs[c], "4CH"), load_ted_sequence(ted_dirs[t]))
            seqs.append(resize_sequence(seq, (d.resize, d.resize)) if d.resize else seq)
        n_phase = sum(s.info["FrameMatch"] == "phase" for s in seqs)
        if n_phase:
            warnings.warn(f"{n_phase} of {len(seqs)} TED patients have another number of frames from ED to ES than "
                          "their CAMUS half-sequence: their TED labels are matched by normalised phase "
                          "(see report.cohort.frame_matching)", UserWarning, stacklevel=2)
    elif d.source == "ted":
        seqs = load_split(cfg, paths, "val") + load_split(cfg, paths, "test")
        warnings.warn("data.source is 'ted': the seeds are TED's own ED/ES labels, so ED and ES score as copies of "
                      "their reference (the paper seeds from CAMUS: data.source 'camus' with data.ted_root)",
                      UserWarning, stacklevel=2)
    else:
        seqs = load_split(cfg, paths, "val")
        warnings.warn("no TED root: evaluating pseudo-labels against CAMUS half_sequence_gt, which is interpolated "
                      "between ED and ES, not manual", UserWarning, stacklevel=2)
    seqs = [s for s in seqs if s.dense is not None]
    if not seqs:
        raise EchoDataError("no sequence with a dense reference to evaluate the pseudo-labels on")
    return seqs[:limit] if limit else seqs


def check_unseen(train_sequences: Iterable, eval_sequences: Iterable, exclude_patients: Iterable[str] = ()) -> None:
    """Raise :class:`EchoDataError` if an evaluation patient is among the registration's training patients.

    Patients are compared by id (CAMUS ids on real data: :func:`evaluation_sequences` names TED sequences by their
    CAMUS patient), after removing ``exclude_patients`` from the training set, exactly as ``train_registration``
    does.  Pass the sequences and exclusions the registration was trained with (the ``train`` split: validation
    patients only give validation pairs, and the synthetic cohort is evaluated on them).
    """
    trained = {s.patient for s in train_sequences} - set(exclude_patients)
    leak = sorted(trained & {s.patient for s in eval_sequences})
    if leak:
        raise EchoDataError(f"{len(leak)} evaluation patient(s) are in the registration's training data: "
                            f"{leak[:6]}; pass study.registration_exclusions(cfg, paths) as exclude_patients")
