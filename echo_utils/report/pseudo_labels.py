"""What notebook 03 shows of the pseudo-labels: the store's summary, the example sequence, the score tables with
their captions, the mode and assembly comparisons, the yardstick and the time per pair, in sentences and tables.

:func:`store_summary` says what :func:`echo_utils.pseudolabels.generate_pseudo_labels` read back from its store
(the store itself prints nothing). The other functions take the study's pseudo-label sets
(``{registration name: {sequence key: PseudoLabels}}``, :func:`echo_utils.pseudolabels.compare.study_pseudo_labels`)
and the evaluation sequences, and return what the notebook displays: strings, tables (pandas) and styled tables
(``pandas.io.formats.style.Styler``, with their captions), figures (plotly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..artifacts import files
from ..config import display_path
from . import fig2

__all__ = ["MODE_SETS", "store_summary", "labels_statement", "example_sequence", "sequence_statement", "score_sets",
           "write_scores", "fig2_figures", "direction_table", "assembly_comparison", "mode_scores",
           "mid_sequence_table", "registration_table", "shared_keys", "label_comparison_table", "yardstick",
           "pair_time_statement"]

#: The propagation modes each registration is compared in (notebook 03, "Which propagation mode?").
MODE_SETS = {"dlir": ("sequential", "composed", "fixed"), "instance": ("sequential", "composed"),
             "identity": ("sequential",)}
#: Timed pairs per registration for the time per pair: a per-pair optimiser (a reference) gets fewer.
TIMED_PAIRS = {"reference": 2, "network": 8}
#: The phase bins of "mid-sequence" in :func:`echo_utils.report.fig2.phase_curve`'s ten bins (phase 0.4 to 0.6).
MID_BINS = (4, 5)


def store_summary(sets) -> list[str]:
    """One line per pseudo-label set that was read back from its store, e.g.
    ``pseudo-labels (dlir): 36/36 sequences read from runs/demo/pseudo_labels/dlir``, then one per sequence whose
    damaged files were computed again.

    ``sets`` is one :class:`~echo_utils.pseudolabels.store.PseudoLabelSet` or a mapping of them (what
    :func:`echo_utils.pseudolabels.compare.study_pseudo_labels` returns); sets computed in memory, or with nothing
    read back, say nothing (a plain dict too).
    """
    items = [sets] if hasattr(sets, "read_back") else list(sets.values()) if isinstance(sets, Mapping) else list(sets)
    lines = []
    for s in items:
        read, again = getattr(s, "read_back", ()), getattr(s, "recomputed", ())
        if read:
            lines.append(f"pseudo-labels ({s.method}): {len(read)}/{s.n_sequences} sequences read from "
                         f"{display_path(s.out_dir)}")
        lines += [f"pseudo-labels ({s.method}): {key} computed again (its stored files were damaged)" for key in again]
    return lines


def labels_statement(labels: Mapping[str, Mapping], seconds: float) -> str:
    """``pseudo-labels of dlir: 48 sequences, identity: 18 sequences in 74.0 s (cached ones are read back)``."""
    return (f"pseudo-labels of {', '.join(f'{k}: {len(v)} sequences' for k, v in labels.items())} in "
            f"{seconds:.1f} s (cached ones are read back)")


def example_sequence(sequences: Sequence) -> tuple[object, dict[str, int]]:
    """The longest sequence (the most room for drift; the first of equals) and its frames ``{"ED", "mid-sequence",
    "ES"}`` (mid-sequence = ``(ed + es) // 2``)."""
    seq = max(sequences, key=lambda s: s.n_frames)
    return seq, {"ED": seq.ed, "mid-sequence": (seq.ed + seq.es) // 2, "ES": seq.es}


def sequence_statement(seq) -> str:
    """``patient0007_2CH: 30 frames of 128×128 px, ED = frame 0, ES = frame 29``."""
    return (f"{seq.key}: {seq.n_frames} frames of {seq.shape[0]}×{seq.shape[1]} px, ED = frame {seq.ed}, "
            f"ES = frame {seq.es}")


def score_sets(sequences: Sequence, labels: Mapping[str, Mapping], **kw) -> pd.DataFrame:
    """:func:`~echo_utils.report.fig2.score_pseudo_labels` of every set of ``labels`` on the ``sequences`` it holds
    (``method`` = the set's name), one table; ``kw`` go to it (``classes``, ``progress``)."""
    return pd.concat([fig2.score_pseudo_labels([s for s in sequences if s.key in lab], lab, method=name, **kw)
                      for name, lab in labels.items()], ignore_index=True)


def write_scores(metrics_dir: str | Path, scores: pd.DataFrame, videos: pd.DataFrame) -> str:
    """Write the frame scores and the per-video means under ``metrics_dir`` (``files.PSEUDO_LABEL_SCORES``,
    ``files.PSEUDO_LABEL_VIDEOS``, the tables notebook 05 reads) and say so in one line."""
    path = Path(metrics_dir) / files.PSEUDO_LABEL_SCORES
    scores.to_csv(path, index=False)
    videos.to_csv(Path(metrics_dir) / files.PSEUDO_LABEL_VIDEOS, index=False)
    return f"{len(scores)} frame scores, {len(videos)} video means -> {display_path(path)}"


def fig2_figures(videos: pd.DataFrame, method: str) -> list:
    """Fig. 2 of ``method``'s per-video scores (:func:`echo_utils.report.figures.fig2_figure`), in pixels at
    512×512 (the paper's unit) and in mm, titled."""
    from .figures import fig2_figure

    n = videos["key"].nunique()
    return [fig2_figure(videos, unit=unit, title=f"Fig. 2 ({method}): per-video mean Dice, MAD and HD over ED→ES, "
                        f"{'pixels at 512×512' if unit == 'px' else 'mm'} ({n} unseen sequences)")
            for unit in ("px", "mm")]


def direction_table(videos: pd.DataFrame, method: str):
    """The medians of each direction and the paired Wilcoxon p-values (:func:`~echo_utils.report.fig2.
    compare_directions`) of ``method``'s per-video scores, styled and captioned."""
    table = fig2.compare_directions(videos).set_index(["structure", "metric"])
    show = table[["n_videos", "median_forward", "median_backward", "median_bidirectional",
                  "p_bidirectional_vs_forward", "p_bidirectional_vs_backward"]]
    return (show.style.format({c: "{:.3f}" for c in show.columns if c != "n_videos"})
            .format({c: "{:.2g}" for c in show.columns if c.startswith("p_")})
            .set_caption(f"Medians over {videos['key'].nunique()} videos ({method}); p: paired two-sided Wilcoxon, "
                         "bidirectional vs each direction"))


def assembly_comparison(sequences: Sequence, labels: Mapping, method: str, weights: str = "authors"):
    """The assembly rules (:func:`echo_utils.pseudolabels.compare.assembly_variants`) on ``method``'s forward and
    backward ``labels`` (``{key: PseudoLabels}``): the styled table of median per-video scores and the lines the
    notebook prints (the background pixels each rule leaves inside the heart, then the sdf-vs-argmax verdicts)."""
    from ..pseudolabels import compare

    variants = compare.assembly_variants(sequences[0].shape[1], weights)
    refused = compare.fuse_variants(sequences, labels, variants)
    videos = fig2.per_video(fig2.score_pseudo_labels(sequences, refused, classes=(1, 2), method=method,
                                                     progress=False))
    table = fig2.assembly_table(videos, variants).style.format("{:.3f}").set_caption(
        "Median per-video Dice / HD / MAD (px at 512) of the bidirectional pseudo-labels under each assembly rule")
    lines = ["pixels inside the heart in both directions but assigned to background: "
             f"{compare.unclaimed_pixels(sequences, labels, refused)}", *fig2.assembly_statements(videos)]
    return table, lines


def mode_scores(registrations: Mapping, sequences: Sequence, labels: Mapping[str, Mapping], root: str | Path,
                cfg_pl, modes: Mapping[str, Sequence[str]] = MODE_SETS) -> pd.DataFrame:
    """Frame scores (LV, MYO) of each registration's pseudo-labels in each of its ``modes``
    (:func:`echo_utils.pseudolabels.compare.mode_pseudo_labels`, cached under ``root``), on the sequences its set in
    ``labels`` holds, with a ``mode`` column: what :func:`echo_utils.report.fig2.mode_table` tabulates."""
    from ..pseudolabels import compare

    by_mode = compare.mode_pseudo_labels(registrations, {m: [s for s in sequences if s.key in labels[m]]
                                                         for m in labels}, modes, root, cfg_pl)
    return pd.concat([fig2.score_pseudo_labels([s for s in sequences if s.key in lab], lab, classes=(1, 2),
                                               method=name, progress=False).assign(mode=mode)
                      for (name, mode), lab in by_mode.items()], ignore_index=True)


def mid_sequence_table(curve: pd.DataFrame, bins: Sequence[int] = MID_BINS):
    """Mean Dice per structure and kind in the mid-sequence ``bins`` of :func:`~echo_utils.report.fig2.phase_curve`,
    styled and captioned."""
    mid = curve[curve["bin"].isin(list(bins))].groupby(["structure", "kind"])["dice"].mean().unstack()
    return mid.style.format("{:.3f}").set_caption("Mean Dice at mid-sequence (phase 0.4 to 0.6)")


def registration_table(videos: pd.DataFrame, sequences: Sequence, method: str):
    """:func:`echo_utils.report.fig2.registration_table` on the evaluation ``sequences``, styled and captioned."""
    n = videos.loc[videos["method"] == method, "key"].nunique()
    return fig2.registration_table(videos, [s.key for s in sequences]).style.format("{:.3f}").set_caption(
        f"Median per-video scores over the evaluation sequences each registration processed (px at 512; {n} for "
        f"{method}); rows: bidirectional pseudo-labels of each registration, and the identity's forward propagation "
        "(= the ED label copied to every frame)")


def shared_keys(sequences: Sequence, labels: Mapping[str, Mapping]) -> list[str]:
    """The keys of the ``sequences`` that every set of ``labels`` holds (the paired subset), in order."""
    return [s.key for s in sequences if all(s.key in lab for lab in labels.values())]


def label_comparison_table(long: pd.DataFrame, subset: Sequence[str]):
    """:func:`echo_utils.report.registration_comparison.label_comparison_table` of the paired ``subset``, styled
    and captioned."""
    from .registration_comparison import label_comparison_table as table

    return table(long).style.format("{:.3f}").set_caption(
        f"Paired on the {len(subset)} sequences every registration processed ({', '.join(subset)}): median per-video "
        "Dice and HD (px at 512) of the forward, backward and bidirectional pseudo-labels")


def yardstick(metrics_dir: str | Path) -> tuple[str | None, str]:
    """The yardstick notebook 02 found on the consecutive-frame end-point error (the best reference that beats the
    identity; :func:`echo_utils.registration.evidence.summary_yardstick`) and the line that says it; ``None`` on real
    data, where notebook 02 wrote no comparison."""
    from ..registration import evidence

    comparison = evidence.load_comparison(metrics_dir)
    yard = None if comparison is None else evidence.summary_yardstick(comparison, "step")
    return yard, ("yardstick from notebook 02's end-point error: "
                  + ("none (no comparison on real data)" if comparison is None else str(yard)))


def pair_time_statement(registrations: Mapping, seq, method: str) -> str:
    """Wall time per image pair of every registration but the identity on ``seq``'s consecutive frames, measured now
    (:func:`echo_utils.registration.evidence.pair_seconds`: the references on fewer pairs), as multiples of
    ``method``'s."""
    from ..registration import evidence

    n = {k: TIMED_PAIRS["reference" if k in evidence.REFERENCES else "network"] for k in registrations}
    timing = evidence.pair_seconds({k: r for k, r in registrations.items() if k != "identity"}, seq.images, n)
    return (f"time per image pair ({seq.shape[0]}×{seq.shape[1]} px, this run): "
            + ", ".join(f"{k} {v * 1000:.1f} ms ({v / timing[method]:.0f}× {method})" for k, v in timing.items()))
