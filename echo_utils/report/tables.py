"""Tables 1 and 2 of the paper from this run's predictions: ED/ES accuracy, LV volumes and EF, beside the paper.

Table 1 scores the predicted ED and ES frames against the manual labels (Dice, HD and MAD in mm, from
:func:`echo_utils.metrics.score_sequence`) for the structures of :mod:`echo_utils.labels`: ``LV`` (cavity), ``MYO``
(ring), ``EPI`` (cavity + myocardium, the CAMUS convention of the paper's "LV myocardium" columns) and ``LA``.
Table 2 turns the LV cavity of the 2CH and 4CH views into EDV, ESV and EF (Simpson's biplane method,
:mod:`echo_utils.clinical`) and measures their agreement with the same computation on the manual labels.

Tables are long-form :class:`pandas.DataFrame` objects; ``summarise_*`` functions aggregate them, ``format_*`` and
``*_side_by_side`` render mean ± sd strings with the best value in bold, and ``*_statements`` return the sentences
a notebook prints, computed from the run (never typed in).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import clinical, metrics
from ..labels import MODEL_NAMES, STRUCTURE_NAMES, STRUCTURE_SHORT_NAMES, ordered
from .paper import METRICS, PAPER_TABLE1, PAPER_TABLE2, PAPER_TABLE2_STATISTIC

if TYPE_CHECKING:  # pragma: no cover
    from ..data.camus import EchoSequence

__all__ = [
    "METRIC_NAMES",
    "HIGHER_IS_BETTER",
    "load_predictions",
    "score_ed_es",
    "segmentation_scores",
    "summarise_table1",
    "paired_differences",
    "table1_statements",
    "format_mean_sd",
    "style_best",
    "table1_side_by_side",
    "lv_indices",
    "clinical_indices",
    "recorded_ef_check",
    "table2",
    "TABLE2_STATISTIC_COLUMN",
    "table2_side_by_side",
    "table2_statements",
    "volume_errors",
    "flatten",
]

METRIC_NAMES = {"dice": "Dice", "hd": "HD (mm)", "mad": "MAD (mm)"}
HIGHER_IS_BETTER = {"dice": True, "hd": False, "mad": False, "corr": True, "bias": None, "mae": False}
_PRETTY = {**STRUCTURE_SHORT_NAMES, **METRIC_NAMES, "corr": "corr", "bias": "bias", "mae": "MAE",
           "EDV": "EDV (mL)", "ESV": "ESV (mL)", "EF": "EF (%)"}  # fmt: skip


def load_predictions(
    paths, models: Iterable[str], sequences: Iterable["EchoSequence"]
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, list[str]]]:
    """Every prediction notebook 04 wrote, ``{model: {seq.key: (T, H, W) uint8}}``, and ``{model: [missing keys]}``.

    Reads ``<run>/predictions/<model>/<patient>_<view>.nii.gz`` (``paths``: the run directory's
    :class:`~echo_utils.rundir.RunPaths`) with the segmentation package's ``load_prediction``; predicts nothing. A
    model with no prediction at all is left out of the first dict (and lists all its keys as missing).
    """
    from ..segmentation.predict import load_prediction, prediction_path

    folder = paths.predictions
    sequences = list(sequences)
    preds: dict[str, dict[str, np.ndarray]] = {}
    missing: dict[str, list[str]] = {}
    for model in models:
        got = {}
        for seq in sequences:
            if prediction_path(folder, model, seq).is_file():
                got[seq.key] = load_prediction(folder, model, seq)
            else:
                missing.setdefault(model, []).append(seq.key)
        if got:
            preds[model] = got
    return preds, missing


# --------------------------------------------------------------------------------------------------------------
# Table 1: Dice, HD and MAD at ED and ES


def score_ed_es(pred: np.ndarray, seq: "EchoSequence") -> pd.DataFrame:
    """Dice, HD (mm) and MAD (mm) of a predicted sequence against the manual labels at ED and ES.

    Parameters
    ----------
    pred : uint8 ``(T, H, W)`` prediction aligned with ``seq.images``.
    seq : the sequence, whose ``labels`` hold the ED and ES references and ``spacing`` the pixel size in mm.

    Returns
    -------
    One row per (phase, structure) with columns ``phase, structure, dice, hd, mad``; the structures are ``LV``,
    ``MYO``, ``EPI`` and ``LA``. The scores follow :func:`echo_utils.metrics.score_sequence`, including its
    empty-mask rule (HD and MAD are NaN when exactly one of the two masks is empty).
    """
    pred = np.asarray(pred)
    if pred.shape != seq.images.shape:
        raise ValueError(f"{seq.key}: prediction shape {pred.shape} != sequence shape {seq.images.shape}")
    for phase, frame in (("ED", seq.ed), ("ES", seq.es)):
        if frame not in seq.labels:
            raise ValueError(f"{seq.key}: no manual label at {phase} (frame {frame})")
    ref = np.stack([seq.labels[seq.ed], seq.labels[seq.es]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.EmptyMaskWarning)
        df = metrics.score_sequence(pred[[seq.ed, seq.es]], ref, seq.spacing, myo="both")
    df.insert(0, "phase", df.pop("frame").map({0: "ED", 1: "ES"}))
    return df[["phase", "structure", "dice", "hd", "mad"]]


def segmentation_scores(
    predictions: Mapping[str, Mapping[str, np.ndarray]], sequences: Iterable["EchoSequence"]
) -> pd.DataFrame:
    """Table 1's raw scores: every model, test sequence, phase and structure.

    ``predictions`` is ``{model: {seq.key: (T, H, W) uint8}}``; a sequence missing for a model is skipped.
    Returns a long table with columns ``model, patient, view, phase, structure, dice, hd, mad`` (HD, MAD in mm).
    """
    sequences = list(sequences)
    parts = []
    for model, preds in predictions.items():
        for seq in sequences:
            if seq.key not in preds:
                continue
            df = score_ed_es(preds[seq.key], seq)
            df.insert(0, "view", seq.view)
            df.insert(0, "patient", seq.patient)
            df.insert(0, "model", model)
            parts.append(df)
    if not parts:
        raise ValueError("no prediction matches any test sequence")
    return pd.concat(parts, ignore_index=True)


def _sorted_columns(cols: pd.MultiIndex) -> pd.MultiIndex:
    rank = {v: i for i, v in enumerate(("ED", "ES", "LV", "MYO", "EPI", "LA", *METRICS, "EDV", "ESV", "EF"))}
    rank.update({"corr": 100, "bias": 101, "mae": 102})
    return pd.MultiIndex.from_tuples(sorted(cols, key=lambda c: tuple(rank.get(x, 999) for x in c)), names=cols.names)


def summarise_table1(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean and sd over test sequences of each (phase, structure, metric), one row per model.

    Returns ``(mean, sd)``, both with columns ``MultiIndex(phase, structure, metric)``. NaN distances (one empty
    mask) are left out of the mean.
    """
    long = scores.melt(
        id_vars=["model", "patient", "view", "phase", "structure"], value_vars=list(METRICS), var_name="metric"
    )
    g = long.groupby(["model", "phase", "structure", "metric"], sort=False)["value"]
    mean = g.mean().unstack(["phase", "structure", "metric"])
    sd = g.std(ddof=1).unstack(["phase", "structure", "metric"])
    models = ordered(mean.index)
    cols = _sorted_columns(mean.columns)
    return mean.loc[models, cols], sd.loc[models, cols]


