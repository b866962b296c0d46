"""What notebook 05 shows around its tables: the test set's prediction status, the EF error tables, the Fig. 3 figure
and its tables, the even/odd and inconsistency views, the frame-position view and the Fig. 4 sequence, and the
entries each adds to ``metrics/evaluation_summary.json``.

The numbers are computed by :mod:`echo_utils.report.tables`, :mod:`.smoothness`, :mod:`.frame_position` and
:mod:`.masking`; this module only words, formats and records them. A ``*_view`` function returns what the notebook
displays, in order (an IPython ``Markdown`` of the computed statements, then pandas Stylers); a ``*_record``
function returns the summary entries (the keys and roundings the summary has always had).
"""

from __future__ import annotations

import math

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..labels import ALL_MODELS, MODEL_NAMES, STRUCTURE_NAMES
from . import frame_position, smoothness
from .figures import inconsistency_figure, smoothness_figure
from .paper import PAPER_FIG3_MEDIANS
from .tables import flatten

__all__ = ["SHOWN_MISSING", "EF_MAE_MARGIN", "evaluated_models", "test_set_lines", "ef_mae_statement",
           "volume_error_tables", "frame_position_view", "fig3_figure", "smoothness_medians", "smoothness_record",
           "fig3_view", "even_odd_record", "even_odd_view", "inconsistency_record", "inconsistency_view",
           "inconsistency_fig", "fig4_sequence", "masked_comparison", "masked_record", "masked_view", "write_summary"]

#: sequence keys named per model whose predictions are missing
SHOWN_MISSING = 4
#: EF MAE (points) within which the 3D dense model counts as no worse than 2D sparse
EF_MAE_MARGIN = 2
#: decimals of the summary's smoothness medians (Eq. 2 spans orders of magnitude), masked comparison and even/odd /
#: inconsistency values
_SMOOTH_DIGITS, _MASKED_DIGITS, _DIGITS = 12, 6, 4


def _markdown(head: str, lines: Iterable[str]):
    from IPython.display import Markdown

    return Markdown(head + "\n\n" + "\n".join(f"- {line}" for line in lines))


def evaluated_models(preds: Mapping[str, dict], predictions_dir: str | Path) -> list[str]:
    """The models with predictions in ``preds`` (:func:`echo_utils.report.tables.load_predictions`), in the order
    of :data:`echo_utils.labels.ALL_MODELS` (the default models and any optional one trained); none is a
    ``RuntimeError`` naming ``predictions_dir``."""
    models = [m for m in ALL_MODELS if m in preds]
    if not models:
        raise RuntimeError(f"no predictions under {predictions_dir}: run notebook 04 first")
    return models


def test_set_lines(test: Sequence, preds: Mapping[str, dict], missing: Mapping[str, list[str]],
                   models: Iterable[str]) -> list[str]:
    """What the test set holds (sequences, patients, the kinds of dense reference) and, per model of ``models``,
    how many of its sequences were predicted (the first :data:`SHOWN_MISSING` missing keys named)."""
    kinds = sorted({s.dense_kind for s in test if s.dense is not None}) or "none"
    out = [f"{len(test)} test sequences of {len({s.patient for s in test})} patients; dense reference: {kinds}"]
    for m in models:
        gone = missing.get(m)
        more = "..." if gone and len(gone) > SHOWN_MISSING else ""
        out.append(f"  {MODEL_NAMES[m]:>9}: {len(preds.get(m, {}))}/{len(test)} sequences predicted"
                   + (f"  (missing: {', '.join(gone[:SHOWN_MISSING])}{more})" if m in missing else ""))
    return out


def ef_mae_statement(t2: pd.DataFrame) -> str:
    """The 3D dense model's EF mean absolute error against the 2D sparse model's, from Table 2 (``t2``:
    :func:`echo_utils.report.tables.table2`): within :data:`EF_MAE_MARGIN` points or better, or worse."""
    if not {"3d_dense", "2d_sparse"} <= set(t2.index):
        return "EF MAE: 3D dense and 2D sparse are not both evaluated in this run"
    a, b = t2.loc["3d_dense", ("EF", "mae")], t2.loc["2d_sparse", ("EF", "mae")]
    verdict = (f"within {EF_MAE_MARGIN} points of 2D sparse or better" if a <= b + EF_MAE_MARGIN
               else f"more than {EF_MAE_MARGIN} points worse than 2D sparse")
    return f"EF MAE: 3D dense {a:.1f} vs 2D sparse {b:.1f} points -> {verdict}"


def ef_error_sources(t2: pd.DataFrame) -> list[str]:
    """Where each model's EF bias comes from, from Table 2's biases (``t2``: :func:`echo_utils.report.tables.table2`):
    one line per model with its EF, EDV and ESV biases (automatic - reference) and the direction each volume's bias
    pushes the EF (``EF = 1 - ESV / EDV``: a larger ESV or a smaller EDV lowers it). A model without an EF bias
    (no patient with both views) is left out."""
    lines = []
    for model in t2.index:
        ef, edv, esv = (float(t2.loc[model, (q, "bias")]) for q in ("EF", "EDV", "ESV"))
        if not math.isfinite(ef):
            continue
        lines.append(f"{MODEL_NAMES.get(model, model)}: EF bias {ef:+.1f} points; EDV bias {edv:+.1f} mL "
                     f"({_ef_push(edv, +1)} the EF), ESV bias {esv:+.1f} mL ({_ef_push(esv, -1)} the EF)")
    return lines


