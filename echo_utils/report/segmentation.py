"""Notebook 04's figures, tables and sentences: the training sets, the 3D plan beside nnU-Net's plan for the paper's
volumes, the training curves and verdicts, the predictions of one sequence, the run's times and its command line.

Everything here reads what :mod:`echo_utils.segmentation` wrote into the run (through an
:class:`~echo_utils.segmentation.env.NnUNetRun`) or the tables it returned; nothing trains or predicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from ..labels import MODEL_COLORS, MODEL_NAMES

if TYPE_CHECKING:  # pragma: no cover
    from ..data.camus import EchoSequence
    from ..segmentation.env import NnUNetRun

__all__ = [
    "ROLE_COLORS",
    "frame_roles_figure",
    "plan_comparison",
    "training_statement",
    "convergence_statement",
    "budget_text",
    "training_curves_figure",
    "class_dice_figure",
    "predictions_slider",
    "timings_table",
    "job_timings",
    "prediction_statement",
    "timing_summary",
    "cli_commands",
]

#: The colour of each frame role of :func:`echo_utils.segmentation.export.frame_roles` (in the heatmap's order).
ROLE_COLORS = {"manual": "#2ca02c", "pseudo": "#17becf", "ignore": "#bbbbbb", "unused": "#ffffff"}


def frame_roles_figure(seq: "EchoSequence", models: Sequence[str]):
    """A heatmap of what each frame of ``seq`` is in each model's training set (rows: ``models``; columns: frames):
    manual label (ED, ES), pseudo-label, ignore label, or not a training case
    (:func:`~echo_utils.segmentation.export.frame_roles`)."""
    import plotly.graph_objects as go

    from ..segmentation.export import frame_roles

    codes = {r: i for i, r in enumerate(ROLE_COLORS)}
    n = len(ROLE_COLORS)
    roles = [frame_roles(m, seq) for m in models]
    scale = [[v, c] for i, c in enumerate(ROLE_COLORS.values()) for v in (i / n, (i + 1) / n)]
    fig = go.Figure(go.Heatmap(z=[[codes[r] for r in row] for row in roles], x=list(range(seq.n_frames)),
                               y=[MODEL_NAMES[m] for m in models], zmin=-0.5, zmax=n - 0.5, colorscale=scale,
                               xgap=2, ygap=2, showscale=False, text=roles,
                               hovertemplate="%{y}, frame %{x}: %{text}<extra></extra>"))
    fig.update_layout(title=f"Training labels of {seq.key}: manual (ED, ES, green), pseudo-label (cyan), ignore "
                      "(grey), not a training case (white)", xaxis_title="frame (ED = 0)", yaxis_title="model",
                      height=300, plot_bgcolor="white")
    return fig


def plan_comparison(run: "NnUNetRun", plans: pd.DataFrame, reference: dict | None = None
                    ) -> tuple[pd.DataFrame | None, list[str]]:
    """The first 3D model's plan, stage by stage, beside nnU-Net's own ``3d_fullres`` plan for the paper's volumes,
    and one sentence per 3D model: the time spacing written against the one planned (equal: no frame resampled),
    the time / in-plane spacing ratio against the reference's, and whether the first stage convolves in plane.

    ``plans``: :func:`~echo_utils.segmentation.plans.plans_table` of the run; ``reference``: a configuration dict
    (default :func:`~echo_utils.segmentation.plans.reference_plan` for ``nnunet.time_reference_spacing`` and
    ``time_reference_size``). Without a 3D model: ``(None, [])`` (and no reference is planned).
    """
    from .. import segmentation as seg

    nn = run.nn
    three_d = [m for m in nn.models if seg.SPECS[m].dim == 3]
    if not three_d:
        return None, []
    if reference is None:
        reference = seg.reference_plan(nn.time_reference_spacing, nn.time_reference_size)
    first = three_d[0]
    table = pd.concat({f"{MODEL_NAMES[first]}, this run ({seg.configuration_name(nn, first)})":
                       seg.plan_stages(run, first),
                       "nnU-Net's 3d_fullres for the paper's volumes": seg.stage_table(reference)}, axis=1).fillna("")
    ref_ratio = reference["spacing"][0] / min(reference["spacing"][1:])
    lines = []
    for m in three_d:
        stored, planned = seg.dataset_time_spacing(run, m), plans.loc[m, "spacing"][0]
        kernel = plans.loc[m, "kernels"].split()[0]
        lines.append(f"{MODEL_NAMES[m]}: time spacing written {stored:g}, planned (target) {planned:g} -> "
                     + ("equal: no frame is resampled" if abs(stored - planned) <= 1e-6 * stored
                        else "DIFFERENT: frames are resampled")
                     + f"; time / in-plane spacing {plans.loc[m, 'time / in-plane spacing']:.2f} "
                     f"(reference {ref_ratio:.2f}); first stage {kernel} "
                     f"({'in plane' if kernel.startswith('1x') else 'NOT in plane'})")
    return table, lines


#: what a job of each nnU-Net kind is called in notebook 04's sentences (singular, plural)
_JOB_WORDS = {"nnunet_training": ("training", "trainings"), "nnunet_prediction": ("prediction", "predictions")}


def _jobs_in_words(counts: Mapping[str, int]) -> str:
    """``{kind: n}`` as words, e.g. "4 trainings and 5 predictions" (an unknown kind: "2 jobs")."""
    parts = [f"{n} {_JOB_WORDS.get(kind, ('job', 'jobs'))[n != 1]}" for kind, n in counts.items()]
    return " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)


def training_statement(rows: Iterable[Mapping], wall_seconds: float, backend: str) -> str:
    """How the jobs of notebook 04's training cell used the wall time: their own times added up against the cell's
    wall time (> 1 jobs' worth per second: they ran at the same time). ``rows``: a
    :class:`~echo_utils.compute.progress.JobsReport`'s rows (``kind``, ``skipped``, ``seconds``; a row without a
    kind is a training), e.g. of the trainings and the predictions run as one pipelined set."""
    rows = list(rows)
    ran = [r for r in rows if not r["skipped"] and r["seconds"]]
    if not ran:
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.get("kind", "nnunet_training")] = counts.get(r.get("kind", "nnunet_training"), 0) + 1
        verb = "was" if len(rows) == 1 else "were"
        return f"nothing ran: the {_jobs_in_words(counts) if rows else '0 trainings'} {verb} done before (read back)"
    counts = {}
    for r in ran:
        counts[r.get("kind", "nnunet_training")] = counts.get(r.get("kind", "nnunet_training"), 0) + 1
    total = sum(r["seconds"] for r in ran)
    return (f"{_jobs_in_words(counts)} on backend {backend}: their own times add up to {total:.0f} s, they took "
            f"{wall_seconds:.0f} s of wall time ({total / wall_seconds:.2f} jobs' worth per second of wall time)")


def job_timings(rows: Iterable[Mapping]) -> list[tuple[str, str, float]]:
    """``(model, step, seconds)`` of notebook 04's jobs (a :class:`~echo_utils.compute.progress.JobsReport`'s rows)
    for :func:`timings_table`: ``"train fold k"`` for a training, ``"predict <set>"`` (the job name's last part:
    ``test``, ``trainval``, ``fig2``) for a prediction."""
    out = []
    for r in rows:
        if r.get("kind") == "nnunet_prediction":
            out.append((r["model"], "predict " + r["name"].rsplit("-", 1)[1], r["seconds"]))
        else:
            out.append((r["model"], f"train fold {r['fold']}", r["seconds"]))
    return out


def convergence_statement(verdicts: pd.DataFrame) -> str:
    """Markdown: how many trainings converged (:func:`~echo_utils.segmentation.train.convergence`, every class
    learned), and which did not, with their verdicts."""
    still = [f"{MODEL_NAMES[m]} (fold {f}): {verdicts.loc[(m, f), 'verdict']}"
             for m, f in verdicts.index[verdicts.verdict != "converged"]]
    return (f"**Convergence:** {len(verdicts) - len(still)} of {len(verdicts)} trainings converged by the rule "
            "above (every class learned)"
            + (f"; not converged: {'; '.join(still)}. Their comparisons below are provisional." if still else "."))


def budget_text(budgets: Mapping[str, int], iterations_per_epoch: int) -> str:
    """The training budget in words, e.g. "2D sparse, 2D dense: at most 200 epochs; 3D dense: at most 400; 4
    iterations per epoch"; ``budgets``: ``{model: epochs}`` (:func:`~echo_utils.segmentation.plans.epoch_budgets`)."""
    groups: dict[int, list[str]] = {}
    for model, epochs in budgets.items():
        groups.setdefault(int(epochs), []).append(MODEL_NAMES[model])
    if len(groups) == 1:
        return f"at most {next(iter(groups))} epochs of {iterations_per_epoch} iterations"
    parts = [f"{', '.join(names)}: at most {epochs}" + (" epochs" if i == 0 else "")
             for i, (epochs, names) in enumerate(groups.items())]
    return f"{'; '.join(parts)}; {iterations_per_epoch} iterations per epoch"