def paired_differences(
    scores: pd.DataFrame,
    *,
    reference: str = "2d_sparse",
    structures: Iterable[str] = ("LV", "EPI"),
    metrics_: Iterable[str] = ("dice", "hd"),
) -> pd.DataFrame:
    """Each model minus ``reference`` on the same test sequences, with a paired two-sided Wilcoxon test.

    Returns one row per (model, phase, structure, metric): ``n`` (sequences with both values finite), ``mean_diff``
    (model − reference; positive Dice and negative HD favour the model), ``p`` (Wilcoxon signed-rank p-value, NaN
    for fewer than 2 pairs or all differences zero). The p-value is the control for the mean difference: with a
    handful of test sequences a difference of 0.01 Dice can be noise.
    """
    from scipy.stats import wilcoxon

    rows = []
    idx = ["patient", "view", "phase", "structure"]
    sub = scores[scores["structure"].isin(list(structures))]
    for m in metrics_:
        wide = sub.pivot_table(index=idx, columns="model", values=m, aggfunc="first", dropna=False)
        if reference not in wide.columns:
            continue
        for model in ordered(c for c in wide.columns if c != reference):
            for (phase, s), g in wide.groupby(level=["phase", "structure"], sort=False):
                pair = g[[model, reference]].dropna()
                diff = pair[model] - pair[reference]
                p = float(wilcoxon(diff).pvalue) if len(pair) >= 2 and not np.allclose(diff, 0) else math.nan
                rows.append({"model": model, "phase": phase, "structure": s, "metric": m, "n": len(pair),
                             "mean_diff": float(diff.mean()) if len(pair) else math.nan, "p": p})
    out = pd.DataFrame(rows, columns=["model", "phase", "structure", "metric", "n", "mean_diff", "p"])
    rank = {k: i for i, k in enumerate((*ordered(out["model"].unique()), "ED", "ES", *STRUCTURE_NAMES, *METRICS))}
    return out.sort_values(["model", "phase", "structure", "metric"], key=lambda c: c.map(rank), ignore_index=True)