def _ef_push(bias: float, sign: int) -> str:
    """What a volume bias does to the EF: ``sign`` +1 for the EDV (larger raises the EF), -1 for the ESV."""
    return "leaves" if bias == 0 else ("raises" if bias * sign > 0 else "lowers")


def volume_error_tables(errors: pd.DataFrame) -> tuple:
    """Two Stylers of :func:`echo_utils.report.tables.volume_errors`: the per-patient EDV, ESV (mL) and EF (points)
    errors of every model, and the mean absolute errors per model (its ``attrs['mae']``)."""
    per_patient = errors.unstack("model").round(1).style.format("{:.1f}", na_rep="missing").set_caption(
        "Automatic − reference EDV, ESV (mL) and EF (points) per test patient and model")
    mae = errors.attrs["mae"].rename(index=MODEL_NAMES).round(2).style.format("{:.2f}").set_caption(
        "Mean absolute errors per model (the MAE columns of Table 2)")
    return per_patient, mae


def frame_position_view(by_position: pd.DataFrame) -> tuple:
    """The LV cavity's frame-position statements and table (:func:`echo_utils.report.frame_position.
    frame_position_summary`): the error at the first frame, the interior and the last frame."""
    text = _markdown("**Computed from this run** (LV cavity, means over test sequences):",
                     frame_position.frame_position_statements(by_position))
    table = by_position.droplevel("structure").rename(index=MODEL_NAMES).style.format("{:.1f}").set_caption(
        "LV cavity area error by frame position: signed error and |error| (px), relative error (% of the true "
        "area); first = ED, last = ES in a half sequence")
    return text, table


def fig3_figure(smooth: pd.DataFrame, shape: tuple[int, int], units: str):
    """Fig. 3: box plots of Eq. 2 per structure and model of ``smooth``
    (:func:`echo_utils.report.smoothness.smoothness_table` in ``units``, ``evaluation.smoothness_units``: ``'px'``
    or ``'mm'``), on images of ``shape`` (H, W) px, log scale."""
    unit_label = "px²/frame³, area in px" if units == "px" else "mm⁴, area in mm², time in [0, 1]"
    return smoothness_figure(
        smooth.dropna(subset=["smoothness"]),
        title=f"Fig. 3: temporal smoothness (Eq. 2) of the test predictions at {shape[0]}×{shape[1]} "
              "(lower is smoother)",
        y_title=f"smoothness ({unit_label}; log scale)")


def smoothness_medians(smooth: pd.DataFrame) -> pd.DataFrame:
    """Median Eq. 2 per structure (rows) and model (columns) of ``smooth``."""
    return smooth.groupby(["structure", "model"])["smoothness"].median().unstack()


def smoothness_record(ordering: pd.DataFrame) -> dict:
    """The summary entries of Fig. 3: ``smoothness_ordering`` (whether the paper's ordering holds, per structure)
    and ``smoothness_median`` (:func:`echo_utils.report.smoothness.median_ordering`'s medians)."""
    return {"smoothness_ordering": {s: bool(h) for s, h in ordering["holds"].items()},
            "smoothness_median": flatten(ordering.drop(columns="holds").T, digits=_SMOOTH_DIGITS)}


def fig3_view(ordering: pd.DataFrame, smooth: pd.DataFrame) -> tuple:
    """Fig. 3's computed statements (ordering and ratios), this run's median table and the paper's."""
    lines = smoothness.ordering_statements(ordering) + smoothness.ratio_statements(smooth)
    text = _markdown("**Computed from this run** (medians over test sequences; the paper's Fig. 3 shows "
                     "3D dense < 2D dense < 2D sparse for every structure):", lines)
    ours = smoothness_medians(smooth).rename(columns=MODEL_NAMES, index=STRUCTURE_NAMES).style.format(
        "{:.3g}").set_caption(f"Median smoothness of this run ({smooth.attrs['unit']}); the reference column is the "
                              "smoothness of the true motion, the control for every model")
    paper = PAPER_FIG3_MEDIANS.rename(index=MODEL_NAMES, columns=STRUCTURE_NAMES).style.format("{:.2g}").set_caption(
        "The paper's Fig. 3 medians, read off the figure (px²/frame³, area in px at 512×512)")
    return text, ours, paper


def even_odd_record(even_odd: pd.DataFrame) -> dict:
    """The summary entry ``even_odd_median``: the median even/odd amplitude per structure and model."""
    return {"even_odd_median": {f"{s} {m}": round(float(v), _DIGITS) for (s, m), v in
                                smoothness.even_odd_summary(even_odd)["even_odd"].items()}}


