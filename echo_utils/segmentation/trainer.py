"""EchoTrainer: nnU-Net's ``nnUNetTrainer`` with a budget, a seed and a patch sampling read from the plans.

A plain subclass, importable as ``echo_utils.segmentation.trainer.EchoTrainer``. :func:`~echo_utils.segmentation.
train.train_model` instantiates it directly; nnU-Net's command line finds it by name through ``nnUNet_extTrainer``
(nnU-Net 2.8.1 searches that folder after its own trainers), which :func:`~echo_utils.segmentation.env.
configure_nnunet` points at ``echo_utils/segmentation/ext_trainers/``, whose one module imports this class::

    nnUNetv2_train 802 3d_fullres_small 0 -tr EchoTrainer -device cpu

Its settings are not class attributes but the ``"echo"`` entry of the trained configuration in the plans
(:func:`echo_utils.segmentation.plans.training_settings`); a configuration without one trains with nnU-Net's
defaults. What it changes, and nothing else:

- the budget: ``epochs``, ``iterations_per_epoch``, ``val_iterations``, ``save_every``, and an early stop once
  the EMA validation pseudo Dice has plateaued (after ``min_epochs``; rule in :func:`plateaued`);
- seeding: python's ``random``, numpy and torch are seeded from ``seed`` before the network is built and again at
  the start of every epoch (``seed`` and the epoch number). The augmentation (batchgeneratorsv2) and nnU-Net's
  patch sampler draw from these generators when they run in this process (``nnUNet_n_proc_DA=0``), so a training
  run, and a training resumed from a checkpoint, repeats exactly on the CPU;
- ``oversample_foreground``: the share of patches centred on a labelled voxel (nnU-Net's 0.33 when unset);
- console output: nnU-Net's messages go to its log file only; one tqdm bar per training. The per-epoch curves are
  also written to ``echo_training_log.json`` after every epoch; nnU-Net's ``progress.png`` is redrawn every
  ``save_every`` epochs (:class:`EchoLogger`);
- a resumed training reads ``checkpoint_latest.pth`` with ``weights_only=True`` (``load_checkpoint``): a
  checkpoint never runs code, as nnU-Net's own ``torch.load(weights_only=False)`` would.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import torch
from nnunetv2.training.logging.nnunet_logger import MetaLogger
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from tqdm import tqdm

from .env import write_json

__all__ = ["EchoTrainer", "seed_everything", "plateaued", "PLATEAU_RISE", "PLATEAU_FRACTION"]

#: The convergence rule of this study: the EMA validation pseudo Dice rose by less than PLATEAU_RISE over the last
#: PLATEAU_FRACTION of the epochs.
PLATEAU_RISE = 0.01
PLATEAU_FRACTION = 0.2


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (CPU and CUDA) with ``seed``."""
    seed = int(seed) % (2**32 - 1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def plateaued(ema: list[float] | np.ndarray, fraction: float = PLATEAU_FRACTION, rise: float = PLATEAU_RISE) -> bool:
    """True when the EMA pseudo Dice rose by less than ``rise`` over the last ``fraction`` of the epochs.

    With ``n`` epochs and ``k = max(1, ceil(fraction * n))``: ``max(ema[n-k:]) - ema[n-k-1] < rise``. Fewer than 2
    epochs never count as a plateau.
    """
    ema = np.asarray(ema, dtype=float)
    n = len(ema)
    if n < 2:
        return False
    k = min(n - 1, max(1, int(np.ceil(fraction * n))))
    return bool(np.max(ema[n - k:]) - ema[n - k - 1] < rise)


class EchoLogger(MetaLogger):
    """nnU-Net's logger, drawing its progress PNG only every ``plot_every`` epochs (and at the end of training).

    nnU-Net redraws ``progress.png`` with matplotlib after every epoch, about half a second of CPU each time: with
    the short epochs of the CPU profiles that would be a fifth of the training time.
    """

    plot_every = 1

    def plot_progress_png(self, output_folder: str):
        if len(self.get_value("epoch_end_timestamps", step=None)) % self.plot_every == 0:
            super().plot_progress_png(output_folder)


class EchoTrainer(nnUNetTrainer):
    """``nnUNetTrainer`` with the settings of the plans' ``"echo"`` entry (see the module docstring)."""

    echo_verbose = False  # True: nnU-Net's messages also on the console (train_model(..., verbose=True))

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.echo = dict(self.configuration_manager.configuration.get("echo") or {})
        self.num_epochs = self.echo.get("epochs", self.num_epochs)
        self.num_iterations_per_epoch = self.echo.get("iterations_per_epoch", self.num_iterations_per_epoch)
        self.num_val_iterations_per_epoch = self.echo.get("val_iterations", self.num_val_iterations_per_epoch)
        self.save_every = self.echo.get("save_every", self.save_every)
        if self.echo.get("oversample_foreground") is not None:
            self.oversample_foreground_percent = float(self.echo["oversample_foreground"])
        self.logger = EchoLogger(self.logger.output_folder, self.logger.resume)
        self.logger.plot_every = self.save_every

    def _seed(self, epoch: int | None = None) -> None:
        if "seed" in self.echo:
            seed_everything(self.echo["seed"] if epoch is None else self.echo["seed"] + 1_000_003 * (epoch + 1))

    def initialize(self):
        """nnU-Net's ``initialize`` (network, optimiser, loss) after seeding: the same initial weights every time."""
        self._seed()
        super().initialize()

    def load_checkpoint(self, filename_or_checkpoint: dict | str) -> None:
        """nnU-Net's ``load_checkpoint`` (a resumed training, ``nnUNetv2_train ... --c``) with the file read by the
        study's safe loader (:func:`echo_utils.segmentation.predict.load_checkpoint`, ``weights_only=True``).

        nnU-Net reads it with ``torch.load(weights_only=False)``, which runs whatever code is pickled into a
        ``checkpoint_latest.pth``; here such a file is an :class:`~echo_utils.safe_load.UnsafeFile` raised before
        the trainer is touched. What is restored, and how, is nnU-Net 2.8.1's own (whose version also fails on a
        dict argument: ``checkpoint`` is only bound for a path).
        """
        checkpoint = filename_or_checkpoint
        if not isinstance(checkpoint, dict):
            from .predict import load_checkpoint as safe_load_checkpoint

            checkpoint = safe_load_checkpoint(Path(checkpoint))
        if not self.was_initialized:
            self.initialize()
        network = self.network.module if self.is_ddp else self.network
        network = getattr(network, "_orig_mod", network)  # torch.compile's OptimizedModule
        own = network.state_dict().keys()
        # a state dict saved from nn.DataParallel has 'module.' keys: nnU-Net's heuristic
        weights = {k[7:] if k not in own and k.startswith("module.") else k: v
                   for k, v in checkpoint["network_weights"].items()}
        self.my_init_kwargs = checkpoint["init_args"]
        self.current_epoch = checkpoint["current_epoch"]
        self.logger.load_checkpoint(checkpoint["logging"])
        self._best_ema = checkpoint["_best_ema"]
        self.inference_allowed_mirroring_axes = checkpoint.get("inference_allowed_mirroring_axes",
                                                               self.inference_allowed_mirroring_axes)
        network.load_state_dict(weights)
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        if self.grad_scaler is not None and checkpoint["grad_scaler_state"] is not None:
            self.grad_scaler.load_state_dict(checkpoint["grad_scaler_state"])

    def print_to_log_file(self, *args, also_print_to_console=True, add_timestamp=True):
        super().print_to_log_file(*args, also_print_to_console=also_print_to_console and self.echo_verbose,
                                  add_timestamp=add_timestamp)

    def on_epoch_start(self):
        self._seed(self.current_epoch)
        super().on_epoch_start()

    def on_epoch_end(self):
        super().on_epoch_end()
        write_json(Path(self.output_folder) / "echo_training_log.json", self.logger.get_checkpoint())

    def should_stop(self) -> bool:
        """Early stop: at least ``min_epochs`` epochs done and the EMA pseudo Dice has :func:`plateaued`."""
        min_epochs = self.echo.get("min_epochs")
        ema = self.logger.get_value("ema_fg_dice", step=None)
        return min_epochs is not None and len(ema) >= min_epochs and plateaued(ema)

    def run_training(self):
        """nnU-Net's loop (``nnUNetTrainer.run_training``) with a progress bar and the early stop."""
        self.on_train_start()
        desc = f"{self.plans_manager.dataset_name} {self.configuration_name} fold {self.fold}"
        with tqdm(total=self.num_epochs, initial=self.current_epoch, desc=desc, unit="epoch", mininterval=2.0,
                  file=sys.stderr) as bar:
            while self.current_epoch < self.num_epochs and not (self.current_epoch > 0 and self.should_stop()):
                self.on_epoch_start()
                self.on_train_epoch_start()
                train_outputs = [self.train_step(next(self.dataloader_train))
                                 for _ in range(self.num_iterations_per_epoch)]
                self.on_train_epoch_end(train_outputs)
                with torch.no_grad():
                    self.on_validation_epoch_start()
                    val_outputs = [self.validation_step(next(self.dataloader_val))
                                   for _ in range(self.num_val_iterations_per_epoch)]
                    self.on_validation_epoch_end(val_outputs)
                self.on_epoch_end()
                bar.set_postfix(loss=f"{self.logger.get_value('train_losses', -1):.3f}",
                                ema_dice=f"{self.logger.get_value('ema_fg_dice', -1):.3f}")
                bar.update()
        self.on_train_end()
        MetaLogger.plot_progress_png(self.logger, self.output_folder)
