"""The five registrations side by side: tables, sentences and figures of the comparisons in notebooks 02 and 03.

The numbers come from :mod:`echo_utils.registration.evidence` (notebook 02: end-point error against the phantom's
exact motion, NCC gain, folding and seconds per pair, :func:`~echo_utils.registration.evidence.comparison_summary`)
and from :mod:`echo_utils.report.fig2` (notebook 03: per-video Dice and HD of the pseudo-labels each registration
makes).  This module only presents them: display names, one sentence per claim with its control, plotly figures.

The *yardstick* is the best classical reference that beats the identity (no motion) on the end-point error
(:func:`~echo_utils.registration.evidence.yardstick`); a reference that cannot beat "no motion" is reported as such
and the network is not measured against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..labels import NAMES, REGISTRATION_COLORS
from ..registration.evidence import REFERENCES, yardstick

__all__ = ["comparison_table", "yardstick_statements", "comparison_statements", "comparison_figure",
           "label_comparison", "label_comparison_table", "label_comparison_statements", "epe_statements",
           "gain_statements"]

#: the registrations in the order every table and figure lists them
ORDER = ("identity", "dlir", "instance", "elastix", "optical_flow")


def _name(key: str) -> str:
    return NAMES.get(key, key)


def _ordered(keys) -> list[str]:
    keys = list(dict.fromkeys(keys))
    return [k for k in ORDER if k in keys] + [k for k in keys if k not in ORDER]


def comparison_table(summary: pd.DataFrame, kind: str = "step") -> pd.DataFrame:
    """The rows of :func:`~echo_utils.registration.evidence.comparison_summary` for pair ``kind``, one per
    registration (display names), with readable columns: EPE (px), EPE / identity, NCC gain, pairs whose NCC
    improved (%), folded pixels (%), pairs with a fold (%), ms per pair and time / network's (same run)."""
    sub = summary[summary["kind"] == kind].set_index("registration")
    sub = sub.loc[_ordered(sub.index)]
    out = pd.DataFrame({
        "pairs": sub["n_pairs"].astype(int),
        "EPE (px)": sub["epe_px"],
        "EPE / identity": sub["epe_ratio_to_identity"],
        "NCC gain": sub["ncc_gain"],
        "pairs NCC improved (%)": 100 * sub["pairs_ncc_improved"],
        "folded pixels (%)": 100 * sub["folding"],
        "pairs with folding (%)": 100 * sub["pairs_folded"],
        "ms per pair": 1e3 * sub["seconds_per_pair"],
        "time / network's": sub["seconds_over_network"],
    })
    out.index = pd.Index([_name(k) for k in sub.index], name="registration")
    return out


def yardstick_statements(epe: Mapping[str, float], identity_epe: float,
                         references: Sequence[str] = REFERENCES) -> tuple[str | None, list[str]]:
    """Which reference is the yardstick, in words: ``(yardstick key or None, sentences)``.

    One sentence per reference in ``epe`` (key -> mean EPE, px): its EPE as a fraction of the identity's
    ``identity_epe``, and, for one that does not beat it, that it is reported but **not** used as the yardstick;
    then one sentence naming the yardstick (the best reference below the identity) or saying that there is none.
    """
    lines = []
    present = [r for r in references if r in epe]
    for r in present:
        e = float(epe[r])
        if np.isfinite(e) and e < identity_epe:
            lines.append(f"{_name(r)}: end-point error {e:.3f} px = {e / identity_epe:.0%} of the identity's "
                         f"{identity_epe:.3f} px (beats no motion)")
        else:
            lines.append(f"{_name(r)}: end-point error {e:.3f} px is NOT below the identity's {identity_epe:.3f} px: "
                         "it cannot beat no motion here, so it is reported but not used as the yardstick")
    best = yardstick(epe, identity_epe, present)
    if best is None:
        lines.append("No reference beats the identity's end-point error: there is no yardstick on these pairs, and "
                     "the network is judged against the identity alone")
    else:
        lines.append(f"Yardstick: {_name(best)} ({float(epe[best]):.3f} px), the best reference that beats no motion")
    return best, lines