def table1_statements(diffs: pd.DataFrame, reference: str = "2d_sparse") -> list[str]:
    """Sentences from :func:`paired_differences`: "2D dense vs 2D sparse, ED LV cavity: Dice +0.004 (p = 0.3),
    HD -0.2 mm (p = 0.5)" for every model, phase and structure."""
    out = []
    ref = MODEL_NAMES.get(reference, reference)
    for (model, phase, s), g in diffs.groupby(["model", "phase", "structure"], sort=False):
        parts = []
        for _, r in g.iterrows():
            unit = "" if r["metric"] == "dice" else " mm"
            digits = 3 if r["metric"] == "dice" else 1
            p = "n/a" if not np.isfinite(r["p"]) else f"{r['p']:.2g}"
            parts.append(f"{METRIC_NAMES[r['metric']].split(' ')[0]} {r['mean_diff']:+.{digits}f}{unit} (p = {p})")
        out.append(f"{MODEL_NAMES.get(model, model)} vs {ref}, {phase} {STRUCTURE_NAMES.get(s, s)}, "
                   f"{int(g['n'].iloc[0])} sequences: " + ", ".join(parts))
    return out


def _best_mask(mean: pd.DataFrame, exclude: Iterable[str] = ("intra-observer",)) -> pd.DataFrame:
    """True where a value is the best of its column (higher Dice/corr, lower HD/MAD/MAE, |bias| closest to 0)."""
    best = pd.DataFrame(False, index=mean.index, columns=mean.columns)
    rows = [m for m in mean.index if m not in set(exclude)]
    for col in mean.columns:
        metric = col[-1] if isinstance(col, tuple) else col
        vals = mean.loc[rows, col].astype(float)
        if vals.isna().all():
            continue
        hib = HIGHER_IS_BETTER.get(metric, True)
        if hib is None:
            hits = vals.abs() == vals.abs().min()
        else:
            hits = vals == (vals.max() if hib else vals.min())
        best.loc[hits[hits].index, col] = True
    return best


