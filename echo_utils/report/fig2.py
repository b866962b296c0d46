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