def even_odd_view(even_odd: pd.DataFrame) -> tuple:
    """The even/odd statements and the median table (Eq. 2, Eq. 2 without the alternation, its amplitude)."""
    text = _markdown("**Computed from this run** (medians over test sequences):",
                     smoothness.even_odd_statements(even_odd))
    table = smoothness.even_odd_summary(even_odd).rename(index={**MODEL_NAMES, **STRUCTURE_NAMES}).style.format(
        {"smoothness": "{:.3g}", "smoothness_without_even_odd": "{:.3g}", "even_odd": "{:.2f}",
         "even_odd_percent": "{:.2f}"}
    ).set_caption(f"Medians per structure and model: Eq. 2, Eq. 2 without the even/odd component, and its amplitude "
                  f"({even_odd.attrs['unit']}; percent of the mean area)")
    return text, table


def inconsistency_record(inconsistency: pd.DataFrame) -> dict:
    """The summary entry ``inconsistency``: per structure and model, the fractions of frames and of sequences that
    violate the threshold."""
    return {"inconsistency": {f"{s} {m}": {"frames": round(float(r.frame_fraction), _DIGITS),
                                           "sequences": round(float(r.sequence_fraction), _DIGITS)}
                              for (s, m), r in inconsistency.iterrows()}}


def inconsistency_fig(inconsistency: pd.DataFrame):
    """The bars of Painchaud et al.'s per-frame consistency test (frames and sequences that violate it)."""
    return inconsistency_figure(
        inconsistency, title="Temporal inconsistency (Painchaud et al., vital's thresholds): frames and sequences that "
                             "violate the threshold")


def inconsistency_view(inconsistency: pd.DataFrame, bounds_source: str) -> tuple:
    """The inconsistency statements (the bounds named by ``bounds_source``, ``smooth.attrs['bounds_source']``) and
    the table per structure and model."""
    text = _markdown(f"**Computed from this run** (bounds: {bounds_source}):",
                     smoothness.inconsistency_statements(inconsistency))
    table = inconsistency.rename(index={**MODEL_NAMES, **STRUCTURE_NAMES}).style.format(
        {"threshold": "{:.3g}", "frame_fraction": "{:.1%}", "sequence_fraction": "{:.0%}"}
    ).set_caption("Per structure and model: frames (all frames of the test sequences) and sequences (with at least one "
                  "frame) that violate the threshold; the reference is the control")
    return text, table


def fig4_sequence(test: Sequence, patient: str | None = None):
    """The test sequence Fig. 4 shows: the 4CH view (else the first view) of ``patient`` (``evaluation.patient``;
    default the first test patient); a patient outside the test set is a ``ValueError`` listing the test
    patients."""
    patient = patient or test[0].patient
    candidates = [s for s in test if s.patient == patient]
    if not candidates:
        raise ValueError(f"evaluation.patient = {patient!r} is not a test patient; test patients: "
                         f"{sorted({s.patient for s in test})}")
    return next((s for s in candidates if s.view == "4CH"), candidates[0])


def masked_comparison(models: Iterable[str], mean: pd.DataFrame, t2: pd.DataFrame, medians: pd.DataFrame,
                      even_odd: pd.DataFrame) -> pd.DataFrame | None:
    """The confidence-masked 3D dense models of ``models`` against plain 3D dense
    (:func:`echo_utils.report.masking.masked_comparison` of Table 1's ``mean``, Table 2 ``t2``, Fig. 3's
    ``medians`` and the even/odd table), or ``None`` when the run trained no masked model or no 3D dense."""
    from ..labels import OPTIONAL_MODELS
    from .masking import masked_comparison as compare

    models = list(models)
    masked = [m for m in models if m in OPTIONAL_MODELS]
    if not (masked and "3d_dense" in models):
        return None
    return compare(mean, t2, medians, smoothness.even_odd_summary(even_odd), masked)


def masked_record(comparison: pd.DataFrame | None) -> dict:
    """The summary entry ``masked_comparison`` (none without a comparison)."""
    return {} if comparison is None else {"masked_comparison": flatten(comparison, digits=_MASKED_DIGITS)}


def masked_view(comparison: pd.DataFrame | None, smooth_unit: str, even_odd_unit: str):
    """The comparison's Styler (Eq. 2 in ``smooth_unit``, even/odd in ``even_odd_unit``), or a ``Markdown`` saying
    how to train a masked model when the run has none."""
    if comparison is None:
        from IPython.display import Markdown

        return Markdown("No confidence-masked model in this run (`nnunet.models`: add `3d_dense_masked` to train it).")
    return comparison.style.format("{:.4g}").set_caption(
        "Confidence-masked 3D dense against plain 3D dense on the test sequences (Dice unitless, EF MAE in "
        f"points, Eq. 2 in {smooth_unit}, even/odd in {even_odd_unit})")


def write_summary(metrics_dir: str | Path, summary: dict) -> Path:
    """``metrics_dir/evaluation_summary.json``: the run's key numbers (``json.dumps(indent=1, default=str)``, the
    layout it has always had), written atomically; returns its path."""
    from ..artifacts.atomic import write_json
    from ..artifacts.files import EVALUATION_SUMMARY

    return write_json(Path(metrics_dir) / EVALUATION_SUMMARY, summary, indent=1, sort_keys=False, default=str)
