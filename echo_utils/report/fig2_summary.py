"""Fig. 2 summarised: per-video medians beside the paper's, the 2D sparse nnU-Net added, and computed verdicts.

Notebook 03 scores the pseudo-labels (:mod:`echo_utils.report.fig2`); notebook 05 adds the 2D sparse nnU-Net's
predictions of the same sequences, as the paper's Fig. 2 does. The functions here put those per-video scores side
by side with the paper's medians and state, from the run, whether the bidirectional labels beat each competitor
and whether they beat the identity-registration control (the same fusion without any motion).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from ..labels import NAMES, STRUCTURE_NAMES
from .fig2 import per_video, score_pseudo_labels
from .paper import FIG2_KINDS, PAPER_FIG2_MEDIANS, verdict

__all__ = [
    "FIG2_PREDICTION_FOLDERS",
    "nnunet_fig2_scores",
    "fig2_videos",
    "load_fig2",
    "fig2_medians",
    "fig2_side_by_side",
    "direction_statements",
    "control_statements",
    "fig2_statements",
    "fig2_view",
]

FIG2_PREDICTION_FOLDERS = ("2d_sparse", "2d_sparse_train", "2d_sparse_fig2")
"""Where notebook 04 writes the 2D sparse model's predictions, under ``<run>/predictions/``: the test sequences,
the training and validation sequences, and any other Fig. 2 sequence (e.g. TED on the paper profile)."""


def nnunet_fig2_scores(paths, sequences: Iterable) -> tuple[pd.DataFrame | None, list[str]]:
    """Per-frame Fig. 2 scores (:func:`echo_utils.report.fig2.score_pseudo_labels`, ``kind='2d_sparse'``,
    ``method='nnunet'``) of the 2D sparse nnU-Net's saved predictions of ``sequences``, and the keys with no
    prediction in any of :data:`FIG2_PREDICTION_FOLDERS`. Reads only; notebook 04 predicts."""
    from ..segmentation.predict import load_prediction, prediction_path

    labels, missing, seqs = {}, [], []
    for s in sequences:
        folder = next((f for f in FIG2_PREDICTION_FOLDERS if prediction_path(paths, f, s).is_file()), None)
        if folder is None:
            missing.append(s.key)
            continue
        labels[s.key] = {"2d_sparse": load_prediction(paths, folder, s)}
        seqs.append(s)
    if not seqs:
        return None, missing
    return score_pseudo_labels(seqs, labels, method="nnunet", progress=False), missing


def fig2_videos(pseudo_scores: pd.DataFrame, nnunet_scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-video means (over the frames from ED to ES) of the pseudo-label scores of notebook 03, with the 2D sparse
    nnU-Net's scores on the same sequences appended as ``kind='2d_sparse'`` (the paper's Fig. 2 comparison).

    Both inputs are :func:`echo_utils.report.fig2.score_pseudo_labels` tables (one row per frame), or already per
    video.
    """
    parts = [per_video(df) if "frame" in df.columns else df
             for df in (pseudo_scores, nnunet_scores) if df is not None and not df.empty]  # fmt: skip
    if not parts:
        raise ValueError("no pseudo-label scores to summarise")
    return pd.concat(parts, ignore_index=True)


def load_fig2(study) -> tuple[pd.DataFrame | None, pd.DataFrame | None, list[str]]:
    """Fig. 2 of a study's run (:class:`echo_utils.study.Study`), completed: ``(videos, pseudo_scores, notes)``.

    Reads notebook 03's ``metrics/pseudo_label_scores.csv`` (every registration method), keeps the profile's method
    (``registration.method``), and adds the 2D sparse nnU-Net's saved predictions of the same sequences
    (:func:`nnunet_fig2_scores`, on the study's evaluation set). ``videos`` is :func:`fig2_videos` output; ``notes``
    say what is missing. Returns ``(None, None, notes)`` when notebook 03 has not run (no sequence is read then).
    Predicts nothing.
    """
    from ..artifacts.files import PSEUDO_LABEL_SCORES

    paths, method = study.paths, study.cfg.registration.method
    score_file = paths.metrics / PSEUDO_LABEL_SCORES
    if not score_file.is_file():
        return None, None, [f"{score_file} is missing: run notebook 03 first. Fig. 2 is skipped."]
    from ..safe_load import read_table, rerun_hint
    from ..study.cohort import evaluation_sequences

    pseudo = read_table(score_file, columns=("method", "key"), rebuild=lambda: rerun_hint(score_file, "03"))
    pl = pseudo[pseudo["method"] == method]
    keys = set(pl["key"])
    seqs = [s for s in evaluation_sequences(study) if s.key in keys]
    nn_scores, missing = nnunet_fig2_scores(paths, seqs)
    notes = [f"{len(keys)} sequences scored by notebook 03 ({method})"]
    if missing:
        notes.append(f"no saved 2D sparse prediction for {len(missing)} of the {len(seqs)} Fig. 2 sequences "
                     f"(notebook 04 predicts them), e.g. {missing[0]}")
    return fig2_videos(pl, nn_scores), pseudo, notes