def training_curves_figure(logs: pd.DataFrame, verdicts: pd.DataFrame, *, title: str):
    """Training and validation loss (left) and the validation pseudo Dice (right: its EMA, labelled with the
    verdict, and the raw values faint) of every (model, fold) of :func:`~echo_utils.segmentation.train.
    training_log` rows."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=["loss", "validation Dice (EMA)"], horizontal_spacing=0.12)
    for (model, fold), g in logs.groupby(["model", "fold"], sort=False):
        c, name = MODEL_COLORS[model], MODEL_NAMES[model]
        fig.add_trace(go.Scatter(x=g.epoch, y=g.train_loss, name=f"{name} train", line=dict(color=c),
                                 legendgroup=model), 1, 1)
        fig.add_trace(go.Scatter(x=g.epoch, y=g.val_loss, name=f"{name} val", line=dict(color=c, dash="dot"),
                                 legendgroup=model), 1, 1)
        fig.add_trace(go.Scatter(x=g.epoch, y=g.ema_pseudo_dice, name=f"{name}: {verdicts.loc[(model, fold), 'verdict']}",
                                 line=dict(color=c), legendgroup=model), 1, 2)
        fig.add_trace(go.Scatter(x=g.epoch, y=g.pseudo_dice, line=dict(color=c, width=1), opacity=0.35,
                                 legendgroup=model, showlegend=False), 1, 2)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="Dice + cross-entropy (unitless)", row=1, col=1)
    fig.update_yaxes(title_text="Dice", range=[0, 1], row=1, col=2)
    fig.update_layout(title=title, height=440)
    return fig


def class_dice_figure(logs: pd.DataFrame):
    """The validation pseudo Dice (EMA) of each class (one panel per ``ema dice <class>`` column), every model: a
    class at 0 has not been learned, whatever the mean does."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    classes = [c for c in logs.columns if c.startswith("ema dice ")]
    fig = make_subplots(rows=1, cols=len(classes), subplot_titles=[c[len("ema dice "):] for c in classes],
                        shared_yaxes=True)
    for (model, _), g in logs.groupby(["model", "fold"], sort=False):
        for j, c in enumerate(classes, start=1):
            fig.add_trace(go.Scatter(x=g.epoch, y=g[c], name=MODEL_NAMES[model], line=dict(color=MODEL_COLORS[model]),
                                     legendgroup=model, showlegend=j == 1), 1, j)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="validation Dice (EMA)", range=[0, 1], row=1, col=1)
    fig.update_layout(title="Validation Dice (EMA) of each class: a class at 0 has not been learned, whatever the "
                      "mean does", height=380)
    return fig