def format_mean_sd(
    mean: pd.DataFrame, sd: pd.DataFrame | None = None, digits: Mapping[str, int] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Render ``mean ± sd`` strings and the mask of best values (see :func:`style_best`).

    ``digits`` maps the metric (last column level) to decimals; default 3 for Dice and correlations, 1 otherwise.
    Missing values render as an en dash.
    """
    digits = {"dice": 3, "corr": 3, **(digits or {})}
    out = pd.DataFrame("", index=mean.index, columns=mean.columns, dtype=object)
    for col in mean.columns:
        metric = col[-1] if isinstance(col, tuple) else col
        d = digits.get(metric, 1)
        for row in mean.index:
            m = mean.at[row, col]
            s = sd.at[row, col] if sd is not None and row in sd.index and col in sd.columns else math.nan
            if pd.isna(m):
                out.at[row, col] = "–"
            elif pd.isna(s):
                out.at[row, col] = f"{m:.{d}f}"
            else:
                out.at[row, col] = f"{m:.{d}f} ± {s:.{d}f}"
    return out, _best_mask(mean)


def style_best(text: pd.DataFrame, best: pd.DataFrame, caption: str | None = None):
    """A pandas Styler that shows ``text`` with the ``best`` cells in bold (HTML in the notebook and the book)."""
    def rename(m):
        return MODEL_NAMES.get(m, m)

    styler = text.rename(index=rename).style
    best = best.rename(index=rename)
    styler = styler.apply(lambda col: ["font-weight: bold" if b else "" for b in best[col.name]], axis=0)
    return styler.set_caption(caption) if caption else styler


def _display_frame(text: pd.DataFrame, best: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    text, best = text.copy(), best.copy()
    if isinstance(text.columns, pd.MultiIndex):
        cols = pd.MultiIndex.from_tuples([tuple(_PRETTY.get(x, x) for x in c) for c in text.columns])
    else:
        cols = [_PRETTY.get(c, c) for c in text.columns]
    text.columns = best.columns = cols
    return text, best


def _side_by_side(ours: tuple[pd.DataFrame, pd.DataFrame], paper: tuple[pd.DataFrame, pd.DataFrame]):
    text = pd.concat({"this run": ours[0], "paper (CAMUS)": paper[0]}, names=["source", "model"])
    best = pd.concat({"this run": ours[1], "paper (CAMUS)": paper[1]}, names=["source", "model"])
    return text, best


def table1_side_by_side(mean: pd.DataFrame, sd: pd.DataFrame, phase: str, caption: str):
    """Table 1 at one phase: this run's mean ± sd above the paper's values, best of each source in bold.

    The paper's "LV myocardium" columns are placed under ``MYO (epicardium)``; its ``MYO (ring)`` cells are empty.
    """
    cols = [c for c in mean.columns if c[0] == phase]
    paper = PAPER_TABLE1.reindex(columns=pd.MultiIndex.from_tuples(cols, names=PAPER_TABLE1.columns.names))
    text, best = _side_by_side(format_mean_sd(mean[cols], sd[cols]), format_mean_sd(paper.dropna(how="all")))
    text.columns = best.columns = text.columns.droplevel("phase")
    return style_best(*_display_frame(text, best), caption=caption)


# --------------------------------------------------------------------------------------------------------------
# Table 2: EDV, ESV and EF (Simpson biplane)


def lv_indices(
    sequences: Iterable["EchoSequence"],
    labels_of: Callable[["EchoSequence"], np.ndarray | Mapping[int, np.ndarray] | None],
    *,
    min_volume: float = clinical.MIN_LV_VOLUME_ML,
) -> pd.DataFrame:
    """EDV (mL), ESV (mL) and EF (%) of each patient with both a 2CH and a 4CH sequence.

    Parameters
    ----------
    sequences : sequences of one split; a patient needs both views.
    labels_of : the label maps of a sequence, indexable by frame: a ``(T, H, W)`` prediction, or the manual labels
        ``seq.labels`` (``{frame: (H, W)}``); ``None`` skips the sequence.
    min_volume : the plausibility floor in mL (:data:`echo_utils.clinical.MIN_LV_VOLUME_ML`).

    Returns
    -------
    DataFrame indexed by patient with columns ``EDV, ESV, EF``. The LV cavity (label 1) of each view at its own ED
    and ES frames enters :func:`echo_utils.clinical.lv_volume_biplane`. An empty or unmeasurable cavity, a volume
    below ``min_volume`` and an EF outside [0, 100] are NaN (:func:`echo_utils.clinical.plausible_indices`);
    ``attrs['failed']`` lists ``"<patient>: <reason>"`` for each, and ``attrs['n_missing']`` counts the missing
    values per index, so that they are reported instead of entering a mean absolute error.
    """
    by_patient: dict[str, dict[str, EchoSequence]] = {}
    for seq in sequences:
        by_patient.setdefault(seq.patient, {})[seq.view] = seq
    rows, failed = {}, []
    for patient, views in sorted(by_patient.items()):
        if not {"2CH", "4CH"} <= set(views):
            continue
        s2, s4 = views["2CH"], views["4CH"]
        l2, l4 = labels_of(s2), labels_of(s4)
        if l2 is None or l4 is None:
            continue
        vols = {}
        for phase, attr in (("EDV", "ed"), ("ESV", "es")):
            m2 = np.asarray(l2[getattr(s2, attr)]) == 1
            m4 = np.asarray(l4[getattr(s4, attr)]) == 1
            try:
                vols[phase] = clinical.lv_volume_biplane(m2, m4, s2.spacing, s4.spacing)
            except ValueError:  # an empty or unmeasurable cavity: missing, with its reason below
                vols[phase] = math.nan
        rows[patient], reasons = clinical.plausible_indices(vols["EDV"], vols["ESV"], min_volume=min_volume)
        failed += [f"{patient}: {r}" for r in reasons]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["EDV", "ESV", "EF"]).rename_axis("patient")
    out.attrs["failed"] = failed
    out.attrs["n_missing"] = {q: int(out[q].isna().sum()) for q in out.columns}
    return out


def clinical_indices(
    sequences: Iterable["EchoSequence"], predictions: Mapping[str, Mapping[str, np.ndarray]]
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """:func:`lv_indices` of the manual labels (the reference) and of every model's predictions ``{model: {key:
    (T, H, W)}}``: ``(reference, {model: indices})``. Sequences a model did not predict are skipped for it."""
    sequences = list(sequences)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        reference = lv_indices(sequences, lambda s: s.labels)
        auto = {m: lv_indices(sequences, lambda s, p=p: p.get(s.key)) for m, p in predictions.items()}
    return reference, auto


def recorded_ef_check(reference: pd.DataFrame, sequences: Iterable["EchoSequence"]) -> str | None:
    """A control for the volume computation: the mean |difference| between the Simpson EF of the manual labels and
    the EF recorded with the data (``Info_*.cfg``, ``EF``), as a sentence; ``None`` when the data record none."""
    recorded = {s.patient: float(s.info["EF"]) for s in sequences if "EF" in (s.info or {})}
    common = reference.index.intersection(list(recorded))
    if not len(common):
        return None
    err = (reference.loc[common, "EF"] - pd.Series(recorded)[common]).abs()
    return (f"control: Simpson EF of the manual labels vs the EF recorded with the data: mean |difference| "
            f"{err.mean():.1f} EF points over {int(err.notna().sum())} patients")


def table2(auto: Mapping[str, pd.DataFrame], reference: pd.DataFrame) -> pd.DataFrame:
    """Correlation, bias (auto − reference) and MAE of EDV, ESV and EF for each model.

    ``auto`` maps model -> :func:`lv_indices` table; patients are matched by index, and a value missing on either
    side is left out of that index's statistics. Returns one row per model with columns ``MultiIndex(index,
    stat)``, stat in ``corr, bias, mae, n`` (``n``: patients compared for that index), and ``("missing", q)``: the
    model's missing values of index ``q`` on the patients of the reference. ``attrs['failed']``: ``{model or
    'reference': [reasons]}`` from :func:`lv_indices`, for the models with a missing value.
    """
    rows = {}
    for model, df in auto.items():
        common = df.index.intersection(reference.index)
        row = {}
        for q in ("EDV", "ESV", "EF"):
            a = df.loc[common, q].to_numpy(float)
            r = reference.loc[common, q].to_numpy(float)
            ok = np.isfinite(a) & np.isfinite(r)
            if ok.sum() >= 2:
                stats = clinical.agreement(a[ok], r[ok])
            else:
                stats = {"corr": math.nan, "bias": math.nan, "mae": math.nan}
            row.update({(q, k): float(stats[k]) for k in ("corr", "bias", "mae")})
            row[(q, "n")] = int(ok.sum())
        for q in ("EDV", "ESV", "EF"):
            row[("missing", q)] = int(df[q].reindex(reference.index).isna().sum())
        rows[model] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.columns = pd.MultiIndex.from_tuples(out.columns, names=["index", "stat"])
    out = out.loc[ordered(out.index)].rename_axis("model")
    failed = {"reference": reference.attrs.get("failed", []), **{m: df.attrs.get("failed", []) for m, df in auto.items()}}
    out.attrs["failed"] = {m: f for m, f in failed.items() if f}
    return out


TABLE2_STATISTIC_COLUMN = ("statistic", "MAE columns")
"""The column of :func:`table2_side_by_side` that says, per row, what its ``MAE`` columns report."""


def _with_statistic(formatted: tuple[pd.DataFrame, pd.DataFrame], statistic: pd.Series):
    text, best = formatted[0].copy(), formatted[1].copy()
    text[TABLE2_STATISTIC_COLUMN] = [statistic.get(m, "MAE") for m in text.index]
    best[TABLE2_STATISTIC_COLUMN] = False
    return text, best


def table2_side_by_side(ours: pd.DataFrame, caption: str):
    """Table 2: this run's correlation, bias and MAE above the paper's, best of each source in bold (bias: closest
    to 0). ``ours`` is :func:`table2` output; its counts (``n``, ``missing``) are left to :func:`table2_statements`.
    A last column (:data:`TABLE2_STATISTIC_COLUMN`) states the statistic of each row's ``MAE`` columns: MAE for this
    run, :data:`echo_utils.report.paper.PAPER_TABLE2_STATISTIC` for the paper's rows (CLAS's are printed as MAE by
    the paper but reported as standard deviations by CLAS's README)."""
    values = ours.drop(columns="missing", level=0)
    values = values.loc[:, [c for c in values.columns if c[1] != "n"]]
    values.columns = pd.MultiIndex.from_tuples(list(values.columns), names=ours.columns.names)
    text, best = _side_by_side(_with_statistic(format_mean_sd(values), pd.Series(dtype=object)),
                               _with_statistic(format_mean_sd(PAPER_TABLE2), PAPER_TABLE2_STATISTIC))
    return style_best(*_display_frame(text, best), caption=caption)


