"""What notebooks 01 and 03 show of the cohort: the TED pairing, the TED frame matching, the one-pass overview of a
cohort and the distance of its motion from the sin² law of the Eq. 1 weights.

The cohort itself (profile -> data set root, split, sequences, the TED -> CAMUS mapping) is chosen in
:mod:`echo_utils.data.cohort`; this module only tabulates and summarises it for a reader.

* :func:`ted_pairing`: the TED patients of a profile and their CAMUS counterparts, from the ``cfg`` files alone;
* :func:`frame_matching`: how each TED evaluation sequence's frames were matched to its CAMUS half-sequence;
* :func:`cohort_overview` (:class:`CohortOverview`): one pass over the images (a real cohort at 512x512 does not
  fit in memory): per-patient table, examples per image quality, area curves;
* :func:`sin2_law_statement`: one sentence on :func:`~echo_utils.data.phantom_motion.sin2_law_table`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from ..data.camus import EchoSequence, frame_number, list_patients, read_cfg
from ..data.cohort import _expand, iter_split, study_root, study_split, ted_pairs, uses_ted

__all__ = ["ted_pairing", "frame_matching", "CohortOverview", "cohort_overview", "sin2_law_statement"]


def frame_matching(sequences: Iterable[EchoSequence]) -> pd.DataFrame:
    """One row per evaluation sequence built from TED: ``patient`` (CAMUS), ``ted``, ``camus_frames`` and
    ``ted_frames`` (ED...ES, inclusive), ``match`` ('exact' or 'phase') and ``resampled`` (TED labels resized to
    the CAMUS grid).  Empty for other sequences."""
    rows = [dict(patient=s.patient, ted=s.info["TED"], camus_frames=s.info["CAMUSFramesEDES"],
                 ted_frames=s.info["TEDFramesEDES"], match=s.info["FrameMatch"], resampled=s.info["TEDResampled"])
            for s in sequences if "TED" in s.info]
    return pd.DataFrame(rows, columns=["patient", "ted", "camus_frames", "ted_frames", "match", "resampled"])


def ted_pairing(cfg, paths) -> pd.DataFrame:
    """The TED patients of a profile and their CAMUS counterparts, from the ``cfg`` files alone (no image read).

    One row per TED patient: ``ted``, ``camus`` (``None`` without a mapping), ``camus_split`` (``train``, ``val``,
    ``test`` or ``None``), ``ted_frames`` and ``camus_frames`` (ED...ES inclusive, from the ``_4CH_info.cfg`` and
    ``Info_4CH.cfg`` files), ``match`` (``'exact'``, ``'phase'`` when the counts differ, or ``'unmapped'``).  Empty
    when the profile does not use TED (:func:`~echo_utils.data.cohort.registration_exclusions` is then empty too).
    """
    cols = ["ted", "camus", "camus_split", "ted_frames", "camus_frames", "match"]
    if not uses_ted(cfg.data):
        return pd.DataFrame(columns=cols)
    pairs, unmapped = ted_pairs(cfg.data)
    ted_dirs = list_patients(_expand(cfg.data.ted_root, "ted_root"))
    camus_dirs = list_patients(study_root(cfg, paths))
    where = {p: k for k, pats in study_split(cfg, paths).items() for p in pats}

    def n_ed_es(path: Path) -> int:
        info = read_cfg(path)
        return abs(frame_number(info, "ES", path) - frame_number(info, "ED", path)) + 1

    rows = []
    for t, c in pairs:
        nt = n_ed_es(ted_dirs[t] / f"{t}_4CH_info.cfg")
        nc = n_ed_es(camus_dirs[c] / "Info_4CH.cfg") if c in camus_dirs else None
        rows.append(dict(ted=t, camus=c, camus_split=where.get(c), ted_frames=nt, camus_frames=nc,
                         match=None if nc is None else ("exact" if nt == nc else "phase")))
    rows += [dict(ted=t, camus=None, camus_split=None, ted_frames=n_ed_es(ted_dirs[t] / f"{t}_4CH_info.cfg"),
                  camus_frames=None, match="unmapped") for t in unmapped]
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


def cohort_overview(cfg, paths, split: str = "all") -> CohortOverview:
    """Read the study's sequences once (:func:`~echo_utils.data.cohort.iter_split`) and keep what
    :class:`CohortOverview` describes.

    Each patient's views are held only until its volumes are measured, so memory stays at a few sequences.
    """
    views = list(cfg.data.views)
    out = CohortOverview(table=pd.DataFrame())
    rows, pending = [], {}
    for s in iter_split(cfg, paths, split):
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