def predictions_slider(run: "NnUNetRun", models: Sequence[str], seq: "EchoSequence"):
    """Every model's saved prediction of ``seq`` side by side (and its dense reference first, where it has one), a
    slider over the frames (:func:`echo_utils.report.widgets.prediction_slider`)."""
    from ..segmentation.predict import load_prediction
    from .widgets import prediction_slider

    panels = {MODEL_NAMES[m]: load_prediction(run.predictions, m, seq) for m in models}
    if seq.dense is not None:
        panels = {f"reference ({seq.dense_kind})": seq.dense, **panels}
    return prediction_slider(seq, panels, title=f"{seq.key}: predictions of every model, frame by frame "
                             f"(ED = frame {seq.ed}, ES = frame {seq.es})")


def prediction_statement(rows: Iterable[Mapping]) -> str:
    """The prediction jobs among a :class:`~echo_utils.compute.progress.JobsReport`'s ``rows`` in one sentence: each
    set (model and split, its own seconds), or that they were read back."""
    sets = [r for r in rows if r.get("kind") == "nnunet_prediction"]
    if not sets:
        return "no prediction set in this report"
    parts = [f"{MODEL_NAMES.get(r['model'], r['model'])} ({r['name'].rsplit('-', 1)[1]}) "
             + (f"{r['seconds']:.0f} s" if r["seconds"] else "-") for r in sets]
    ran = sum(not r["skipped"] for r in sets)
    when = "each started once its model was trained" if ran else "done before (read back), their times then"
    return f"{len(sets)} prediction sets, {when}: " + ", ".join(parts)