def fig2_medians(videos: pd.DataFrame, structures: Iterable[str] = ("LV", "MYO")) -> pd.DataFrame:
    """Median per-video scores in the layout of :data:`echo_utils.report.paper.PAPER_FIG2_MEDIANS`: rows the kinds
    (2D sparse, bidirectional, forward, backward), columns ``(structure, metric)`` with ``dice, mad_px, hd_px``."""
    cols = list(PAPER_FIG2_MEDIANS.columns.get_level_values("metric").unique())
    med = videos[videos["structure"].isin(list(structures))].groupby(["kind", "structure"])[cols].median()
    wide = med.unstack("structure").swaplevel(axis=1)
    wide.columns.names = ["structure", "metric"]
    kinds = [k for k in FIG2_KINDS if k in wide.index] + sorted(set(wide.index) - set(FIG2_KINDS))
    order = [(s, m) for s in structures for m in cols if (s, m) in wide.columns]
    return wide.loc[kinds, order]


def fig2_side_by_side(videos: pd.DataFrame, caption: str, *, label: str = "this run"):
    """A Styler: this run's Fig. 2 medians (:func:`fig2_medians`) above the paper's, kinds by display name."""
    both = pd.concat({label: fig2_medians(videos), "paper (TED, 94 videos)": PAPER_FIG2_MEDIANS},
                     names=["source", "kind"])  # fmt: skip
    both = both.rename(index=lambda k: NAMES.get(k, k), level="kind")
    return both.style.format("{:.3f}", na_rep="–").set_caption(caption)


def direction_statements(videos: pd.DataFrame, structures: Iterable[str] = ("LV", "MYO"),
                         others: Iterable[str] = ("forward", "backward", "2d_sparse")) -> list[str]:
    """Sentences, computed from the run, on whether the bidirectional pseudo-labels beat each of ``others``
    (median per-video Dice higher and median HD in px lower), as the paper's Fig. 2 found."""
    out = []
    med = videos.groupby(["structure", "kind"])[["dice", "hd_px"]].median()
    for s in structures:
        if s not in med.index.get_level_values(0):
            continue
        m = med.loc[s]
        if "bidirectional" not in m.index:
            continue
        b = m.loc["bidirectional"]
        for other in [o for o in others if o in m.index]:
            o = m.loc[other]
            word = verdict(b["dice"] > o["dice"], b["hd_px"] < o["hd_px"])
            name = NAMES.get(other, other) + (" nnU-Net" if other == "2d_sparse" else "")
            out.append(f"{STRUCTURE_NAMES[s]}: bidirectional {word} {name} (median Dice {b['dice']:.3f} vs "
                       f"{o['dice']:.3f}; median HD {b['hd_px']:.1f} vs {o['hd_px']:.1f} px at 512)")
    return out


def control_statements(pseudo_scores: pd.DataFrame, method: str, *, control: str = "identity",
                       structures: Iterable[str] = ("LV", "MYO"), tol: float = 1e-3) -> list[str]:
    """Sentences comparing the bidirectional labels of registration ``method`` with those of the ``control``
    registration (the identity: Eq. 1 alone interpolating between the ED and ES shapes), by median per-video Dice.
    Only that difference measures what the registration adds. Empty when the scores hold no control rows."""
    if "method" not in pseudo_scores.columns or not {method, control} <= set(pseudo_scores["method"]):
        return []
    sub = pseudo_scores[pseudo_scores["method"].isin([method, control]) & (pseudo_scores["kind"] == "bidirectional")]
    videos = per_video(sub) if "frame" in sub.columns else sub
    m = videos.groupby(["structure", "method"])["dice"].median().unstack()
    out = []
    for s in [x for x in structures if x in m.index]:
        a, b = m.loc[s, method], m.loc[s, control]
        gain = "adds accuracy" if a > b + tol else "adds NOTHING here: the gain is shape interpolation"
        out.append(f"{STRUCTURE_NAMES[s]}: bidirectional with {NAMES.get(method, method)} {a:.3f} vs with "
                   f"{NAMES.get(control, control)} {b:.3f} median Dice -> the registration {gain}")
    return out


def fig2_statements(videos: pd.DataFrame, pseudo_scores: pd.DataFrame, method: str) -> list[str]:
    """Every computed Fig. 2 sentence of a run: :func:`direction_statements` of ``videos`` (:func:`load_fig2`), then
    :func:`control_statements` of registration ``method`` in ``pseudo_scores``."""
    return direction_statements(videos) + control_statements(pseudo_scores, method)


def fig2_view(lines: Iterable[str], videos: pd.DataFrame, *, label: str = "this run") -> tuple:
    """What notebook 05 shows after Fig. 2: the computed ``lines`` (:func:`fig2_statements`) as an IPython
    ``Markdown``, then :func:`fig2_side_by_side` of ``videos`` (this run's row labelled ``label``)."""
    from IPython.display import Markdown

    text = Markdown("**Computed from this run** (medians over sequences):\n\n" + "\n".join(f"- {l}" for l in lines))
    table = fig2_side_by_side(
        videos, caption="Median per-video scores (Dice; MAD and HD in px at 512×512) of this run and of the paper's "
                        "Fig. 2 on 94 TED sequences, read off the figure", label=label)
    return text, table