def table2_statements(t2: pd.DataFrame, reference: str = "2d_sparse") -> list[str]:
    """Sentences: how many patients each index compares and how many automatic values were implausible (missing,
    with the first reason), and whether each model's EF MAE is smaller than the ``reference`` model's."""
    failed = t2.attrs.get("failed", {})
    out = [f"reference (manual labels): {len(failed['reference'])} missing value(s), e.g. {failed['reference'][0]}"
           ] if failed.get("reference") else []
    for m in t2.index:
        miss = {q: int(t2.loc[m, ("missing", q)]) for q in ("EDV", "ESV", "EF")}
        n = {q: int(t2.loc[m, (q, "n")]) for q in ("EDV", "ESV", "EF")}
        out.append(f"{MODEL_NAMES.get(m, m)}: compared on {n['EDV']} / {n['ESV']} / {n['EF']} patients (EDV / ESV / "
                   f"EF); missing (empty or implausible): {miss['EDV']} / {miss['ESV']} / {miss['EF']}"
                   + (f", e.g. {failed[m][0]}" if failed.get(m) else ""))
    if reference in t2.index:
        b = t2.loc[reference, ("EF", "mae")]
        for m in [m for m in t2.index if m != reference]:
            a = t2.loc[m, ("EF", "mae")]
            if not (np.isfinite(a) and np.isfinite(b)):
                out.append(f"EF MAE: {MODEL_NAMES.get(m, m)} vs {MODEL_NAMES.get(reference, reference)} not comparable "
                           "(fewer than 2 patients with a plausible EF for one of them)")
                continue
            out.append(f"EF MAE: {MODEL_NAMES.get(m, m)} {a:.1f} vs {MODEL_NAMES.get(reference, reference)} {b:.1f} "
                       f"EF points -> {'smaller' if a < b else 'not smaller'} (unrounded: {a:.3f} vs {b:.3f})")
    return out