def timings_table(timings: Iterable[tuple[str, str, float]]) -> pd.DataFrame:
    """``(model, step, seconds)`` triples as a table with those columns (``metrics/nnunet_timings.csv``)."""
    return pd.DataFrame(list(timings), columns=["model", "step", "seconds"])


def timing_summary(table: pd.DataFrame, wall_seconds: float) -> tuple[pd.DataFrame, str]:
    """Seconds per model and step (a step's seconds summed; rounded to 0.1 s) and one sentence: the notebook's wall
    time against the steps' sum, in minutes (jobs that ran at the same time count separately)."""
    pivot = table.pivot_table(index="model", columns="step", values="seconds", aggfunc="sum", sort=False).round(1)
    return pivot, (f"notebook wall time {wall_seconds / 60:.1f} min; the steps above add up to "
                   f"{table.seconds.sum() / 60:.1f} min (jobs that ran at the same time count separately)")


def cli_commands(run: "NnUNetRun", env: Mapping[str, str], device: str) -> list[str]:
    """The run as nnU-Net command lines: the environment (``env``, :func:`~echo_utils.segmentation.env.
    configure_nnunet`'s variables), then per model its plan-and-preprocess, training (every fold) and prediction
    commands, with the run's dataset ids, configurations, process counts and ``device``; a note where the 3D
    inputs are padded along time (crop the predictions)."""
    from .. import segmentation as seg

    nn = run.nn
    lines = ["export " + " ".join(f"{k}={v}" for k, v in env.items()), ""]
    for model in nn.models:
        ds, conf = seg.dataset_id(nn, model), seg.configuration_name(nn, model)
        parent = seg.SPECS[model].parent_configuration
        k = seg.dataset_time_padding(run, model)
        lines += [f"# {model}",
                  f"nnUNetv2_plan_and_preprocess -d {ds} -c {parent} -np {nn.n_proc} --verify_dataset_integrity",
                  *([f"nnUNetv2_preprocess -d {ds} -c {conf} -np {nn.n_proc}  # its own spacing"]
                    if nn.in_plane_size else []),
                  *[f"nnUNetv2_train {ds} {conf} {f} -tr {seg.TRAINER} -device {device}" for f in nn.folds],
                  f"nnUNetv2_predict -d {ds} -c {conf} -f {' '.join(map(str, nn.folds))} -tr {seg.TRAINER} "
                  f"-i $nnUNet_raw/{seg.dataset_name(nn, model)}/imagesTs -o predictions_cli/{model}"
                  + ("" if nn.mirroring else " --disable_tta") + f" -device {device}",
                  *([f"# imagesTs holds the sequences with {k} mirrored frames at each end (nnunet.time_padding): "
                     "crop them off the predictions, as predict_all does"] if k else []),
                  ""]
    return lines
