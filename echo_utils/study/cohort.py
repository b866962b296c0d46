"""The study's cohort: the profile's ``data`` section and the run directory resolved once into a :class:`Cohort`
(data set root, split, patient folders, the registration's excluded patients, the TED pairing), and the
sequences a study evaluates its pseudo-labels on.

This is the edge where the profile is read: :func:`resolve_cohort` hands the plain functions of
:mod:`echo_utils.data.cohort` the ``data`` section and the run's ``paths.data`` folder, and everything downstream
reads ``study.cohort`` instead of working the cohort out again.

* :func:`resolve_cohort`: profile + run paths -> :class:`Cohort` (generates a missing synthetic cohort, reads or
  seeds the split: ``split.json`` as before, same bytes and keys);
* :func:`evaluation_sequences`: the sequences Fig. 2 scores, from a :class:`~echo_utils.study.core.Study`;
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from ..config import StudyConfig
from ..data import cohort as cohort_data
from ..data.camus import EchoDataError, EchoSequence, list_patients
from ..rundir import RunPaths

__all__ = ["Cohort", "resolve_cohort", "evaluation_sequences"]

_SPLITS = ("train", "val", "test")
TED_MAP_NOTE = "data.ted_map, default: the authors' data/ted2camus.csv"


@dataclass(frozen=True)
class Cohort:
    """The resolved cohort of a study: which sequences exist and where they are, without any image read.

    Attributes
    ----------
    root : the data set root (the synthetic cohort, generated there on resolution, or CAMUS / TED on disk).
    split : ``{'train', 'val', 'test'}`` -> sorted patient ids (:func:`echo_utils.data.cohort.cohort_split`).
    views : the views read per patient (``data.views``; ``('4CH',)`` for TED).
    patients : ``{patient id: folder}`` of every patient folder of ``root``.
    ted : the folders are TED's (one full-cycle 4CH sequence per patient).
    resize : the square side in px the sequences are resized to (``data.resize``), or ``None``.
    exclusions : CAMUS patient ids the registration never trains on (the paper's 94 TED patients, else none).
    ted_pairs : ``[(TED id, CAMUS id), ...]`` of the paper's Fig. 2 protocol, sorted by CAMUS id (empty without
        ``data.ted_root``).
    ted_unmapped : TED ids without a CAMUS id in the mapping (not evaluated).
    ted_patients : ``{TED id: folder}`` of every patient folder of ``data.ted_root`` (empty without it).
    """

    root: str
    split: dict[str, tuple[str, ...]]
    views: tuple[str, ...]
    patients: dict[str, str]
    ted: bool = False
    resize: int | None = None
    exclusions: tuple[str, ...] = ()
    ted_pairs: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    ted_unmapped: tuple[str, ...] = ()
    ted_patients: dict[str, str] = field(default_factory=dict)

    def keys(self, split: str = "all") -> list[tuple[str, str]]:
        """``[(patient, view), ...]`` of ``split`` (``'train'``, ``'val'``, ``'test'`` or ``'all'``; ``'training'``,
        ``'validation'``, ``'testing'`` too), in the study's order: patient id, then view
        (:func:`echo_utils.data.cohort.split_keys`)."""
        return cohort_data.split_keys(self.split, self.views, split)

    def split_of(self, patient: str) -> str | None:
        """The split (``'train'``, ``'val'``, ``'test'``) holding ``patient``, or ``None``."""
        return next((k for k, pats in self.split.items() if patient in pats), None)

    def to_dict(self) -> dict:
        return {"root": self.root, "split": {k: list(v) for k, v in self.split.items()}, "views": list(self.views),
                "patients": dict(self.patients), "ted": self.ted, "resize": self.resize,
                "exclusions": list(self.exclusions), "ted_pairs": [list(p) for p in self.ted_pairs],
                "ted_unmapped": list(self.ted_unmapped), "ted_patients": dict(self.ted_patients)}

    @classmethod
    def from_dict(cls, d: dict) -> "Cohort":
        """The cohort of :meth:`to_dict` (one written before ``ted_unmapped`` / ``ted_patients`` existed reads with
        them empty)."""
        return cls(root=d["root"], split={k: tuple(v) for k, v in d["split"].items()}, views=tuple(d["views"]),
                   patients=dict(d["patients"]), ted=bool(d["ted"]), resize=d["resize"],
                   exclusions=tuple(d["exclusions"]), ted_pairs=tuple(tuple(p) for p in d["ted_pairs"]),
                   ted_unmapped=tuple(d.get("ted_unmapped", ())), ted_patients=dict(d.get("ted_patients", {})))


def resolve_cohort(cfg: StudyConfig, paths: RunPaths) -> Cohort:
    """Work the cohort out from the profile once: generate a missing synthetic cohort, read (or seed and write)
    the split, list the patient folders, the registration's exclusions and the TED pairs.

    The profile's ``data`` section and the run's ``paths.data`` folder go to :mod:`echo_utils.data.cohort`
    (:func:`~echo_utils.data.cohort.cohort_root`, :func:`~echo_utils.data.cohort.cohort_split`).
    """
    d = cfg.data
    root = cohort_data.cohort_root(d, paths.data)
    split = cohort_data.cohort_split(d, root, paths.data)
    pairs: tuple = ()
    unmapped: tuple = ()
    ted_patients: dict = {}
    if cohort_data.uses_ted(d):
        found, missing = cohort_data.ted_pairs(d)
        pairs, unmapped = tuple(tuple(p) for p in found), tuple(missing)
        ted_patients = {p: str(f) for p, f in list_patients(cohort_data.ted_root(d)).items()}
    return Cohort(root=str(root), split={k: tuple(split[k]) for k in _SPLITS}, views=cohort_data.cohort_views(d),
                  patients={p: str(f) for p, f in list_patients(root).items()}, ted=d.source == "ted",
                  resize=d.resize, exclusions=tuple(cohort_data.ted_exclusions(d)), ted_pairs=pairs,
                  ted_unmapped=unmapped, ted_patients=ted_patients)


def evaluation_sequences(study, *, limit: int | None = None) -> list[EchoSequence]:
    """The sequences the pseudo-labels of ``study`` (:class:`~echo_utils.study.core.Study`) are evaluated on
    (Fig. 2): a dense reference, patients unseen by the registration.

    * synthetic cohort: the ``val`` and ``test`` splits (exact dense truth; the registration trains on ``train``);
    * CAMUS with ``data.ted_root`` (the paper): one sequence per TED patient of the TED -> CAMUS mapping, built by
      :func:`~echo_utils.data.cohort.paired_sequences` (CAMUS images and manual ED/ES seeds, TED manual labels as
      reference); the patient id is the CAMUS one.  TED patients without a mapping (the 4 in the CAMUS test set)
      are skipped with a ``UserWarning`` that counts them, as are patients whose frames had to be matched by phase;
    * CAMUS without TED: the ``val`` split with the ``half_sequence_gt`` files, which are *interpolated*, not
      manual (a ``UserWarning`` says so);
    * TED alone (``data.source: ted``): the ``val`` and ``test`` TED sequences, seeded by their own ED/ES labels
      (a ``UserWarning`` says that ED and ES then copy their reference).

    Sequences are resized to ``data.resize`` if set.  ``limit`` (default ``pseudo_labels.max_sequences``) keeps
    the first N sequences.
    """
    cfg, c = study.cfg, study.cohort
    limit = cfg.pseudo_labels.max_sequences if limit is None else limit
    d = cfg.data
    if d.source == "synthetic":
        seqs = study.sequences("val") + study.sequences("test")
    elif cohort_data.uses_ted(d):
        if c.ted_unmapped:
            warnings.warn(f"{len(c.ted_unmapped)} TED patient(s) have no CAMUS id in the TED -> CAMUS mapping and "
                          f"are not evaluated: {list(c.ted_unmapped[:6])}", UserWarning, stacklevel=2)
        if not c.ted_pairs:
            raise EchoDataError(f"{d.ted_root}: no TED patient maps to a CAMUS patient ({TED_MAP_NOTE})")
        pairs = c.ted_pairs[:limit] if limit else c.ted_pairs
        seqs = cohort_data.paired_sequences(pairs, c.patients, c.ted_patients, resize=c.resize, root=d.root)
    elif d.source == "ted":
        seqs = study.sequences("val") + study.sequences("test")
        warnings.warn("data.source is 'ted': the seeds are TED's own ED/ES labels, so ED and ES score as copies of "
                      "their reference (the paper seeds from CAMUS: data.source 'camus' with data.ted_root)",
                      UserWarning, stacklevel=2)
    else:
        seqs = study.sequences("val")
        warnings.warn("no TED root: evaluating pseudo-labels against CAMUS half_sequence_gt, which is interpolated "
                      "between ED and ES, not manual", UserWarning, stacklevel=2)
    seqs = [s for s in seqs if s.dense is not None]
    if not seqs:
        raise EchoDataError("no sequence with a dense reference to evaluate the pseudo-labels on")
    return seqs[:limit] if limit else seqs
