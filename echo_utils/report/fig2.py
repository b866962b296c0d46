"""Fig. 2 of the paper: pseudo-labels scored against a dense reference, per frame, per video, and compared.

:func:`score_pseudo_labels` scores every kind (forward, backward, bidirectional) of every sequence from ED to ES,
in mm and in pixels at 512 x 512 (the unit of the paper's Fig. 2); :func:`per_video` averages over the frames of
each video as the paper does; :func:`compare_directions` gives the medians and the paired two-sided Wilcoxon tests
of the bidirectional labels against each direction.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping

import numpy as np

__all__ = ["score_pseudo_labels", "per_video", "compare_directions"]


def score_pseudo_labels(
    sequences: Iterable,
    labels: Mapping[str, PseudoLabels],
    *,
    classes: tuple[int, ...] = (1, 2, 3),
    method: str = "dlir",
    reference_size: int = 512,
    progress: bool = True,
) -> "pd.DataFrame":  # noqa: F821
    """Per-frame scores of every kind against the dense reference, over the frames from ED to ES (Fig. 2).

    Uses :func:`echo_utils.metrics.score_sequence` (its contour and empty-mask conventions) twice: in mm with the
    sequence's spacing, and in pixels of the image resized to ``reference_size`` x ``reference_size`` (spacing
    ``(512/H, 512/W)``), the unit of the paper's Fig. 2.

    Returns a long table, one row per (sequence, kind, structure, frame): ``patient, view, key, method, kind,
    structure`` ('LV', 'MYO' ring, 'EPI' = LV + MYO, 'LA'), ``frame`` (index in the sequence), ``phase`` (0 at ED,
    1 at ES), ``dice``, ``hd_mm``, ``mad_mm``, ``hd_px``, ``mad_px``. A structure absent from the dense reference
    of a sequence between ED and ES (e.g. LA in TED) is left out for that sequence.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .. import metrics

    tables = []
    for seq in tqdm(list(sequences), desc=f"scoring ({method})", disable=not progress, unit="seq"):
        key = getattr(seq, "key", None) or f"{seq.patient}_{seq.view}"
        if seq.dense is None:
            raise ValueError(f"{key}: no dense reference to score pseudo-labels against")
        if key not in labels:
            raise KeyError(f"{key}: no pseudo-labels were generated for this sequence")
        ed, es = int(seq.ed), int(seq.es)
        step = 1 if es > ed else -1
        frames = np.arange(ed, es + step, step)
        ref = np.asarray(seq.dense)[frames]
        present = tuple(c for c in classes if (ref == c).any())
        h, w = ref.shape[1:]
        px = (reference_size / h, reference_size / w)
        sy, sx = (float(v) for v in seq.spacing)
        # px-at-512 distances are mm distances times one factor when both spacings have the same aspect ratio
        # (square pixels on a square image, e.g.); otherwise the contours are measured a second time.
        scale = px[0] / sy if np.isclose(px[0] / sy, px[1] / sx, rtol=1e-9) else None
        for kind, pred in labels[key].items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", metrics.EmptyMaskWarning)  # NaN frames are counted by the caller
                mm = metrics.score_sequence(pred[frames], ref, seq.spacing, classes=present)
                pxt = None if scale else metrics.score_sequence(pred[frames], ref, px, classes=present)
            t = mm.rename(columns={"hd": "hd_mm", "mad": "mad_mm"}).drop(columns=["pred_px", "ref_px"])
            t["hd_px"] = t["hd_mm"] * scale if scale else pxt["hd"].to_numpy()
            t["mad_px"] = t["mad_mm"] * scale if scale else pxt["mad"].to_numpy()
            t["phase"] = t["frame"] / max(len(frames) - 1, 1)
            t["frame"] = frames[t["frame"].to_numpy()]
            t.insert(0, "kind", kind)
            t.insert(0, "method", method)
            t.insert(0, "key", key)
            t.insert(0, "view", seq.view)
            t.insert(0, "patient", seq.patient)
            tables.append(t)
    cols = ["patient", "view", "key", "method", "kind", "frame", "structure", "dice", "hd_mm", "mad_mm",
            "hd_px", "mad_px", "phase"]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=cols)


def per_video(scores: "pd.DataFrame") -> "pd.DataFrame":  # noqa: F821
    """Average :func:`score_pseudo_labels` rows over the frames of each video (NaN frames skipped), as the paper:
    :func:`echo_utils.metrics.average_per_video` grouped by ``patient, view, key, method, kind, structure``
    (columns ``dice, hd_mm, mad_mm, hd_px, mad_px, n_frames, n_nan_hd``)."""
    from .. import metrics

    return metrics.average_per_video(scores, keys=["patient", "view", "key", "method", "kind", "structure"])