def comparison_statements(summary: pd.DataFrame, network: str = "dlir", kind: str = "step") -> list[str]:
    """Sentences from :func:`~echo_utils.registration.evidence.comparison_summary` on ``kind`` pairs: the
    references against the identity (:func:`yardstick_statements`), then the ``network`` against the identity and
    against the yardstick (EPE), with its speed against each reference measured in the same run."""
    sub = summary[summary["kind"] == kind].set_index("registration")
    if "identity" not in sub.index:
        raise ValueError("comparison_statements: the summary has no identity row (the control)")
    ident = float(sub.loc["identity", "epe_px"])
    best, lines = yardstick_statements(sub["epe_px"].to_dict(), ident)
    if network in sub.index:
        net = sub.loc[network]
        e = float(net["epe_px"])
        word = "below" if e < ident else "NOT below"
        line = (f"{_name(network)}: end-point error {e:.3f} px = {e / ident:.0%} of the identity's ({word} it)")
        if best is not None:
            y = float(sub.loc[best, "epe_px"])
            line += (f"; {e / y:.2f}× the yardstick {_name(best)}'s {y:.3f} px "
                     f"({'at least as close to the true motion' if e <= y else 'further from the true motion'})")
        lines.append(line)
        ratios = {r: float(sub.loc[r, "seconds_over_network"]) for r in REFERENCES if r in sub.index}
        speed = [f"{_name(r)} {v:.0f}× slower" if v >= 1 else f"{_name(r)} {1 / v:.1f}× faster"
                 for r, v in ratios.items() if np.isfinite(v) and v > 0]
        if speed:
            lines.append(f"Time per pair against {_name(network)}'s {1e3 * float(net['seconds_per_pair']):.1f} ms "
                         f"(same run, same pairs): " + ", ".join(speed))
    return lines