def volume_errors(auto: Mapping[str, pd.DataFrame], reference: pd.DataFrame) -> pd.DataFrame:
    """Per model and patient, automatic − reference EDV, ESV (mL) and EF (points) of :func:`clinical_indices`:
    where a model's EF error comes from (an ESV overestimated more than the EDV lowers the EF, and so on).

    One row per (model, patient) of the reference's patients, columns ``EDV error``, ``ESV error``, ``EF error``
    (NaN where either side is missing); ``attrs['mae']``: the mean absolute errors per model, as in :func:`table2`.
    """
    frames = {}
    for model, df in auto.items():
        common = reference.index.intersection(df.index)
        frames[model] = pd.DataFrame({f"{q} error": df.loc[common, q].astype(float) - reference.loc[common, q].astype(float)
                                      for q in ("EDV", "ESV", "EF")})
    out = pd.concat(frames, names=["model", "patient"]) if frames else pd.DataFrame(
        columns=["EDV error", "ESV error", "EF error"])
    out.attrs["mae"] = out.abs().groupby(level="model", sort=False).mean() if frames else pd.DataFrame()
    return out


def flatten(table: pd.DataFrame, digits: int = 4) -> dict[str, float]:
    """``{"row|col1|col2...": value}`` of every finite cell, rounded to ``digits`` decimals: the key numbers of a
    table for a run's JSON summary."""
    out = {}
    for row, values in table.iterrows():
        for col, v in values.items():
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and np.isfinite(v):
                key = "|".join(map(str, (row, *(col if isinstance(col, tuple) else (col,)))))
                out[key] = round(float(v), digits)
    return out