def compare_directions(
    videos: "pd.DataFrame",  # noqa: F821
    *,
    metrics_: tuple[str, ...] = ("dice", "hd_mm", "mad_mm", "hd_px", "mad_px"),
    reference: str = "bidirectional",
) -> "pd.DataFrame":  # noqa: F821
    """Medians per (method, structure, kind) and a paired two-sided Wilcoxon test of ``reference`` against each kind.

    ``videos``: :func:`per_video` output, one row per (key, method, kind, structure). Returns one
    row per (method, structure, metric) with the median of each kind and the Wilcoxon p-value of
    ``reference`` vs every other kind (NaN when fewer than 2 videos or all differences are zero).
    """
    import pandas as pd
    from scipy.stats import wilcoxon

    rows = []
    for (method, structure), g in videos.groupby(["method", "structure"], sort=False):
        wide = {m: g.pivot_table(index="key", columns="kind", values=m) for m in metrics_}
        for m, tab in wide.items():
            row = {"method": method, "structure": structure, "metric": m, "n_videos": len(tab)}
            for kind in tab.columns:
                row[f"median_{kind}"] = float(tab[kind].median())
            for kind in tab.columns:
                if kind == reference or reference not in tab.columns:
                    continue
                pair = tab[[reference, kind]].dropna()
                diff = pair[reference] - pair[kind]
                if len(pair) < 2 or np.allclose(diff, 0):
                    p = np.nan
                else:
                    p = float(wilcoxon(pair[reference], pair[kind]).pvalue)
                row[f"p_{reference}_vs_{kind}"] = p
            rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------------------
# The chapter's comparisons: propagation modes, assembly rules, error against time, registrations
# ----------------------------------------------------------------------------------------------------------------


def mode_table(scores: "pd.DataFrame", structures=("LV", "MYO")) -> "pd.DataFrame":  # noqa: F821
    """Median per-video Dice and HD (px at 512) by ``(method, mode)`` rows and ``(metric, structure, kind)`` columns,
    from :func:`score_pseudo_labels` rows with a ``mode`` column."""
    from ..pseudolabels.propagate import KINDS

    sub = scores[scores["structure"].isin(list(structures))]
    mv = sub.groupby(["method", "mode", "kind", "structure", "key"])[["dice", "hd_px"]].mean().reset_index()
    table = mv.groupby(["method", "mode", "kind", "structure"])[["dice", "hd_px"]].median()
    table = table.unstack("structure").unstack("kind")
    cols = [(m, s, k) for m in ("dice", "hd_px") for s in structures for k in KINDS]
    return table[[c for c in cols if c in table.columns]]


def mode_statements(table: "pd.DataFrame", method: str, configured: str) -> list[str]:  # noqa: F821
    """Sentences from :func:`mode_table`: each registration's sequential forward LV Dice against the identity's,
    composed against sequential, and the best mode of ``method`` by the mean of its median bidirectional LV and MYO
    Dice (next to the ``configured`` mode)."""
    out = []
    lv = ("dice", "LV", "forward")
    if ("identity", "sequential") in table.index:
        ident = table.loc[("identity", "sequential")]
        for name in ("dlir", "instance"):
            if (name, "sequential") in table.index:
                r = table.loc[(name, "sequential")]
                gain = r[lv] - ident[lv]
                out.append(f"{name}: sequential forward LV Dice {r[lv]:.3f} vs identity {ident[lv]:.3f} "
                           f"(gain {gain:+.3f})"
                           + (": its forward labels barely move, as if the ED label were copied" if abs(gain) < 0.005
                              else ""))
    bi_lv, bi_myo, hd_myo = ("dice", "LV", "bidirectional"), ("dice", "MYO", "bidirectional"), \
        ("hd_px", "MYO", "bidirectional")
    for name in ("dlir", "instance"):
        if (name, "composed") in table.index and (name, "sequential") in table.index:
            c, s = table.loc[(name, "composed")], table.loc[(name, "sequential")]
            out.append(f"{name}: composed vs sequential, median forward LV Dice {c[lv]:.3f} vs {s[lv]:.3f}; "
                       f"bidirectional LV Dice {c[bi_lv]:.3f} vs {s[bi_lv]:.3f}; bidirectional MYO HD "
                       f"{c[hd_myo]:.1f} vs {s[hd_myo]:.1f} px")
    score = {m: float(table.loc[(method, m), [bi_lv, bi_myo]].mean())
             for (name, m) in table.index if name == method}
    if score:
        best = max(score, key=score.get)
        out.append(f"{method}: best mode by mean of the median bidirectional LV and MYO Dice: {best!r} ("
                   + ", ".join(f"{m} {v:.3f}" for m, v in score.items()) + f"); the profile uses {configured!r}")
    return out


