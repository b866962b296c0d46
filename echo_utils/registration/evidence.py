"""End-point error of a registration against the synthetic phantom's exact motion (the truth a loss cannot give).

A registration's loss says how well the warped image matches, not whether the field is the tissue's motion: raw
NCC on decorrelating speckle, for example, rewards a sub-pixel blur.  On the phantom the motion of every pixel is
known exactly (:func:`echo_utils.data.phantom.pair_displacement`), so a registration can be judged by its
**end-point error** (EPE), ``|u_registered(p) - u_true(p)|`` in pixels, averaged over the myocardium of the fixed
frame (where the motion is physical: the blood pools' motion is only a convention of the phantom).  The identity
(no motion) scores the mean true displacement: the control every registration must beat.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .inference import register

__all__ = ["PAIR_KINDS", "phantom_pairs", "endpoint_error", "phantom_epe", "epe_statements", "displacement_figure",
           "gain_over_identity", "gain_statements"]

#: ``'step'``: consecutive frames ``(t + 1, t)`` from ED to ES (what sequential propagation registers);
#: ``'ed_es'``: ``(ES, ED)`` and ``(ED, ES)`` (the largest motion of the half sequence)
PAIR_KINDS = ("step", "ed_es")


def phantom_pairs(root: str | Path, sequences: Sequence, kind: str = "step", *, label: int = 2) -> dict:
    """Frame pairs of phantom sequences with their exact displacement.

    Parameters
    ----------
    root : the synthetic cohort's folder (holding ``cohort.json``; the run's ``paths.data``).
    sequences : :class:`~echo_utils.camus.EchoSequence` of that cohort, with ``dense`` labels.
    kind : one of :data:`PAIR_KINDS`.
    label : the structure over which errors are averaged (2: myocardium).

    Returns
    -------
    ``{'fixed', 'moving'}`` float32 ``(N, H, W)``, ``'truth'`` float32 ``(N, 2, H, W)`` (pixels),
    ``'mask'`` bool ``(N, H, W)`` (``label`` in the fixed frame) and ``'info'`` (one dict per pair: key, fixed,
    moving, kind).
    """
    from ..data import phantom
    from ..data.phantom_cohort import patient_params

    if kind not in PAIR_KINDS:
        raise ValueError(f"unknown pair kind {kind!r}; expected one of {PAIR_KINDS}")
    fixed, moving, truth, mask, info = [], [], [], [], []
    for seq in sequences:
        if seq.dense is None:
            raise ValueError(f"{seq.key}: no dense labels; phantom_pairs needs a synthetic sequence")
        pp = patient_params(root, seq.patient)
        ed, es = int(seq.ed), int(seq.es)
        if kind == "step":
            step = 1 if es > ed else -1
            pairs = [(t + step, t) for t in range(ed, es, step)]
        else:
            pairs = [(es, ed), (ed, es)]
        size = seq.images.shape[1]
        for f, m in pairs:
            fixed.append(seq.images[f])
            moving.append(seq.images[m])
            truth.append(phantom.pair_displacement(pp, seq.view, size, f, m))
            mask.append(np.asarray(seq.dense[f]) == label)
            info.append({"key": seq.key, "fixed": f, "moving": m, "kind": kind})
    return {
        "fixed": np.stack(fixed).astype(np.float32),
        "moving": np.stack(moving).astype(np.float32),
        "truth": np.stack(truth).astype(np.float32),
        "mask": np.stack(mask),
        "info": info,
    }


def endpoint_error(registrations: Mapping[str, Callable], pairs: dict, *, batch_size: int = 32) -> "pd.DataFrame":  # noqa: F821
    """Per-pair end-point error (px) of each registration on :func:`phantom_pairs`.

    Returns a long table, one row per (registration, pair): ``registration``, ``key``, ``fixed``, ``moving``,
    ``kind``, ``epe_px`` (mean EPE over the mask), ``true_px`` (mean true displacement there: the identity's EPE)
    and ``fields`` is not stored (call :func:`~echo_utils.registration.inference.register` to get them).
    """
    import pandas as pd

    truth, mask = pairs["truth"], pairs["mask"]
    true_mag = np.hypot(truth[:, 0], truth[:, 1])
    rows = []
    for name, reg in registrations.items():
        u = register(reg, pairs["fixed"], pairs["moving"], batch_size=batch_size)
        err = np.hypot(u[:, 0] - truth[:, 0], u[:, 1] - truth[:, 1])
        for i, inf in enumerate(pairs["info"]):
            m = mask[i]
            rows.append({"registration": name, **inf, "epe_px": float(err[i][m].mean()),
                         "true_px": float(true_mag[i][m].mean())})
    return pd.DataFrame(rows)


def displacement_figure(fields: Mapping[str, np.ndarray], truth: np.ndarray, mask: np.ndarray, title: str = "",
                        step: int = 2):
    """Plotly figure: each field's two components ``(2, H, W)`` (px) next to the ``truth``, rows above columns,
    every ``step``-th pixel on one symmetric colour scale; each title gives its mean EPE over ``mask``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fields = {"true motion": truth, **fields}
    lim = float(np.abs(truth).max()) or 1.0
    titles = [f"{k}: EPE {float(np.hypot(*(u - truth))[mask].mean()):.2f} px" for k, u in fields.items()]
    fig = make_subplots(rows=2, cols=len(fields), subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=0.06)
    for c, u in enumerate(fields.values(), start=1):
        for r in (0, 1):
            fig.add_trace(go.Heatmap(z=np.asarray(u[r])[::step, ::step], colorscale="RdBu", zmin=-lim, zmax=lim,
                                     showscale=(c == 1 and r == 0), colorbar=dict(title="px")), row=r + 1, col=c)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(title_text="along rows", row=1, col=1)
    fig.update_yaxes(title_text="along columns", row=2, col=1)
    fig.update_layout(title=title, height=560, width=260 * len(fields) + 120)
    return fig


def gain_over_identity(videos: "pd.DataFrame", method: str, *, structures=("LV", "MYO"),  # noqa: F821
                       kinds=("forward", "bidirectional")) -> "pd.DataFrame":  # noqa: F821
    """What a registration adds over no registration: median per-video Dice of ``method`` and of ``'identity'``
    on the same videos, and their difference, per kind and structure.

    ``videos``: a per-video score table (:func:`echo_utils.report.fig2.per_video`) holding both methods, columns
    ``method, kind, structure, key, dice``.  Returns one row per (kind, structure): ``n_videos``, ``dice_<method>``,
    ``dice_identity``, ``gain`` (> 0: the registration helps).
    """
    import pandas as pd

    rows = []
    for kind in kinds:
        for s in structures:
            sel = videos[(videos["kind"] == kind) & (videos["structure"] == s)]
            a = sel[sel["method"] == method].set_index("key")["dice"]
            b = sel[sel["method"] == "identity"].set_index("key")["dice"]
            keys = a.index.intersection(b.index)
            if len(keys) == 0:
                continue
            ma, mb = float(a[keys].median()), float(b[keys].median())
            rows.append({"kind": kind, "structure": s, "n_videos": len(keys), f"dice_{method}": ma,
                         "dice_identity": mb, "gain": ma - mb})
    return pd.DataFrame(rows)


def phantom_epe(registrations: Mapping[str, Callable], root: str | Path, sequences: Sequence, *,
                kinds: Sequence[str] = PAIR_KINDS) -> tuple["pd.DataFrame", "pd.DataFrame"]:  # noqa: F821
    """:func:`endpoint_error` of every registration on every pair kind of the phantom ``sequences``.

    Returns the long per-pair table and its summary: mean EPE (px) per registration (rows) and pair kind (columns).
    """
    import pandas as pd

    table = pd.concat([endpoint_error(registrations, phantom_pairs(root, sequences, k)) for k in kinds],
                      ignore_index=True)
    summary = table.pivot_table(index="registration", columns="kind", values="epe_px", aggfunc="mean")
    return table, summary.reindex(list(registrations))


def epe_statements(summary: "pd.DataFrame", network: str, others: Sequence[str] = ()) -> list[str]:  # noqa: F821
    """One sentence per pair kind: the network's mean EPE as a fraction of the identity's (the control)."""
    lines = []
    for kind in summary.columns:
        net, ident = summary.loc[network, kind], summary.loc["identity", kind]
        extra = "".join(f"; {o} {summary.loc[o, kind]:.3f} px" for o in others)
        verdict = "below half of" if net < 0.5 * ident else ("below" if net < ident else "NOT below")
        lines.append(f"{kind} pairs: {network} end-point error {net:.3f} px = {net / ident:.0%} of the identity's "
                     f"{ident:.3f} px ({verdict} the identity's){extra}")
    return lines


def gain_statements(gain: "pd.DataFrame", method: str) -> list[str]:  # noqa: F821
    """One sentence per (kind, structure) row of :func:`gain_over_identity`."""
    return [f"{r.kind} {r.structure}: {method} median Dice {getattr(r, f'dice_{method}'):.3f} vs identity "
            f"{r.dice_identity:.3f} ({r.gain:+.3f}; {r.n_videos} videos)" for r in gain.itertuples()]
