"""Training the nnU-Nets: cached, resumable, seeded per model; their training curves and convergence verdicts.

:func:`train_model` trains :class:`~echo_utils.segmentation.trainer.EchoTrainer` on the plans of
:func:`~echo_utils.segmentation.plans.plan_and_preprocess`, reusing a finished model and resuming an interrupted
one from nnU-Net's checkpoint. Each model is seeded from the profile's seed and its own name
(:func:`~echo_utils.segmentation.env.model_seed`), so a model trained alone equals the same model trained after
others. :func:`training_log` reads nnU-Net's per-epoch curves; :func:`convergence` gives each model's verdict by the
rule of :func:`~echo_utils.segmentation.trainer.plateaued`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from ..config import config_hash
from .env import (LABEL_VALUES, PLANS, TRAINER, NnUNetError, NnUNetRun, configure_nnunet, configuration_name,
                  cpu_threads, dataset_name, quiet, read_json, spec, write_json)
from .plans import plans_file, training_settings

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["train_model", "training_log", "convergence", "results_folder", "fold_folder"]

TRAINING_MARKER = "echo_training.json"


def results_folder(run: NnUNetRun, model: str) -> Path:
    """``<run>/nnunet/results/DatasetXXX_Name/EchoTrainer__nnUNetPlans__<configuration>``."""
    return run.results / dataset_name(run.nn, model) / f"{TRAINER}__{PLANS}__{configuration_name(run.nn, model)}"


def fold_folder(run: NnUNetRun, model: str, fold: int) -> Path:
    """``results_folder(run, model) / fold_<fold>``: one trained fold (its checkpoints and training log)."""
    return results_folder(run, model) / f"fold_{fold}"


def train_model(run: NnUNetRun, model: str, fold: int = 0, device: str = "cpu", *, verbose: bool = False) -> Path:
    """Train fold ``fold`` of ``model`` (after :func:`plan_and_preprocess`); returns the fold folder.

    A fold with ``checkpoint_final.pth`` is reused as it is. A fold with ``checkpoint_latest.pth`` (an interrupted
    run) continues from it, like ``nnUNetv2_train ... --c``; with the per-epoch seeding of ``EchoTrainer`` it ends
    with the model an uninterrupted run gives (on the CPU, ``nnunet.n_proc_da == 0``). The results folder records
    the plans and settings it was trained with; training it again with different ones is a :class:`NnUNetError`
    (the model is kept). On CPU: ``nnunet.threads`` torch threads, no pinned memory (nnU-Net pins only on CUDA),
    nothing compiled.
    """
    import torch

    from .trainer import EchoTrainer

    nn = run.nn
    configure_nnunet(run, device)
    pfile = plans_file(run, model)
    if not pfile.is_file():
        raise NnUNetError(f"no plans for {model} ({pfile}); run plan_and_preprocess first")
    out = fold_folder(run, model, fold)
    marker = out.parent / TRAINING_MARKER
    plans = read_json(pfile)
    conf = plans["configurations"][configuration_name(nn, model)]
    if conf.get("echo") != training_settings(nn, model):
        raise NnUNetError(f"the plans {pfile} hold other training settings than the profile; "
                          "run plan_and_preprocess with this profile first")
    key = {"plans": config_hash(conf, plans["configurations"].get(spec(model).parent_configuration))}
    if marker.is_file():
        old = read_json(marker)
        if old != key:
            raise NnUNetError(
                f"{out.parent} was trained with other plans or settings ({old}) than now ({key}). Finished work "
                "is never overwritten: use a new run directory or another nnunet.dataset_id_base."
            )
    else:
        write_json(marker, key)
    if (out / "checkpoint_final.pth").is_file():
        return out
    latest = out / "checkpoint_latest.pth"
    resume = latest.is_file()
    plans["continue_training"] = resume
    dataset_json = read_json(pfile.parent / "dataset.json")
    log = run.logs / f"{dataset_name(nn, model)}_train_fold{fold}.log"
    with quiet(None if verbose else log), cpu_threads(nn, device):
        trainer = EchoTrainer(plans, configuration_name(nn, model), fold, dataset_json, torch.device(device))
        trainer.echo_verbose = verbose
        if resume:
            trainer.load_checkpoint(str(latest))
        trainer.run_training()
        if nn.configuration == "default":  # nnU-Net's own final validation, as nnUNetv2_train runs it
            trainer.perform_actual_validation(False)
    return out


def training_log(run: NnUNetRun, model: str, fold: int = 0) -> "pd.DataFrame":
    """nnU-Net's per-epoch log: train/val loss, pseudo Dice (mean and its EMA; per class, ``dice <label>``, with
    the same EMA per class, ``ema dice <label>``), lr, seconds."""
    import pandas as pd

    path = fold_folder(run, model, fold) / "echo_training_log.json"
    if not path.is_file():
        raise NnUNetError(f"no training log for {model} fold {fold} ({path}); train the model first")
    log = read_json(path)
    n = len(log["train_losses"])
    df = pd.DataFrame(
        {
            "epoch": np.arange(n),
            "train_loss": log["train_losses"][:n],
            "val_loss": log["val_losses"][:n],
            "pseudo_dice": log["mean_fg_dice"][:n],
            "ema_pseudo_dice": log["ema_fg_dice"][:n],
            "lr": log["lrs"][:n],
            "seconds": np.subtract(log["epoch_end_timestamps"][:n], log["epoch_start_timestamps"][:n]),
        }
    )
    from .trainer import class_ema

    per_class = np.asarray(log["dice_per_class_or_region"][:n], dtype=float)
    ema = class_ema(per_class) if per_class.ndim == 2 and len(per_class) else per_class
    for i, label in enumerate(list(LABEL_VALUES)[1:]):
        if per_class.ndim == 2 and per_class.shape[1] > i:
            df[f"dice {label}"] = per_class[:, i]
            df[f"ema dice {label}"] = ema[:, i]
    df.insert(0, "fold", fold)
    df.insert(0, "model", model)
    return df


def convergence(logs: "pd.DataFrame", budget_epochs: int | Mapping[str, int] | None = None,
                min_class_dice: float = 0.0) -> "pd.DataFrame":
    """One verdict per (model, fold) of :func:`training_log` rows: did the EMA validation pseudo Dice plateau, with
    every class learned?

    ``budget_epochs``: the epoch budget, one for all models or one per model (``{model: epochs}``, e.g. from
    :func:`~echo_utils.segmentation.plans.model_budget`); ``None``: unknown.

    Columns: ``epochs`` trained, ``stopped early`` (fewer than the model's budget), ``EMA Dice`` at the end, the EMA
    of each class at the end (``EMA LV`` ...), ``rise over last 20 %`` (``max(ema[n-k:]) - ema[n-k-1]``,
    ``k = ceil(0.2 n)``) and ``verdict``: "converged" when that rise is below 0.01
    (:data:`~echo_utils.segmentation.trainer.PLATEAU_RISE`) and every class's EMA is at least ``min_class_dice``
    (``nnunet.plateau_min_class_dice``, the trainer's early-stop rule); "plateaued, <classes> not learned" when
    the mean plateaued with a class below it; else "still improving".
    """
    import pandas as pd

    from .trainer import PLATEAU_FRACTION, plateaued

    rows = []
    for (model, fold), g in logs.groupby(["model", "fold"], sort=False):
        ema = g["ema_pseudo_dice"].to_numpy(float)
        n = len(ema)
        budget = budget_epochs.get(model) if isinstance(budget_epochs, Mapping) else budget_epochs
        k = min(n - 1, max(1, int(np.ceil(PLATEAU_FRACTION * n)))) if n > 1 else 0
        rise = float(np.max(ema[n - k:]) - ema[n - k - 1]) if n > 1 else float("nan")
        classes = {c[len("ema dice "):]: float(g[c].iloc[-1]) for c in g.columns if c.startswith("ema dice ")}
        unlearned = [c for c, v in classes.items() if not (v >= min_class_dice)]  # NaN: never seen, not learned
        if not plateaued(ema):
            verdict = "still improving"
        elif unlearned:
            verdict = f"plateaued, {', '.join(unlearned)} not learned"
        else:
            verdict = "converged"
        rows.append({"model": model, "fold": fold, "epochs": n,
                     "stopped early": budget is not None and n < budget,
                     "EMA Dice": float(ema[-1]), **{f"EMA {c}": v for c, v in classes.items()},
                     f"rise over last {PLATEAU_FRACTION:.0%}": rise, "verdict": verdict})
    return pd.DataFrame(rows).set_index(["model", "fold"])