def assembly_table(videos: "pd.DataFrame", order, structures=("LV", "MYO", "EPI")) -> "pd.DataFrame":  # noqa: F821
    """Median per-video Dice / HD / MAD (px at 512), one row per assembly variant (``kind``) in ``order``."""
    sub = videos[videos["structure"].isin(list(structures))]
    table = sub.groupby(["structure", "kind"], sort=False)[["dice", "hd_px", "mad_px"]].median().unstack("structure")
    return table.reindex(list(order))


def assembly_statements(videos: "pd.DataFrame", rule: str = "sdf", other: str = "argmax",  # noqa: F821
                        structures=("LV", "MYO")) -> list[str]:
    """Whether ``rule`` is at least as good as ``other`` on median per-video Dice and HD, per structure."""
    med = videos.groupby(["structure", "kind"])[["dice", "hd_px"]].median()
    out = []
    for s in structures:
        a, b = med.loc[(s, rule)], med.loc[(s, other)]
        out.append(f"{s}: {rule} vs {other}: median Dice {a['dice']:.3f} vs {b['dice']:.3f} "
                   f"({'at least as good' if a['dice'] >= b['dice'] else 'worse'}), median HD {a['hd_px']:.1f} vs "
                   f"{b['hd_px']:.1f} px ({'at least as good' if a['hd_px'] <= b['hd_px'] else 'worse'})")
    return out


def phase_curve(scores: "pd.DataFrame", method: str, bins: int = 10, structures=("LV", "MYO")):  # noqa: F821
    """Mean per-frame Dice of ``method`` in ``bins`` bins of the propagation phase (0 = ED, 1 = ES), per structure and
    kind: columns ``structure, kind, bin, dice, phase`` (``phase`` the bin centre)."""
    s = scores[(scores["method"] == method) & scores["structure"].isin(list(structures))].copy()
    s["bin"] = np.minimum((s["phase"] * bins).astype(int), bins - 1)
    curve = s.groupby(["structure", "kind", "bin"])["dice"].mean().reset_index()
    curve["phase"] = (curve["bin"] + 0.5) / bins
    return curve


def registration_table(videos: "pd.DataFrame", keys, structures=("LV", "MYO")) -> "pd.DataFrame":  # noqa: F821
    """Median per-video Dice / HD / MAD (px at 512) on the sequences ``keys``: the bidirectional labels of every
    registration, and the identity's forward labels (the ED label copied to every frame) as ``identity (forward)``.
    """
    import pandas as pd

    sub = videos[videos["structure"].isin(list(structures)) & videos["key"].isin(set(keys))]
    bi = sub[sub["kind"] == "bidirectional"]
    fw = sub[(sub["method"] == "identity") & (sub["kind"] == "forward")].assign(method="identity (forward)")
    return pd.concat([bi, fw]).groupby(["structure", "method"])[["dice", "hd_px", "mad_px"]].median() \
        .unstack("structure")


# ----------------------------------------------------------------------------------------------------------------
# The chapter's figures
# ----------------------------------------------------------------------------------------------------------------


def _image_axes(fig, n: int) -> None:
    for j in range(1, n + 1):
        fig.update_xaxes(showticklabels=False, row=1, col=j)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{j if j > 1 else ''}", showticklabels=False, row=1, col=j)