def comparison_figure(table: pd.DataFrame, kind: str = "step"):
    """Plotly figure of :func:`~echo_utils.registration.evidence.registration_comparison`'s per-pair ``table``:
    end-point error per pair (box per registration; the identity's is the true motion), NCC gain per pair, and
    milliseconds per pair (log scale)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    sub = table[table["kind"] == kind]
    keys = _ordered(sub["registration"])
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08, subplot_titles=(
        "end-point error per pair (px)", "NCC gain per pair", "time per pair (ms, log)"))
    for k in keys:
        t = sub[sub["registration"] == k]
        color = REGISTRATION_COLORS.get(k, "#444444")
        fig.add_trace(go.Box(y=t["epe_px"], name=_name(k), marker_color=color, boxpoints="all", jitter=0.4,
                             pointpos=0, legendgroup=k), row=1, col=1)
        fig.add_trace(go.Box(y=t["ncc_gain"], name=_name(k), marker_color=color, boxpoints="all", jitter=0.4,
                             pointpos=0, legendgroup=k, showlegend=False), row=1, col=2)
        fig.add_trace(go.Bar(x=[_name(k)], y=[1e3 * float(t["seconds"].mean())], marker_color=color,
                             legendgroup=k, showlegend=False), row=1, col=3)
    fig.update_yaxes(type="log", row=1, col=3)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(height=420, legend=dict(orientation="h", y=-0.08))
    return fig


# ----------------------------------------------------------------------------------------------------------------
# notebook 03: the labels each registration makes
# ----------------------------------------------------------------------------------------------------------------


def label_comparison(videos: pd.DataFrame, keys: Sequence[str], structures=("LV", "MYO")) -> pd.DataFrame:
    """Long table of median per-video Dice and HD (px at 512) of every registration's forward, backward and
    bidirectional pseudo-labels on the sequences ``keys`` (the same videos for every registration).

    ``videos``: :func:`echo_utils.report.fig2.per_video` rows (``method, kind, structure, key, dice, hd_px``).
    Returns columns ``registration, kind, structure, n_videos, dice, hd_px``; a registration missing any of ``keys``
    is left out (the comparison is paired)."""
    keys = list(dict.fromkeys(keys))
    sub = videos[videos["structure"].isin(list(structures)) & videos["key"].isin(set(keys))]
    rows = []
    for m in _ordered(sub["method"]):
        t = sub[sub["method"] == m]
        if set(t["key"]) != set(keys):
            continue
        for (kind, s), g in t.groupby(["kind", "structure"], sort=False):
            rows.append({"registration": m, "kind": kind, "structure": s, "n_videos": g["key"].nunique(),
                         "dice": float(g["dice"].median()), "hd_px": float(g["hd_px"].median())})
    return pd.DataFrame(rows, columns=["registration", "kind", "structure", "n_videos", "dice", "hd_px"])


def label_comparison_table(long: pd.DataFrame) -> pd.DataFrame:
    """:func:`label_comparison` as a wide table: rows the registrations (display names), columns (metric,
    structure, kind) for Dice and HD, forward / backward / bidirectional."""
    from ..pseudolabels.propagate import KINDS

    wide = long.pivot_table(index="registration", columns=["structure", "kind"], values=["dice", "hd_px"])
    cols = [(m, s, k) for m in ("dice", "hd_px") for s in dict.fromkeys(long["structure"]) for k in KINDS
            if (m, s, k) in wide.columns]
    wide = wide[cols].loc[_ordered(wide.index)]
    wide.index = [_name(k) for k in wide.index]
    wide.columns = pd.MultiIndex.from_tuples([("Dice" if m == "dice" else "HD (px at 512)", s, k) for m, s, k in cols])
    return wide


def label_comparison_statements(long: pd.DataFrame, network: str = "dlir",
                                yardstick_key: str | None = None) -> list[str]:
    """Per structure, the bidirectional median Dice of every registration against the identity's (the control),
    and the ``network``'s against the ``yardstick_key`` reference (notebook 02's yardstick) when given."""
    bi = long[long["kind"] == "bidirectional"].set_index(["structure", "registration"])
    out = []
    for s in dict.fromkeys(long["structure"]):
        if (s, "identity") not in bi.index:
            continue
        ident = float(bi.loc[(s, "identity"), "dice"])
        parts = [f"{_name(r)} {float(bi.loc[(s, r), 'dice']):.3f} ({float(bi.loc[(s, r), 'dice']) - ident:+.3f})"
                 for r in ORDER if r != "identity" and (s, r) in bi.index]
        n = int(bi.loc[(s, "identity"), "n_videos"])
        line = f"{s}: bidirectional median Dice, identity {ident:.3f}; " + ", ".join(parts) + f" ({n} videos)"
        if yardstick_key and (s, yardstick_key) in bi.index and (s, network) in bi.index:
            d = float(bi.loc[(s, network), "dice"]) - float(bi.loc[(s, yardstick_key), "dice"])
            line += f"; {_name(network)} minus the yardstick {_name(yardstick_key)}: {d:+.3f}"
        out.append(line)
    return out


def epe_statements(summary: pd.DataFrame, network: str, others: Sequence[str] = ()) -> list[str]:
    """One sentence per pair kind of :func:`~echo_utils.registration.evidence.phantom_epe`'s summary: the
    network's mean EPE as a fraction of the identity's (the control)."""
    lines = []
    for kind in summary.columns:
        net, ident = summary.loc[network, kind], summary.loc["identity", kind]
        extra = "".join(f"; {o} {summary.loc[o, kind]:.3f} px" for o in others)
        verdict = "below half of" if net < 0.5 * ident else ("below" if net < ident else "NOT below")
        lines.append(f"{kind} pairs: {network} end-point error {net:.3f} px = {net / ident:.0%} of the identity's "
                     f"{ident:.3f} px ({verdict} the identity's){extra}")
    return lines


def gain_statements(gain: pd.DataFrame, method: str) -> list[str]:
    """One sentence per (kind, structure) row of
    :func:`~echo_utils.registration.evidence.gain_over_identity`."""
    return [f"{r.kind} {r.structure}: {method} median Dice {getattr(r, f'dice_{method}'):.3f} vs identity "
            f"{r.dice_identity:.3f} ({r.gain:+.3f}; {r.n_videos} videos)" for r in gain.itertuples()]
