"""Training the DLIR network: intra-patient frame pairs, cached resumable training, the loss log.

Unsupervised, as the paper (Sec. 2.2) and de Vos et al. (2019): ordered frame pairs of a sequence are the
samples (every pair, as the authors, or only pairs at most ``pair_max_gap`` frames apart: the motion that
sequential propagation registers), the loss is :class:`~echo_utils.registration.losses.RegistrationLoss` with the
bending weight rescaled to the image size (:func:`~echo_utils.registration.losses.scaled_alpha`).  The learning rate
is constant (the authors) or follows a cosine decay; the weights kept are those of the best validation loss (the
authors' ``best_model_iter.pt``) or the last iteration.  A run lives in a folder keyed by its settings and data; an
interrupted run resumes from its checkpoint and reaches the same weights.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..artifacts.atomic import write_bytes, write_text
from ..artifacts.files import REGISTRATION_KEY_FILE
from ..artifacts.record import KeyedRecord
from .inference import keep_freed_memory
from .losses import RegistrationLoss, scaled_alpha
from .models import BSplineDIR, input_scale_for
from .samples import PreparedLoss, batch_indices, check_sequences, fingerprint, frame_pairs, gather
from .variation import FIELD_VARIATION_MIN, field_variation

__all__ = ["frame_pairs", "train_registration", "load_registration", "load_training_log", "field_variation",
           "FIELD_VARIATION_MIN", "learning_rate"]

#: bump when the meaning of a saved checkpoint changes (part of the cache key)
_FORMAT_VERSION = 3  # 2: bending energy averaged over the components (TorchIR), best-validation weights;
#                    # 3: the log records the field variation across the validation pairs


_TRAIN_KEYS = ("grid_spacing", "alpha", "ncc", "iterations", "batch_size", "lr", "kernels", "seed")
#: options added later, in the cache key only when they differ from these defaults (the authors' choices)
_OPTIONAL_KEYS = {"loss_sigma": 0.0, "loss_mask": "none", "alpha_reference_size": None, "pair_max_gap": None, "lr_schedule": "constant",
                  "keep": "best", "lr_warmup": 0.05, "output_init_std": 0.0, "input_size": None,
                  "group_norm": 0}
MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "log.csv"


def _safe_load(path: Path, device) -> dict:
    """``torch.load`` restricted to tensors and plain containers (:func:`echo_utils.safe_load.load_torch`,
    ``weights_only=True``): a checkpoint file cannot run code when it is read.  A file that needs more (a pickled
    object) is an :class:`~echo_utils.safe_load.UnsafeFile`, a truncated one a
    :class:`~echo_utils.safe_load.DamagedFile`; both are ``ValueError`` s naming the file."""
    from ..safe_load import load_torch, rerun_hint

    return load_torch(path, map_location=device, rebuild=lambda: rerun_hint(path, "02", delete=True))


def _resume_state(path: Path, device) -> dict | None:
    """The resume checkpoint; a damaged one is set aside (``None``: the training starts from iteration 0 and
    reaches the same weights). A checkpoint that would run code is refused (raised), never set aside."""
    from ..safe_load import DamagedFile

    try:
        return _safe_load(path, device)
    except DamagedFile as exc:
        _set_aside(path, exc)
        return None


def _set_aside(path: Path, exc: Exception) -> None:
    """A damaged cache file is renamed ``<name>.damaged`` (kept for inspection) with a note, and rebuilt."""
    import sys

    os.replace(path, path.with_name(path.name + ".damaged"))
    print(f"note: {str(exc).split(';')[0]}; set aside as {path.name}.damaged and rebuilt", file=sys.stderr)


def _atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` through the run directory's one atomic writer (:func:`echo_utils.artifacts.write_bytes`).

    Serialised in memory first: ``torch.save`` to a file names the zip archive's root folder after the file, so
    saving to the writer's random temporary name would make two identical trainings write different bytes."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def learning_rate(iteration: int, lr: float, iterations: int, schedule: str = "constant",
                  warmup: float = 0.05) -> float:
    """The learning rate of (0-based) ``iteration``: constant (the authors), or ``'cosine'``: a linear warm-up over
    the fraction ``warmup`` of the iterations (default 5 %; at least one iteration) then a cosine decay to 1 % of
    ``lr`` at the last iteration.  A pure function of the iteration, so a resumed run follows the same schedule."""
    if schedule == "constant":
        return float(lr)
    if schedule != "cosine":
        raise ValueError(f"unknown lr_schedule {schedule!r}; use 'constant' or 'cosine'")
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup}")
    warm = max(1, int(round(warmup * iterations)))
    if iteration < warm:
        return float(lr) * (iteration + 1) / warm
    t = (iteration - warm) / max(1, iterations - 1 - warm)
    return float(lr) * (0.01 + 0.99 * 0.5 * (1.0 + np.cos(np.pi * min(t, 1.0))))


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _cfg_get(config, key, default=None):
    if isinstance(config, dict):
        return config.get(key, default)
    return getattr(config, key, default)


@torch.no_grad()
def _validate(model: BSplineDIR, loss_fn: PreparedLoss, sequences, pairs, batch_size, device) -> dict:
    """Mean loss, NCC and bending energy over the validation pairs, and :func:`field_variation` of the network's
    control points across them."""
    from .bspline import bspline_upsample

    model.eval()
    tot = {"loss": 0.0, "ncc": 0.0, "bending": 0.0}
    n = 0
    cps = []
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i : i + batch_size]
        fixed, moving = gather(sequences, chunk, device)
        cp = model.control_points(fixed, moving).float()
        u = bspline_upsample(cp, model.grid_spacing, fixed.shape[-2:])
        cps.append(cp.cpu())
        terms = loss_fn.loss(chunk, fixed, moving, u)
        for k in tot:
            tot[k] += float(getattr(terms, k)) * len(chunk)
        n += len(chunk)
    model.train()
    return {**{k: v / max(n, 1) for k, v in tot.items()}, **field_variation(torch.cat(cps))}


class _Threads:
    """``torch.set_num_threads(n)`` inside the block, the previous count restored after (``None``: unchanged)."""

    def __init__(self, n: int | None):
        self.n, self.old = n, None

    def __enter__(self):
        if self.n is not None:
            self.old = torch.get_num_threads()
            torch.set_num_threads(int(self.n))

    def __exit__(self, *exc):
        if self.old is not None:
            torch.set_num_threads(self.old)


def key_record(out: str | Path) -> KeyedRecord:
    """``<run>/key.json``: the settings, architecture and data fingerprints a registration run was trained with
    (its folder name is their hash), as the artifact store's keyed record; written before the training starts
    (``model.pt`` is the run's done marker), as ``json.dumps(indent=1)`` with the keys in their order (the layout
    of every earlier run, which reads back unchanged)."""
    out = Path(out)
    return KeyedRecord(out / REGISTRATION_KEY_FILE, what="the registration run",
                       advice=f"Nothing was changed. Delete {out} to train it again with these settings.",
                       indent=1, sort_keys=False)


def train_registration(
    sequences: Sequence,
    config,
    run_dir: str | Path,
    *,
    val_sequences: Sequence | None = None,
    device: str | torch.device | None = None,
    exclude_patients: Sequence[str] = (),
    max_val_pairs: int = 128,
    progress: bool = True,
    callback: Callable[[int, dict], None] | None = None,
    monitor: Callable[[BSplineDIR], dict] | None = None,
) -> BSplineDIR:
    """Train (or load from the cache) the DLIR B-spline network on intra-patient frame pairs.

    Parameters
    ----------
    sequences : training :class:`~echo_utils.camus.EchoSequence` list, all of one image size.
    config : :class:`~echo_utils.config.RegistrationConfig` (or a dict with its keys).
    run_dir : the registration cache folder (``paths.registration``); the run lives in ``run_dir/<hash>/`` where
        the hash covers the training settings, the architecture and a fingerprint of the data.
    val_sequences : held-out sequences for the validation curve; ``None`` keeps a random subset of the training
        pairs aside instead (as the authors' 400 validation pairs), which are then not trained on.
    device : ``'cpu'``, ``'cuda'`` or ``None``/``'auto'`` (CUDA if available).
    exclude_patients : patient ids never used (e.g. the evaluation patients, as the paper leaves out TED).
    max_val_pairs : at most this many validation pairs (a deterministic random subset).
    progress : show a tqdm bar with the loss and NCC.
    callback : ``callback(iteration, row)`` after every iteration (row: the logged values); may raise to stop.
    monitor : ``monitor(model) -> {column: value}`` at every validation (the model in eval mode), logged with the
        validation row (e.g. the end-point error against a phantom's exact motion); not part of the cache key.

    Every ordered pair ``(a, b)``, ``a != b``, of each sequence is a sample (fixed = frame a, moving = frame b);
    ``config.pair_max_gap`` keeps only pairs at most that many frames apart (training and validation pairs alike).
    Batches are drawn from per-epoch permutations seeded by ``config.seed``.  Adam (amsgrad), ``config.lr`` with
    ``config.lr_schedule`` (:func:`learning_rate`), ``config.batch_size``, ``config.iterations``; the bending weight
    is ``scaled_alpha(config.alpha, image size, config.alpha_reference_size)``.  ``config.keep='best'`` (default, the
    authors) returns the weights of the lowest validation loss (iteration 0, the identity, included), ``'last'``
    those of the last iteration; ``model.kept_iteration`` says which.  The checkpoint (``checkpoint.pt``, written atomically every
    ``checkpoint_every`` iterations) holds the model, optimiser and log, so an interrupted run resumes where it
    stopped and reaches the same weights as an uninterrupted one on CPU.  The finished model is ``model.pt``; a
    rerun with the same settings and data loads it without training.  The loss log is ``log.csv``
    (:func:`load_training_log`).  The returned model is in eval mode, ready for inference
    (:meth:`BSplineDIR.optimise_for_inference`), whether it was trained now or loaded.

    Every validation row of the log also holds :func:`field_variation` of the network's control points across the
    validation pairs (``cp_mean_px``, ``cp_spread_px``, ``field_variation``); ``model.field_variation`` is that of
    the kept weights (0 at iteration 0: the untrained network is the zero field), so a network that outputs one
    field for every pair is caught (:data:`FIELD_VARIATION_MIN`).  ``config.output_init_std`` > 0 draws the output
    layer's weights from N(0, std) instead of zeros (VoxelMorph and CLAS use 1e-5); ``config.lr_warmup`` is the
    warm-up fraction of the cosine schedule; ``config.input_size`` (``None``: full resolution) makes the network
    read the pairs average-pooled to that height (:func:`~echo_utils.registration.models.input_scale_for`) while the
    field, the loss and the bending weight stay at the full resolution; ``config.group_norm`` > 0 puts group
    normalisation with that many groups after every hidden convolution (:class:`BSplineDIR`); ``config.threads`` sets the torch threads during training (speed only,
    not in the cache key; ``None`` leaves them as they are).
    """
    from ..config import config_hash

    device = _resolve_device(device)
    size = check_sequences(sequences, "training")
    if val_sequences is not None and len(val_sequences):
        vsize = check_sequences(val_sequences, "validation")
        if vsize != size:
            raise ValueError(f"validation image size {vsize} differs from the training size {size}")
    settings = {k: _cfg_get(config, k) for k in _TRAIN_KEYS}
    missing = [k for k, v in settings.items() if v is None]
    if missing:
        raise ValueError(f"train_registration: config lacks {missing}")
    for k, default in _OPTIONAL_KEYS.items():  # in the cache key only when they differ from the default
        value = _cfg_get(config, k, default)
        if value is not None and value != default and not (k == "loss_sigma" and not value):
            settings[k] = value
    loss_sigma = float(settings.get("loss_sigma", 0.0))
    max_gap = settings.get("pair_max_gap")
    schedule = settings.get("lr_schedule", "constant")
    keep = settings.get("keep", "best")
    if keep not in ("best", "last"):
        raise ValueError(f"train_registration: keep must be 'best' or 'last', got {keep!r}")
    alpha = scaled_alpha(float(settings["alpha"]), size, settings.get("alpha_reference_size"))
    arch = dict(grid_spacing=int(settings["grid_spacing"]), kernels=int(settings["kernels"]), image_size=list(size))
    if settings.get("group_norm"):
        arch["group_norm"] = int(settings["group_norm"])
    scale = input_scale_for(size, settings.get("input_size"), arch["grid_spacing"])
    if scale != 1:
        arch["input_scale"] = scale
    else:  # input_size = the image height is the full-resolution network: the same run (and cache key)
        settings.pop("input_size", None)
    model = BSplineDIR(**arch)  # validates the size/spacing before anything is written

    train_pairs = frame_pairs(sequences, exclude_patients=exclude_patients, max_gap=max_gap)
    if len(train_pairs) == 0:
        raise ValueError("train_registration: no training pairs left after excluding patients")
    rng = np.random.default_rng([int(settings["seed"]), 7])
    if val_sequences is not None and len(val_sequences):
        val_seqs = list(val_sequences)
        val_pairs = frame_pairs(val_seqs, exclude_patients=exclude_patients, max_gap=max_gap)
        if len(val_pairs) > max_val_pairs:
            val_pairs = val_pairs[np.sort(rng.choice(len(val_pairs), max_val_pairs, replace=False))]
    else:
        val_seqs = list(sequences)
        n_val = min(max_val_pairs, max(1, len(train_pairs) // 10)) if len(train_pairs) > 1 else 0
        chosen = rng.choice(len(train_pairs), n_val, replace=False)
        mask = np.zeros(len(train_pairs), bool)
        mask[chosen] = True
        val_pairs, train_pairs = train_pairs[np.sort(chosen)], train_pairs[~mask]

    key = {
        "format": _FORMAT_VERSION,
        "settings": settings,
        "arch": model.config,
        "train": fingerprint(sequences),
        "val": fingerprint(val_sequences) if val_sequences is not None else None,
        "exclude": sorted(exclude_patients),
        "max_val_pairs": max_val_pairs,
    }
    digest = config_hash(key)
    out = Path(run_dir) / digest
    final = out / MODEL_FILE
    if final.exists():
        from ..safe_load import DamagedFile

        try:
            return load_registration(final, device=device)
        except DamagedFile as exc:  # truncated on disk: trained again (the same weights, seeded)
            _set_aside(final, exc)
    out.mkdir(parents=True, exist_ok=True)
    # the run's keyed record: a key.json already there (an interrupted run resuming) must hold this very key
    key_record(out).claim(json.loads(json.dumps(key, default=str)))

    seed = int(settings["seed"])
    torch.manual_seed(seed)
    keep_freed_memory()  # reuse the iteration's large activations instead of page-faulting them in again
    model = BSplineDIR(**arch)
    init_std = float(settings.get("output_init_std", 0.0))
    if init_std > 0:
        model.init_output(init_std)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=float(settings["lr"]), amsgrad=True)
    loss_fn = RegistrationLoss(alpha=alpha, ncc=settings["ncc"], sigma=loss_sigma, mask=settings.get("loss_mask", "none"))
    train_loss = PreparedLoss(loss_fn, sequences, device)
    val_loss = PreparedLoss(loss_fn, val_seqs, device) if val_sequences is not None and len(val_sequences) else train_loss
    iterations, batch = int(settings["iterations"]), int(settings["batch_size"])
    warmup = float(settings.get("lr_warmup", 0.05))
    threads = _cfg_get(config, "threads", None)
    validate_every = int(_cfg_get(config, "validate_every", 100))
    checkpoint_every = int(_cfg_get(config, "checkpoint_every", 250))

    log: list[dict] = []
    start = 0
    best = {"loss": float("inf"), "iteration": 0, "state_dict": None}
    ckpt_path = out / CHECKPOINT_FILE
    ckpt = _resume_state(ckpt_path, device) if ckpt_path.exists() else None
    if ckpt is not None:
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        start, log = int(ckpt["iteration"]), list(ckpt["log"])
        best = ckpt.get("best", best)

    def consider(vrow: dict, iteration: int):
        """Keep the weights of the lowest validation loss (ties: the earlier)."""
        if vrow["loss"] < best["loss"]:
            best.update(loss=float(vrow["loss"]), iteration=int(iteration),
                        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()})

    def save_log():
        import pandas as pd

        write_text(out / LOG_FILE, pd.DataFrame(log).to_csv(index=False))

    def checkpoint(iteration: int):
        _atomic_torch_save(
            {"state_dict": model.state_dict(), "optimizer": opt.state_dict(), "iteration": iteration, "log": log,
             "best": best},
            ckpt_path,
        )
        save_log()

    def validation_row(iteration: int) -> dict:
        vrow = {"iteration": iteration, "split": "val", **_validate(model, val_loss, val_seqs, val_pairs, batch, device)}
        if monitor is not None:
            model.eval()
            with torch.no_grad():
                vrow.update(monitor(model))
            model.train()
        return vrow

    from tqdm.auto import tqdm

    threads_ctx = _Threads(threads)
    threads_ctx.__enter__()
    bar = tqdm(total=iterations, initial=start, desc=f"DLIR {digest}", disable=not progress, dynamic_ncols=True)
    try:
        if start == 0 and len(val_pairs):
            log.append({**validation_row(0), "seconds": 0.0})
            consider(log[-1], 0)
        model.train()
        t0 = time.perf_counter() - (log[-1]["seconds"] if log else 0.0)
        for it in range(start, iterations):
            idx = batch_indices(it, len(train_pairs), batch, seed)
            fixed, moving = gather(sequences, train_pairs[idx], device)
            for group in opt.param_groups:
                group["lr"] = learning_rate(it, float(settings["lr"]), iterations, schedule, warmup)
            u = model(fixed, moving)
            terms = train_loss.loss(train_pairs[idx], fixed, moving, u)
            opt.zero_grad(set_to_none=True)
            terms.loss.backward()
            opt.step()
            row = {
                "iteration": it + 1,
                "split": "train",
                "loss": terms.loss.item(),
                "ncc": terms.ncc.item(),
                "bending": terms.bending.item(),
                "seconds": time.perf_counter() - t0,
            }
            log.append(row)
            if len(val_pairs) and ((it + 1) % validate_every == 0 or it + 1 == iterations):
                vrow = validation_row(it + 1)
                vrow["seconds"] = time.perf_counter() - t0
                log.append(vrow)
                consider(vrow, it + 1)
                bar.set_postfix(loss=f"{row['loss']:.4f}", ncc=f"{row['ncc']:.4f}", val_ncc=f"{vrow['ncc']:.4f}")
            else:
                bar.set_postfix(loss=f"{row['loss']:.4f}", ncc=f"{row['ncc']:.4f}")
            bar.update(1)
            if (it + 1) % checkpoint_every == 0 and it + 1 < iterations:
                checkpoint(it + 1)
            if callback is not None:
                callback(it + 1, row)
    finally:
        bar.close()
        threads_ctx.__exit__()

    model.eval()
    save_log()
    kept = iterations
    if keep == "best" and best["state_dict"] is not None:
        model.load_state_dict(best["state_dict"])
        kept = best["iteration"]
    variation = _kept_variation(log, kept)
    _atomic_torch_save(
        {"config": model.config, "state_dict": model.state_dict(), "settings": settings, "iterations": iterations,
         "kept_iteration": kept, "field_variation": variation},
        final,
    )
    ckpt_path.unlink(missing_ok=True)
    model.run_dir = out
    model.kept_iteration = kept
    model.field_variation = variation
    return model.optimise_for_inference()


def _kept_variation(log: list[dict], iteration: int) -> float | None:
    """The field variation logged at the validation of ``iteration`` (``None`` without a validation there)."""
    rows = [r for r in log if r.get("split") == "val" and int(r["iteration"]) == int(iteration)]
    return float(rows[-1]["field_variation"]) if rows and "field_variation" in rows[-1] else None


def load_registration(path: str | Path, device: str | torch.device | None = "cpu") -> BSplineDIR:
    """Rebuild a trained :class:`BSplineDIR` from ``model.pt`` (or the run folder holding it), in eval mode.

    The architecture (grid spacing, kernels, image size) is read from the file.  The model is ready for fast
    inference (:meth:`BSplineDIR.optimise_for_inference`).
    """
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no trained registration model at {path}")
    device = _resolve_device(device)
    ckpt = _safe_load(path, device)  # UnsafeFile (would run code) or DamagedFile (truncated), naming the file
    try:
        model = BSplineDIR(**ckpt["config"])
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise ValueError(f"{path} is not a BSplineDIR checkpoint: {exc}") from exc
    model.to(device).optimise_for_inference()
    model.run_dir = path.parent
    model.kept_iteration = int(ckpt.get("kept_iteration", ckpt.get("iterations", 0)))
    fv = ckpt.get("field_variation")
    model.field_variation = None if fv is None else float(fv)
    return model


def load_training_log(model_or_dir: BSplineDIR | str | Path):
    """The loss log of a training run as a DataFrame.

    Columns: ``iteration``, ``split`` (``'train'`` per iteration, ``'val'`` every ``validate_every`` and at
    iteration 0 = the identity), ``loss``, ``ncc``, ``bending`` (px^-2), ``seconds`` (wall time since the start);
    on validation rows also ``cp_mean_px``, ``cp_spread_px`` and ``field_variation`` (:func:`field_variation`) and
    the columns of the ``monitor`` that training was given.
    """
    if isinstance(model_or_dir, BSplineDIR):
        if model_or_dir.run_dir is None:
            raise ValueError("this BSplineDIR was not trained or loaded from a run folder; pass the folder")
        folder = Path(model_or_dir.run_dir)
    else:
        folder = Path(model_or_dir)
        if folder.is_file():
            folder = folder.parent
    path = folder / LOG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no training log at {path}")
    from ..safe_load import read_table, rerun_hint

    return read_table(path, columns=("iteration", "split", "loss"),
                      rebuild=lambda: rerun_hint(path, "02", delete=folder))