def contours_figure(seq, labels, frames: dict, *, label: int = 1):
    """The truth and the three pseudo-labels of one class as contours on the images of ``frames`` (``{title:
    index}``): forward dashed, backward dotted, bidirectional solid, truth white."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from ..labels import DIRECTION_COLORS
    from ..pseudolabels.propagate import KINDS
    from .figures import label_contour_traces

    styles = {"truth": ("#ffffff", "solid"), **{k: (DIRECTION_COLORS[k], d) for k, d in zip(KINDS, ("dash", "dot", "solid"))}}
    fig = make_subplots(rows=1, cols=len(frames), subplot_titles=[f"{k} (frame {v})" for k, v in frames.items()],
                        horizontal_spacing=0.02)
    for j, fr in enumerate(frames.values(), 1):
        fig.add_trace(go.Heatmap(z=seq.images[fr], colorscale="gray", showscale=False, hoverinfo="skip"), 1, j)
        for src, lab in {"truth": seq.dense[fr], **{k: labels[k][fr] for k in KINDS}}.items():
            for tr in label_contour_traces(lab, classes=(label,), name=src, dash=styles[src][1],
                                           colors={label: styles[src][0]}, showlegend=j == 1, legendgroup=src):
                fig.add_trace(tr, 1, j)
    _image_axes(fig, len(frames))
    return fig


def eq1_figure(seq, labels, start: int, end: int, frame: int, *, weights: str = "authors", label: int = 1,
               lim: float = 15.0):
    """Eq. 1 at one ``frame`` for one class: the signed distances (px, clipped at ``±lim``) of the forward and the
    backward label, their weighted sum (:func:`echo_utils.pseudolabels.fuse.fused_signed_distance`) with the truth's
    contour, and both phase conventions' weights over the frames ``start..end``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from ..labels import DIRECTION_COLORS
    from ..pseudolabels.fuse import fused_signed_distance, fusion_weights, signed_distance
    from .figures import label_contour_traces

    k = frame - start
    wf, wb = fusion_weights(end - start + 1, weights)
    fused = fused_signed_distance(labels.forward[start:end + 1], labels.backward[start:end + 1], label,
                                  weights=weights)[k]
    maps = [signed_distance(labels.forward[frame] == label), signed_distance(labels.backward[frame] == label), fused]
    fig = make_subplots(rows=1, cols=4, column_widths=[0.22, 0.22, 0.22, 0.34], horizontal_spacing=0.04,
                        subplot_titles=["d(forward)", "d(backward)", f"fused: {wf[k]:.2f}·d_f + {wb[k]:.2f}·d_b",
                                        "weights over the sequence"])
    for j, z in enumerate(maps, 1):
        fig.add_trace(go.Heatmap(z=np.clip(z, -lim, lim), colorscale="RdBu", zmid=0, zmin=-lim, zmax=lim,
                                 showscale=j == 3, colorbar=dict(title="px", x=0.63, len=0.8)), 1, j)
        for tr in label_contour_traces(seq.dense[frame], classes=(label,), colors={label: "#000000"}, name="truth",
                                       showlegend=j == 1, legendgroup="truth"):
            fig.add_trace(tr, 1, j)
    _image_axes(fig, 3)
    for conv, dash in (("authors", "solid"), ("paper", "dot")):
        for name, kind, w in zip(("cos²", "sin²"), ("forward", "backward"), fusion_weights(len(wf), conv)):
            fig.add_trace(go.Scatter(y=w, name=f"{name} {kind} ({conv})",
                                     line=dict(color=DIRECTION_COLORS[kind], dash=dash)), 1, 4)
    fig.add_vline(x=k, line=dict(color="gray", dash="dash"), row=1, col=4)
    fig.update_xaxes(title_text="frame from ED", row=1, col=4)
    fig.update_yaxes(title_text="weight", row=1, col=4)
    return fig


def assembly_toy(shift: int = 4):
    """A 40 x 40 toy of the two assembly rules at mid-sequence: the cavity/myocardium border at column 20 forward,
    ``20 + shift`` backward. Returns ``(figure, {rule: background pixels left inside the heart})``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from ..labels import LABEL_COLORS
    from ..pseudolabels.fuse import fuse_bidirectional

    cols = np.arange(40)
    heart = np.zeros((3, 40, 40), bool)
    heart[:, 10:30, 8:32] = True
    fwd = np.where(heart, np.where(cols < 20, 1, 2), 0).astype(np.uint8)
    bwd = np.where(heart, np.where(cols < 20 + shift, 1, 2), 0).astype(np.uint8)
    toy = {rule: fuse_bidirectional(fwd, bwd, assemble=rule)[1] for rule in ("argmax", "sdf")}
    palette = [[i / 3, LABEL_COLORS.get(i, "#f0f0f0") if i else "#f0f0f0"] for i in range(4)]
    fig = make_subplots(rows=1, cols=4, subplot_titles=["forward", "backward", "argmax (authors)", "sdf (largest distance)"])
    for j, lab in enumerate([fwd[1], bwd[1], toy["argmax"], toy["sdf"]], 1):
        fig.add_trace(go.Heatmap(z=lab, zmin=0, zmax=3, showscale=False, colorscale=palette), 1, j)
    _image_axes(fig, 4)
    return fig, {rule: int((lab[heart[1]] == 0).sum()) for rule, lab in toy.items()}


def phase_curve_figure(curve: "pd.DataFrame", structures=("LV", "MYO")):  # noqa: F821
    """Mean Dice against the propagation phase (:func:`phase_curve`), one panel per structure, one line per kind."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from ..labels import DIRECTION_COLORS, STRUCTURE_NAMES
    from ..pseudolabels.propagate import KINDS

    fig = make_subplots(rows=1, cols=len(structures), subplot_titles=[STRUCTURE_NAMES[s] for s in structures],
                        shared_yaxes=True)
    for j, s in enumerate(structures, 1):
        for kind in KINDS:
            c = curve[(curve["structure"] == s) & (curve["kind"] == kind)]
            fig.add_trace(go.Scatter(x=c["phase"], y=c["dice"], mode="lines+markers", name=kind, legendgroup=kind,
                                     showlegend=j == 1, line=dict(color=DIRECTION_COLORS[kind])), 1, j)
        fig.update_xaxes(title_text="propagation phase (0 = ED, 1 = ES)", row=1, col=j)
    fig.update_yaxes(title_text="mean Dice", row=1, col=1)
    return fig
