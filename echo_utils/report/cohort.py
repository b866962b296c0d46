"""What notebooks 01 and 03 show of the cohort: the TED pairing, the TED frame matching, the one-pass overview of a
cohort and the distance of its motion from the sin² law of the Eq. 1 weights.

The cohort itself (profile -> data set root, split, sequences, the TED -> CAMUS mapping) is resolved by the study
(:class:`echo_utils.study.cohort.Cohort`); this module only tabulates and summarises it for a reader, from the
resolved cohort or the sequences it is given.

* :func:`ted_pairing`: the TED patients of a resolved cohort and their CAMUS counterparts, from the ``cfg`` files
  alone;
* :func:`frame_matching`: how each TED evaluation sequence's frames were matched to its CAMUS half-sequence;
* :func:`cohort_overview` (:class:`CohortOverview`): one pass over the images (a real cohort at 512x512 does not
  fit in memory): per-patient table, examples per image quality, area curves;
* :func:`sin2_law_statement`: one sentence on :func:`~echo_utils.data.phantom_motion.sin2_law_table`;
* the tables and sentences of notebook 01 around them: :func:`phantom_statement`, :func:`split_table`,
  :func:`sequence_card`, :func:`ef_statement`, :func:`patient_table`, :func:`pairing_statement` (its figures are
  :mod:`echo_utils.report.cohort_figures`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from ..data.camus import EchoSequence, frame_number, read_cfg

__all__ = ["ted_pairing", "frame_matching", "CohortOverview", "cohort_overview", "sin2_law_statement",
           "SHOWN_ROWS", "phantom_statement", "split_table", "sequence_card", "ef_statement", "patient_table",
           "pairing_statement"]

#: rows of a per-patient table a notebook shows
SHOWN_ROWS = 10
#: patient ids a split's row names before "..."
SHOWN_PATIENTS = 6


def frame_matching(sequences: Iterable[EchoSequence]) -> pd.DataFrame:
    """One row per evaluation sequence built from TED: ``patient`` (CAMUS), ``ted``, ``camus_frames`` and
    ``ted_frames`` (ED...ES, inclusive), ``match`` ('exact' or 'phase') and ``resampled`` (TED labels resized to
    the CAMUS grid).  Empty for other sequences."""
    rows = [dict(patient=s.patient, ted=s.info["TED"], camus_frames=s.info["CAMUSFramesEDES"],
                 ted_frames=s.info["TEDFramesEDES"], match=s.info["FrameMatch"], resampled=s.info["TEDResampled"])
            for s in sequences if "TED" in s.info]
    return pd.DataFrame(rows, columns=["patient", "ted", "camus_frames", "ted_frames", "match", "resampled"])


def ted_pairing(cohort) -> pd.DataFrame:
    """The TED patients of a resolved cohort (:class:`echo_utils.study.cohort.Cohort`: ``study.cohort``) and their
    CAMUS counterparts, from the ``cfg`` files alone (no image read).

    One row per TED patient: ``ted``, ``camus`` (``None`` without a mapping), ``camus_split`` (``train``, ``val``,
    ``test`` or ``None``), ``ted_frames`` and ``camus_frames`` (ED...ES inclusive, from the ``_4CH_info.cfg`` and
    ``Info_4CH.cfg`` files), ``match`` (``'exact'``, ``'phase'`` when the counts differ, or ``'unmapped'``).  Empty
    when the cohort has no TED patients (its ``exclusions`` are then empty too).
    """
    cols = ["ted", "camus", "camus_split", "ted_frames", "camus_frames", "match"]
    ted_dirs, camus_dirs = cohort.ted_patients, cohort.patients

    def n_ed_es(path: Path) -> int:
        info = read_cfg(path)
        return abs(frame_number(info, "ES", path) - frame_number(info, "ED", path)) + 1

    rows = []
    for t, c in cohort.ted_pairs:
        nt = n_ed_es(Path(ted_dirs[t]) / f"{t}_4CH_info.cfg")
        nc = n_ed_es(Path(camus_dirs[c]) / "Info_4CH.cfg") if c in camus_dirs else None
        rows.append(dict(ted=t, camus=c, camus_split=cohort.split_of(c), ted_frames=nt, camus_frames=nc,
                         match=None if nc is None else ("exact" if nt == nc else "phase")))
    rows += [dict(ted=t, camus=None, camus_split=None, ted_frames=n_ed_es(Path(ted_dirs[t]) / f"{t}_4CH_info.cfg"),
                  camus_frames=None, match="unmapped") for t in cohort.ted_unmapped]
    return pd.DataFrame(rows, columns=cols)


@dataclass
class CohortOverview:
    """What one pass over a cohort keeps for notebook 01 (a real cohort at 512x512 does not fit in memory).

    ``table``: one row per patient (index ``patient``): ``quality``, ``frames``, ``Info EF (%)`` (requested EF for
    the phantom, reference EF for CAMUS) and, with both views, ``EDV (mL)``, ``ESV (mL)``, ``biplane EF (%)``
    from the manual ED/ES LV cavity labels (Simpson's biplane rule, 20 disks).  ``examples``: every view of the
    first patient of each image quality.  ``example``: the first sequence of the last view.  ``curves``:
    ``(key, quality, {label: area in cm^2 per frame})`` of every sequence with dense labels.
    """

    table: pd.DataFrame
    examples: dict[str, list[EchoSequence]] = field(default_factory=dict)
    example: EchoSequence | None = None
    curves: list[tuple[str, str, dict[int, np.ndarray]]] = field(default_factory=list)
    n_sequences: int = 0


def cohort_overview(sequences: Iterable[EchoSequence], views: Iterable[str]) -> CohortOverview:
    """Read ``sequences`` once (an iterator: ``study.read_sequences(study.cohort.keys())``, one sequence at a time,
    in the study's order: patient, then view) and keep what :class:`CohortOverview` describes; ``views`` are the
    views per patient (``study.cohort.views``).

    Each patient's views are held only until its volumes are measured, so memory stays at a few sequences.
    """
    views = list(views)
    out = CohortOverview(table=pd.DataFrame())
    rows, pending = [], {}
    for s in sequences:
        out.n_sequences += 1
        q = str(s.info.get("ImageQuality", "unknown"))
        if s.dense is not None:
            out.curves.append((s.key, q, {k: metrics.area_curve(s.dense, k, s.spacing) / 100.0 for k in (1, 2, 3)}))
        if q not in out.examples or out.examples[q][0].patient == s.patient:
            out.examples.setdefault(q, []).append(s)
        if out.example is None and s.view == views[-1]:
            out.example = s
        pending.setdefault(s.patient, {})[s.view] = s
        if len(pending[s.patient]) < len(views):
            continue
        pat = pending.pop(s.patient)
        first = next(iter(pat.values()))
        row = {"patient": s.patient, "quality": q, "frames": first.n_frames,
               "Info EF (%)": first.info.get("EF", first.info.get("LVef"))}
        if {"2CH", "4CH"} <= set(pat):
            a, b = pat["2CH"], pat["4CH"]
            edv = metrics.lv_volume_biplane(a.labels[a.ed] == 1, b.labels[b.ed] == 1, a.spacing, b.spacing)
            esv = metrics.lv_volume_biplane(a.labels[a.es] == 1, b.labels[b.es] == 1, a.spacing, b.spacing)
            row.update({"EDV (mL)": edv, "ESV (mL)": esv, "biplane EF (%)": metrics.ejection_fraction(edv, esv)})
        rows.append(row)
    out.table = pd.DataFrame(rows).set_index("patient")
    return out


def sin2_law_statement(table: pd.DataFrame) -> str:
    """One sentence summarising :func:`~echo_utils.data.phantom_motion.sin2_law_table` (median and range of the
    largest difference)."""
    if not len(table):
        return "no sequence with dense labels: the distance from the sin² law is not measured"
    return (f"{len(table)} sequences: max |area curve - sin² law| median {table.max_abs.median():.2f} (range "
            f"{table.max_abs.min():.2f}-{table.max_abs.max():.2f}), RMS median {table.rms.median():.2f}; largest at "
            f"normalised time {table.tau_at_max.median():.2f} (median)")


def phantom_statement(summary: dict) -> str:
    """One sentence on a synthetic cohort from its generation summary
    (:func:`echo_utils.data.phantom_cohort.cohort_summary`): size, frames, seed, generation time."""
    lo, hi = summary["frames"][0], summary["frames"][1]
    return (f"synthetic cohort: {summary['n_patients']} patients at {summary['size']}x{summary['size']} pixels, "
            f"{lo}-{hi} frames ED->ES, seed {summary['seed']}; generated in {summary['seconds']} s on "
            f"{summary['workers']} process(es)")


def split_table(split: dict[str, Iterable[str]], shown: int = SHOWN_PATIENTS) -> pd.DataFrame:
    """One row per split of ``split`` (``{'train', 'val', 'test'}`` -> patient ids): ``patients`` (the count) and
    ``first patients`` (the first ``shown`` ids, ``...`` when there are more)."""
    rows = {}
    for name, pats in split.items():
        pats = list(pats)
        rows[name] = [len(pats), ", ".join(pats[:shown]) + (" ..." if len(pats) > shown else "")]
    return pd.DataFrame(rows, index=["patients", "first patients"]).T


def sequence_card(seq: EchoSequence) -> pd.DataFrame:
    """What one :class:`~echo_utils.data.camus.EchoSequence` holds, one row per field (column ``value``): key, the
    images' shape, dtype and range, spacing (mm), ED/ES, the frames of the sparse labels, the dense labels and their
    kind, and the ``info`` values."""
    return pd.Series({
        "key": seq.key,
        "images": f"{seq.images.shape} {seq.images.dtype}, range [{seq.images.min():.2f}, {seq.images.max():.2f}]",
        "spacing (sy, sx) mm": tuple(round(s, 3) for s in seq.spacing),
        "ED, ES (0-based)": (seq.ed, seq.es),
        "sparse labels at frames": sorted(seq.labels),
        "dense": None if seq.dense is None else f"{seq.dense.shape} {seq.dense.dtype}",
        "dense kind": seq.dense_kind,
        "info": seq.info,
    }, name="value").to_frame()


def ef_statement(table: pd.DataFrame) -> str:
    """The biplane EF of the per-patient ``table`` (:class:`CohortOverview`) against its ``Info`` EF: mean and
    largest difference in percentage points, or why it is not measured."""
    if "biplane EF (%)" not in table:
        return "no biplane EF: the cohort is not read in both views (2CH and 4CH)"
    if not table["Info EF (%)"].notna().all():
        return "biplane EF measured; the Info files record no EF for every patient, so it is not checked"
    err = table["biplane EF (%)"] - table["Info EF (%)"]
    return f"biplane EF - Info EF: mean {err.mean():+.2f}, max |error| {err.abs().max():.2f} percentage points"


def patient_table(table: pd.DataFrame, rows: int = SHOWN_ROWS) -> pd.DataFrame:
    """The first ``rows`` patients of the per-patient ``table``, rounded to 0.1 for display."""
    return table.round(1).head(rows)


def pairing_statement(pairing: pd.DataFrame, exclusions: Iterable[str]) -> str:
    """One sentence on :func:`ted_pairing`: the TED patients by ED...ES frame match and the CAMUS patients the
    registration leaves out (``exclusions``, ``study.cohort.exclusions``)."""
    return (f"{len(pairing)} TED patients by ED...ES frame match {pairing['match'].value_counts().to_dict()} "
            f"('phase': another count than CAMUS); {len(list(exclusions))} CAMUS patients left out of registration "
            "training")
