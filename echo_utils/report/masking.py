"""The confidence-masked 3D dense model (``3d_dense_masked``) for a reader: its masking record in one sentence
(notebook 04) and its numbers next to the plain 3D dense model's (notebook 05).

The masking itself (the threshold, the ignored pixels) is :mod:`echo_utils.segmentation.masking`; its record is
:func:`~echo_utils.segmentation.export.dataset_masking`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from ..labels import name

__all__ = ["masking_statement", "masked_comparison"]


def masking_statement(record: Mapping | None, model: str = "3d_dense_masked") -> str:
    """One sentence on a masking record (:func:`~echo_utils.segmentation.export.dataset_masking`): the threshold,
    how it was chosen, and the share of the pseudo-labelled pixels (and of all training voxels) it ignores."""
    if not record:
        return f"{name(model)}: not exported (add it to nnunet.models to train it)"
    val = (f"; on the validation patients it flags the pseudo-label errors with F1 {record['val_f1']:.3f} "
           f"(precision {record['val_precision']:.3f}, recall {record['val_recall']:.3f}; "
           f"{record['val_errors']} errors in {record['val_pixels']} pseudo-labelled pixels)"
           if "val_f1" in record else "")
    return (f"{name(model)}: pseudo-labelled pixels with confidence < {record['threshold']:g} are nnU-Net's ignore "
            f"label (threshold: {record['source']}){val}. Ignored: "
            f"{100 * record['ignored_fraction_of_pseudo']:.2f} % of the pseudo-labelled pixels "
            f"({100 * record['ignored_fraction_of_all']:.2f} % of all training voxels; the ED and ES frames keep "
            "their manual labels)")


def masked_comparison(mean, t2, medians, even_odd, models: Iterable[str], base: str = "3d_dense"):
    """The confidence-masked model(s) next to ``base`` (plain 3D dense): one row per number, one column per model,
    and ``<model> − <base>`` columns.

    Parameters (notebook 05's tables): ``mean`` (:func:`~echo_utils.report.tables.summarise_table1`: model x
    (phase, structure, metric)), ``t2`` (:func:`~echo_utils.report.tables.table2`: model x (index, statistic)),
    ``medians`` (structure x model median Eq. 2), ``even_odd``
    (:func:`~echo_utils.report.smoothness.even_odd_summary`: (structure, model) x ``even_odd``). Rows: Dice at ED
    and ES of LV, MYO, LA; EF MAE (points); median Eq. 2 and even/odd amplitude of LV, MYO, LA.
    """
    models = [m for m in models if m != base]
    cols = [base, *models]
    rows = {}
    for ph in ("ED", "ES"):
        for st in ("LV", "MYO", "LA"):
            rows[f"Dice {ph} {st}"] = {m: float(mean.loc[m, (ph, st, "dice")]) for m in cols}
    rows["EF MAE (points)"] = {m: float(t2.loc[m, ("EF", "mae")]) for m in cols}
    for st in ("LV", "MYO", "LA"):
        if st in medians.index:
            rows[f"median Eq. 2 {st}"] = {m: float(medians.loc[st, m]) for m in cols}
    for st in ("LV", "MYO", "LA"):
        if (st, base) in even_odd.index:
            rows[f"median even/odd {st}"] = {m: float(even_odd.loc[(st, m), "even_odd"]) for m in cols}
    out = pd.DataFrame(rows).T[cols]
    for m in models:
        out[f"{name(m)} − {name(base)}"] = out[m] - out[base]
    return out.rename(columns={m: name(m) for m in cols})
