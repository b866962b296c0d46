"""Figures of the registration chapter: B-spline weights, training curves, registered pairs, averages, Jacobians,
displacement fields against the true motion, and the dead-network check in words.

Each function returns a plotly figure that notebook 02 shows after setting its title; the numbers come from
:mod:`echo_utils.registration.quality` and the training log of :func:`echo_utils.registration.train_registration`.
Images are subsampled to at most ~160 px and quantised to 8 bits so that the book's pages stay light.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["bspline_weights_figure", "training_curves_figure", "learning_curve_figure", "registered_pairs_figure",
           "averages_figure", "jacobian_figure", "ncc_scatter_figure", "displacement_figure", "network_check_lines",
           "network_check_html", "check_table", "data_statements", "validation_statement", "speed_statement",
           "RANDOM_PAIRS", "evaluate_pairs", "ed_es_pairs_figure"]

#: The paper's DLIR training: 10,000 iterations of batch 32 (its Methods; the ``paper`` profile's).
PAPER_ITERATIONS = 10_000
#: Random ordered pairs per test sequence that notebook 02 registers besides ED<-ES and ES<-ED.
RANDOM_PAIRS = 2
#: Pairs registered per batch when notebook 02 evaluates a registration on its test pairs.
EVALUATION_BATCH = 64


def _gray(img: np.ndarray, max_size: int = 160) -> tuple[np.ndarray, int]:
    step = max(1, img.shape[0] // max_size)
    return np.clip(np.round(img[::step, ::step] * 255), 0, 255).astype(np.uint8), step


def _heatmap(img, **kw):
    import plotly.graph_objects as go

    im, step = _gray(img)
    return go.Heatmap(z=im, x=np.arange(im.shape[1]) * step, y=np.arange(im.shape[0]) * step, **kw)


def bspline_weights_figure(spacing: int = 16, n_control: int = 5, height: int = 360):
    """The cubic B-spline weights of ``n_control`` control points along one axis (``spacing`` px apart), their sum
    and their positions, titled."""
    import plotly.graph_objects as go

    from ..registration.bspline import bspline_basis_matrix, control_point_positions

    b = bspline_basis_matrix(n_control * spacing, n_control, spacing)
    x = np.arange(n_control * spacing)
    fig = go.Figure()
    for k in range(n_control):
        fig.add_scatter(x=x, y=b[:, k], mode="lines", name=f"control point {k}")
    fig.add_scatter(x=x, y=b.sum(1), mode="lines", name="sum of weights", line=dict(color="black", dash="dash"))
    for y_k in control_point_positions(n_control, spacing):
        fig.add_vline(x=y_k, line=dict(color="lightgray", width=1))
    fig.update_layout(xaxis_title="pixel position (px)", yaxis_title="weight (dimensionless)", height=height,
                      title=f"Cubic B-spline weights of {n_control} control points along one axis "
                            f"(spacing s = {spacing} px)")
    return fig


def training_curves_figure(log):
    """Loss and NCC per training iteration (raw and a running mean) and on the validation pairs."""
    from plotly.subplots import make_subplots

    tr, va = log[log.split == "train"], log[log.split == "val"]
    win = max(1, len(tr) // 50)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss  (−NCC + α·P)", "NCC"))
    for col, key in ((1, "loss"), (2, "ncc")):
        fig.add_scatter(x=tr.iteration, y=tr[key], mode="lines", line=dict(color="lightsteelblue", width=1),
                        name="train (per batch)", showlegend=col == 1, row=1, col=col)
        fig.add_scatter(x=tr.iteration, y=tr[key].rolling(win, min_periods=1).mean(), mode="lines",
                        line=dict(color="steelblue"), name=f"train ({win}-iteration mean)", showlegend=col == 1,
                        row=1, col=col)
        fig.add_scatter(x=va.iteration, y=va[key], mode="lines+markers", line=dict(color="darkorange"),
                        name="validation (held-out patients)", showlegend=col == 1, row=1, col=col)
    fig.update_xaxes(title_text="iteration")
    fig.update_yaxes(title_text="loss (dimensionless)", row=1, col=1)
    fig.update_yaxes(title_text="NCC (dimensionless)", row=1, col=2)
    return fig


def learning_curve_figure(log, minimum: float | None = None):
    """What the network learned along its training, from the validation rows of the log: the end-point error
    against the exact motion (px, when the log has the phantom monitor's ``val_step_epe_px``) next to the identity's,
    and the field variation across the validation pairs (with the dead-network threshold ``minimum``)."""
    from plotly.subplots import make_subplots

    from ..registration.train import FIELD_VARIATION_MIN

    va = log[log.split == "val"]
    has_epe = "val_step_epe_px" in va.columns and va["val_step_epe_px"].notna().any()
    titles = (("end-point error, validation consecutive frames",) if has_epe else ()) + (
        "field variation across the validation pairs",)
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles)
    if has_epe:
        fig.add_scatter(x=va.iteration, y=va.val_step_epe_px, mode="lines+markers", name="network",
                        line=dict(color="darkorange"), row=1, col=1)
        fig.add_scatter(x=va.iteration, y=va.val_step_identity_epe_px, mode="lines", name="identity (no motion)",
                        line=dict(color="gray", dash="dash"), row=1, col=1)
        fig.add_scatter(x=va.iteration, y=0.5 * va.val_step_identity_epe_px, mode="lines", name="half the identity's",
                        line=dict(color="lightgray", dash="dot"), row=1, col=1)
        fig.update_yaxes(title_text="EPE (px)", rangemode="tozero", row=1, col=1)
    col = len(titles)
    fig.add_scatter(x=va.iteration, y=va.field_variation, mode="lines+markers", name="field variation",
                    line=dict(color="steelblue"), row=1, col=col)
    fig.add_hline(y=FIELD_VARIATION_MIN if minimum is None else minimum, line=dict(color="firebrick", dash="dash"),
                  annotation_text="below: one field for every pair", row=1, col=col)
    fig.update_yaxes(title_text="spread / mean length (dimensionless)", rangemode="tozero", row=1, col=col)
    fig.update_xaxes(title_text="iteration")
    return fig


def registered_pairs_figure(fixed: np.ndarray, moving: np.ndarray, displacement: np.ndarray, rows: Sequence[int],
                            names: Sequence[str], grid_step: int, method: str = "DLIR"):
    """One row per pair index in ``rows``: fixed, moving with the deformed grid (every ``grid_step`` px), warped,
    and the absolute differences before and after. ``fixed``, ``moving``: ``(N, H, W)``; ``displacement``:
    ``(N, 2, H, W)`` px."""
    import torch
    from plotly.subplots import make_subplots

    from ..registration.warp import deformation_grid, warp

    cols = ["fixed", "moving + deformed grid", f"warped ({method})", "|fixed − moving|", "|fixed − warped|"]
    fig = make_subplots(rows=len(rows), cols=5, horizontal_spacing=0.01, vertical_spacing=0.04,
                        subplot_titles=[c if r == 0 else "" for r in range(len(rows)) for c in cols])
    u = torch.from_numpy(np.asarray(displacement, dtype=np.float32))
    warped = warp(torch.from_numpy(np.asarray(moving, dtype=np.float32))[:, None], u)[:, 0].numpy()
    for r, i in enumerate(rows, start=1):
        panels = [fixed[i], moving[i], warped[i], np.abs(fixed[i] - moving[i]), np.abs(fixed[i] - warped[i])]
        for c, img in enumerate(panels, start=1):
            fig.add_trace(_heatmap(img, colorscale="gray" if c <= 3 else "magma", zmin=0, zmax=255 if c <= 3 else 128,
                                   showscale=(r == 1 and c in (1, 4)),
                                   colorbar=dict(len=0.3, y=0.85, x=0.39 if c == 1 else 1.0,
                                                 title="intensity (8-bit)")), row=r, col=c)
        for ly, lx in deformation_grid(u[i], step=grid_step):
            fig.add_scatter(x=lx[::2].astype(np.float32), y=ly[::2].astype(np.float32), mode="lines",
                            line=dict(color="deepskyblue", width=1), showlegend=False, hoverinfo="skip", row=r, col=2)
        fig.update_yaxes(title_text=names[r - 1], row=r, col=1)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(height=260 * len(rows) + 80, width=1000)
    return fig


def averages_figure(averages: Mapping[str, tuple]):
    """The averages of :func:`echo_utils.registration.quality.warped_averages` side by side, with their sharpness
    and NCC with the reference frame in the titles."""
    from plotly.subplots import make_subplots

    titles = [f"{k}<br>sharpness {s:.4f}/px, NCC with ED {c:.3f}" for k, (_, s, c) in averages.items()]
    fig = make_subplots(rows=1, cols=len(averages), subplot_titles=titles, horizontal_spacing=0.02)
    for c, (img, _, _) in enumerate(averages.values(), start=1):
        fig.add_trace(_heatmap(img, colorscale="gray", zmin=0, zmax=255, showscale=c == len(averages),
                               colorbar=dict(title="intensity (8-bit)")), row=1, col=c)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", title_text="row (px)")
    fig.update_xaxes(title_text="column (px)")
    return fig


def jacobian_figure(summary, colors: Mapping[str, str]):
    """Box plots (quartiles; whiskers at the 0.5th and 99.5th percentiles) of the Jacobian determinant per pair
    kind and registration, from :func:`echo_utils.registration.quality.jacobian_summary`; a red line at 0."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, g in summary.groupby("registration", sort=False):
        fig.add_trace(go.Box(name=name, legendgroup=name, offsetgroup=name, x=list(g["pairs"]), q1=list(g["det J 25%"]),
                             median=list(g["det J median"]), q3=list(g["det J 75%"]),
                             lowerfence=list(g["det J 0.5%"]), upperfence=list(g["det J 99.5%"]),
                             marker_color=colors.get(name)))
    fig.add_hline(y=0, line=dict(color="red", dash="dot"))
    fig.update_layout(boxmode="group", xaxis_title="pair type", yaxis_title="det J (dimensionless)")
    return fig


def ncc_scatter_figure(a, b, names: Sequence[str], labels: Sequence[str]):
    """NCC after registration per pair: registration ``names[1]`` (y, table ``b``) against ``names[0]`` (x, ``a``)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_scatter(x=a.ncc_after, y=b.ncc_after, mode="markers", text=list(labels), name="test pairs")
    lo = float(min(a.ncc_after.min(), b.ncc_after.min()))
    fig.add_scatter(x=[lo, 1], y=[lo, 1], mode="lines", line=dict(dash="dash", color="gray"), name="equal")
    fig.update_layout(xaxis_title=f"NCC after {names[0]}", yaxis_title=f"NCC after {names[1]}")
    return fig


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


def network_check_lines(check) -> list[str]:
    """The sentences of a :class:`~echo_utils.registration.evidence.NetworkCheck`: the field variation across its
    pairs against its minimum, and (when it was judged on the phantom's exact motion) the end-point error against
    the identity's."""
    fv, minimum, where = check.field_variation, check.minimum, check.where
    if "field variation unknown" in check.problems:
        lines = ["The field variation of this network was not recorded: it cannot be shown to depend on the pair."]
    elif "constant field" in check.problems:
        lines = [f"Field variation across {where}: {fv:.3f} (spread of the control points / their "
                 f"mean length), below {minimum}: the network outputs nearly ONE field for every pair, whatever "
                 "it is shown."]
    else:
        lines = [f"Field variation across {where}: {fv:.2f} (spread of the control points / their "
                 f"mean length; >= {minimum}): the field depends on the pair."]
    epe, ident = check.epe, check.identity_epe
    if epe is not None and ident is not None:
        if "EPE not below identity" in check.problems:
            lines.append(f"End-point error {epe:.3f} px is NOT below the identity's {ident:.3f} px: the field "
                         "is no closer to the true motion than no registration at all.")
        else:
            lines.append(f"End-point error {epe:.3f} px = {epe / ident:.0%} of the identity's {ident:.3f} px.")
    return lines


def network_check_html(check) -> str:
    """A visible box for a notebook (``display(HTML(...))``): a tip when the network is alive, a warning when not,
    with :func:`network_check_lines` as its items."""
    import html

    kind, title = ("tip", "The network is alive") if check.ok else ("warning", "The network did NOT learn")
    body = "".join(f"<li>{html.escape(x)}</li>" for x in network_check_lines(check))
    return (f'<div class="admonition {kind}"><p class="admonition-title">{title}</p><ul>{body}</ul></div>')


def check_table(check, model=None) -> "pd.DataFrame":  # noqa: F821
    """One row for the run's metrics (``metrics/registration_check.csv``): the verdict of a
    :class:`~echo_utils.registration.evidence.NetworkCheck` (``ok``, ``problems``), the network's kept iteration and
    field variation, and :func:`network_check_lines` joined (``statement``)."""
    import pandas as pd

    return pd.DataFrame([{"ok": check.ok, "problems": "; ".join(check.problems),
                          "kept_iteration": getattr(model, "kept_iteration", None),
                          "field_variation": getattr(model, "field_variation", None),
                          "statement": " ".join(network_check_lines(check))}])


def data_statements(train: Sequence, val: Sequence, test: Sequence, config) -> list[str]:
    """What the network trains on: the sequences and patients of each split, the ordered frame pairs
    (:func:`echo_utils.registration.frame_pairs`), the image size, the control grid of ``config`` (the profile's
    ``registration`` section) and how many epochs its iterations of its batch size make."""
    from ..registration import frame_pairs

    n_pairs = len(frame_pairs(train))
    h, w = train[0].shape
    s = config.grid_spacing
    return [f"{len(train)} training sequences ({len({q.patient for q in train})} patients), {n_pairs} ordered frame "
            f"pairs; {len(val)} validation and {len(test)} test sequences; images {h}x{w} px",
            f"control grid: {h // s}x{w // s} points, spacing {s} px; {config.iterations} iterations of batch "
            f"{config.batch_size} = {config.iterations * config.batch_size / n_pairs:.1f} epochs"]


def validation_statement(log) -> str:
    """The validation NCC of the training ``log`` (:func:`echo_utils.registration.load_training_log`) before
    training (the identity) and at its last validation, with the bending energy there (Markdown)."""
    va = log[log.split == "val"]
    v0, v1 = va.iloc[0], va.iloc[-1]
    return (f"Validation NCC: **{v0.ncc:.4f}** without registration (identity) → **{v1.ncc:.4f}** after "
            f"{int(v1.iteration)} iterations; bending energy {v1.bending:.2e} px⁻².")


def speed_statement(network, instance, iterations: int) -> str:
    """How much faster per pair the network is than the instance optimisation, and the share of its NCC gain it
    recovers, from their per-pair tables (:func:`echo_utils.registration.evaluate_registration`: ``seconds``,
    ``ncc_before``, ``ncc_after``) on the same pairs (Markdown). ``iterations``: the network's training iterations."""
    speed = instance.seconds.mean() / network.seconds.mean()
    gain = (network.ncc_after - network.ncc_before).mean() / max((instance.ncc_after - instance.ncc_before).mean(),
                                                                   1e-9)
    return (f"The network is **{speed:.0f}×** faster per pair than the instance optimisation here and recovers "
            f"**{100 * gain:.0f} %** of its NCC gain on unseen pairs, after {iterations} training "
            f"iterations (the paper trains {PAPER_ITERATIONS:,}).")


def evaluate_pairs(registrations: Mapping, fixed: np.ndarray, moving: np.ndarray, info: Sequence[dict],
                   batch_size: int = EVALUATION_BATCH):
    """:func:`echo_utils.registration.evaluate_registration` of every registration (``{display name: registration}``)
    on the same ``(N, H, W)`` pairs: ``(tables, displacements, lines)``, the per-pair tables and ``(N, 2, H, W)``
    fields by name, and one line per registration with its pairs, total and per-pair wall time."""
    from ..registration import evaluate_registration

    tables, disp, lines = {}, {}, []
    for name, r in registrations.items():
        tables[name], disp[name] = evaluate_registration(r, fixed, moving, batch_size=batch_size, info=info,
                                                         return_displacements=True)
        lines.append(f"{name}: {len(fixed)} pairs in {tables[name].seconds.sum():.1f} s "
                     f"({1e3 * tables[name].seconds.mean():.1f} ms per pair)")
    return tables, disp, lines


def ed_es_pairs_figure(fixed: np.ndarray, moving: np.ndarray, displacement: np.ndarray, info: Sequence[dict],
                       grid_spacing: int, method: str, n: int = 3, grid_every: int = 2):
    """:func:`registered_pairs_figure` of the first ``n`` ED<-ES pairs of ``info`` (:func:`echo_utils.registration.
    sample_pairs`), the deformed grid drawn every ``grid_every`` control-point spacings (``grid_spacing`` px), titled."""
    rows = [i for i, p in enumerate(info) if p["kind"] == "ED<-ES"][:n]
    fig = registered_pairs_figure(fixed, moving, displacement, rows, [info[i]["key"] for i in rows],
                                  grid_step=grid_every * grid_spacing, method=method)
    return fig.update_layout(title=f"ED registered to ES on test patients: the warped ES frame should match ED (axes "
                                   f"in px; the grid, every {grid_every} control-point spacings, shows where each "
                                   "fixed-image grid line samples the moving image)")
