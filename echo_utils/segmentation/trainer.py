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
- ``padding_as_ignore`` (3D sparse): the frames a patch holds past the ends of a sequence (nnU-Net pads them with
  seg -1) become the ignore label instead of background, in the training and the validation transforms
  (:class:`PaddedFramesAsIgnore`, :meth:`EchoTrainer.get_training_transforms`); padding in plane (past the image's
  edge) stays background, as nnU-Net makes it: ignored too, it left the network untaught at the image's edges
  (demo, nnU-Net seeds 0 / 1: 12,057 / 172,027 foreground voxels predicted in the black top-left corners of the
  test sequences, none with it background);
- ``time_jitter`` (3D sparse, ``nnunet.time_jitter``): nnU-Net centres a patch on its sampled labelled voxel, so
  every labelled frame (ED or ES) sits in the middle of its patches, and the network never learns to segment a
  frame from context on one side only, which is all it has at the ends of a sequence. Here the patch is moved
  along time so that the labelled frame lies at a uniformly random position of the patch the network sees (:func:`jittered_time_start`,
  :class:`LabelledFrameDataLoader`, installed by :meth:`EchoTrainer.get_dataloaders`);
- ``random_in_plane`` (3D sparse): a patch that must hold a labelled voxel takes only its *time* from that voxel;
  in plane it is placed as nnU-Net places a random patch (:func:`random_starts`). nnU-Net centres the patch on
  the voxel in every axis, so with ``oversample_foreground`` 1.0 few patches lie on the image as the
  sliding-window prediction does (a 64-px demo frame in a 64-px patch is mostly shifted towards its labelled
  structure, its far side padding that ``padding_as_ignore`` ignores): the network was rarely taught the image's
  edges and corners, and segmented the left atrium in the black corners of the test frames (demo, seed 0, one
  machine: LA Dice 0.65 / 0.73 at ED / ES without, 0.81 / 0.87 with). Installed by
  :meth:`EchoTrainer.get_dataloaders` with the time jitter;
- ``deep_supervision_full_time_only`` (3D sparse): deep supervision stays on, but the outputs whose targets are
  downsampled along time get loss weight 0 (:meth:`EchoTrainer._build_loss`): nearest-exact downsampling keeps
  every other frame and drops the labelled ones (ED is frame 0);
- ``min_class_dice``: the early stop waits until every class's EMA validation pseudo Dice is at least this;
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
from batchgeneratorsv2.transforms.base.basic_transform import SegOnlyTransform
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.logging.nnunet_logger import MetaLogger
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from tqdm import tqdm

from .env import write_json

__all__ = ["EchoTrainer", "LabelledFrameDataLoader", "labelled_frame_loader", "PaddedFramesAsIgnore",
           "seed_everything", "plateaued", "class_ema", "full_time_weights", "jittered_time_start", "labelled_frames",
           "start_range", "random_starts", "PLATEAU_RISE", "PLATEAU_FRACTION", "EMA_FACTOR"]

#: The convergence rule of this study: the EMA validation pseudo Dice rose by less than PLATEAU_RISE over the last
#: PLATEAU_FRACTION of the epochs.
PLATEAU_RISE = 0.01
PLATEAU_FRACTION = 0.2
#: nnU-Net's EMA of the validation pseudo Dice: ema = EMA_FACTOR * ema + (1 - EMA_FACTOR) * dice, per epoch
EMA_FACTOR = 0.9


def class_ema(per_class, factor: float = EMA_FACTOR) -> np.ndarray:
    """nnU-Net's EMA (its ``ema_fg_dice`` rule, applied per class) of per-epoch per-class pseudo Dice ``(n, C)``.

    ``ema[0] = dice[0]``, ``ema[t] = factor * ema[t-1] + (1 - factor) * dice[t]``. A NaN Dice (the class absent from
    both the validation patches and the prediction) leaves the EMA where it was; a class NaN from the start stays
    NaN until its first value.
    """
    d = np.asarray(per_class, dtype=float)
    if d.ndim != 2:
        raise ValueError(f"per-class Dice must be (epochs, classes), got shape {d.shape}")
    out = np.full_like(d, np.nan)
    prev = np.full(d.shape[1], np.nan)
    for t in range(d.shape[0]):
        x = d[t]
        prev = np.where(np.isnan(x), prev, np.where(np.isnan(prev), x, factor * prev + (1 - factor) * x))
        out[t] = prev
    return out


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


def full_time_weights(weights, scales) -> tuple[float, ...]:
    """Deep-supervision loss weights with 0 for every output whose target is downsampled along time (``scale[0] <
    1``, time the first axis), the others renormalised to sum 1 (their ratios kept)."""
    w = np.array(weights, dtype=float)
    if len(w) != len(scales):
        raise ValueError(f"{len(w)} weights for {len(scales)} deep-supervision scales")
    w[[float(sc[0]) < 1 for sc in scales]] = 0.0
    if w.sum() <= 0:
        raise ValueError("no deep-supervision output at full time resolution has a loss weight")
    return tuple(float(v) for v in w / w.sum())


def labelled_frames(class_locations: dict | None) -> np.ndarray:
    """The time indices (axis 0 of a 3D case) that hold a sampled labelled voxel: nnU-Net's ``class_locations``
    (``{class or region: (N, 4) array of (channel, t, y, x)}``) reduced to their distinct frames, sorted."""
    if not class_locations:
        return np.zeros(0, dtype=int)
    frames = [np.asarray(v)[:, 1] for v in class_locations.values() if len(v)]
    return np.unique(np.concatenate(frames)).astype(int) if frames else np.zeros(0, dtype=int)


def jittered_time_start(start: int, patch: int, seen: int, frames, lowest: int, highest: int, rng=np.random) -> int:
    """The first frame of a patch moved along time so that a labelled frame lies at a random place in it.

    ``start``: the first frame nnU-Net chose (its patch of ``patch`` frames, centred on a labelled voxel);
    ``seen``: the frames the network sees of it (nnU-Net crops the centre ``seen`` frames after augmentation);
    ``frames``: the labelled frames of the case (:func:`labelled_frames`); ``lowest``, ``highest``: the range nnU-Net
    samples a start from (padding included). One labelled frame inside the seen part is drawn, then its place in the
    seen part (uniform over the ``seen`` places), and the start is clamped to ``[lowest, max(highest, lowest)]``, which
    keeps the frame inside the patch. A patch with no labelled frame in view is returned unchanged. ``rng``: numpy's
    global generator by default, which the trainer seeds, so the draws repeat.
    """
    offset = (patch - seen) // 2
    frames = np.asarray(frames, dtype=int)
    inside = frames[(frames >= start + offset) & (frames < start + offset + seen)]
    if inside.size == 0:
        return int(start)
    frame = int(inside[rng.randint(inside.size)]) if inside.size > 1 else int(inside[0])
    place = offset + int(rng.randint(seen))
    return int(min(max(frame - place, lowest), max(highest, lowest)))


def start_range(shape: int, patch: int, pad: int) -> tuple[int, int]:
    """``(lowest, highest)``: the first voxels, along one axis, that nnU-Net's ``nnUNetDataLoader.get_bbox``
    samples a patch from, ``[-pad // 2, shape + pad // 2 + pad % 2 - patch]``, where ``pad`` (the loader's
    ``need_to_pad``) is widened to ``patch - shape`` for an axis shorter than the patch, as nnU-Net does."""
    shape, patch, pad = int(shape), int(patch), int(pad)
    pad = max(pad, patch - shape)
    return -pad // 2, shape + pad // 2 + pad % 2 - patch


def random_starts(data_shape, patch_size, need_to_pad, rng=np.random) -> list[int]:
    """The first voxel, per axis, of a patch placed as nnU-Net places a random one (``get_bbox`` without a class
    to hold): uniform over :func:`start_range`. ``patch_size`` is the loader's (augmentation) patch, larger than
    the one the network sees when rotations are on, which nnU-Net crops from its centre: for an axis whose
    ``shape + pad`` equals the patch the start is fixed, and the network's patch lies on the image exactly as a
    sliding-window tile does. ``rng``: numpy's global generator by default."""
    starts = []
    for shape, patch, pad in zip(data_shape, patch_size, need_to_pad):
        low, high = start_range(shape, patch, pad)
        starts.append(int(rng.randint(low, high + 1)))
    return starts


class EchoLogger(MetaLogger):
    """nnU-Net's logger, drawing its progress PNG only every ``plot_every`` epochs (and at the end of training).

    nnU-Net redraws ``progress.png`` with matplotlib after every epoch, about half a second of CPU each time: with
    the short epochs of the CPU profiles that would be a fifth of the training time.
    """

    plot_every = 1

    def plot_progress_png(self, output_folder: str):
        if len(self.get_value("epoch_end_timestamps", step=None)) % self.plot_every == 0:
            super().plot_progress_png(output_folder)


class LabelledFrameDataLoader(nnUNetDataLoader):
    """nnU-Net's data loader for 3D patches that must hold a labelled frame (the 3D sparse model), with two
    switches (class attributes, set by :meth:`EchoTrainer.get_dataloaders` on a subclass):

    - ``random_in_plane``: a patch centred on a labelled voxel keeps only its time; its in-plane place is drawn as
      for a random patch (:func:`random_starts`), so the network sees the frame where prediction puts it;
    - ``time_jitter``: the patch is moved along time by :func:`jittered_time_start`, each labelled frame at a
      uniformly random place of the patch the network sees, instead of in its middle.

    :func:`labelled_frame_loader` makes the subclass with the switches on.
    """

    random_in_plane = False
    time_jitter = False

    def get_bbox(self, data_shape, force_fg, class_locations, overwrite_class=None, verbose=False):
        lbs, ubs = super().get_bbox(data_shape, force_fg, class_locations, overwrite_class, verbose)
        if len(data_shape) != 3:
            return lbs, ubs
        if self.random_in_plane and force_fg:
            lbs = [lbs[0], *random_starts(data_shape[1:], self.patch_size[1:], self.need_to_pad[1:])]
        if self.time_jitter:
            patch = int(self.patch_size[0])
            lowest, highest = start_range(data_shape[0], patch, self.need_to_pad[0])
            seen = patch - int(self.need_to_pad[0])
            start = jittered_time_start(lbs[0], patch, seen, labelled_frames(class_locations), lowest, highest)
            lbs = [start, *lbs[1:]]
        return lbs, [lo + size for lo, size in zip(lbs, self.patch_size)]


def labelled_frame_loader(random_in_plane: bool = False, time_jitter: bool = False) -> type:
    """A :class:`LabelledFrameDataLoader` subclass with these switches."""
    return type("EchoDataLoader", (LabelledFrameDataLoader,),
                {"random_in_plane": bool(random_in_plane), "time_jitter": bool(time_jitter)})


class PaddedFramesAsIgnore(SegOnlyTransform):
    """nnU-Net's padding label (-1) in a ``(C, T, H, W)`` patch: a frame that is padding throughout lies past the
    ends of the sequence and becomes ``ignore``; every other padded voxel (in plane: the patch past the image's
    edge, or rotated in from there) becomes ``background``, as nnU-Net's own ``RemoveLabelTransform(-1, 0)``
    makes it. A 2D patch ``(C, H, W)`` has no frames: all its padding becomes ``background``."""

    def __init__(self, ignore: int, background: int = 0):
        super().__init__()
        self.ignore, self.background = int(ignore), int(background)

    def _apply_to_segmentation(self, segmentation: torch.Tensor, **params) -> torch.Tensor:
        pad = segmentation == -1
        if segmentation.ndim == 4:
            frames = pad.flatten(2).all(dim=2)  # (C, T): frames padded throughout
            segmentation[pad & frames[:, :, None, None]] = self.ignore
        segmentation[segmentation == -1] = self.background
        return segmentation


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
            from .checkpoint import load_checkpoint as safe_load_checkpoint

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
        """Early stop: at least ``min_epochs`` epochs done, the EMA pseudo Dice has :func:`plateaued`, and every
        class's EMA pseudo Dice (:func:`class_ema`) is at least ``min_class_dice``: a mean EMA can plateau while a
        class sits at 0 (the 3D sparse model's LV and LA before their supervision was fixed)."""
        min_epochs = self.echo.get("min_epochs")
        ema = self.logger.get_value("ema_fg_dice", step=None)
        if min_epochs is None or len(ema) < min_epochs or not plateaued(ema):
            return False
        last = class_ema(self.logger.get_value("dice_per_class_or_region", step=None))[-1]
        return bool(np.all(np.nan_to_num(last, nan=0.0) >= self.echo.get("min_class_dice", 0.0)))

    def get_dataloaders(self):
        """nnU-Net's data loaders; with ``random_in_plane`` or ``time_jitter`` (3D patches) they are
        :class:`LabelledFrameDataLoader` s with those switches.

        nnU-Net builds its loaders inside ``get_dataloaders`` and starts their worker processes there, so the class
        is swapped in for that call only (the name ``nnUNetDataLoader`` of nnU-Net's trainer module): the workers,
        if any, get the same loader too.
        """
        switches = {k: bool(self.echo.get(k)) for k in ("random_in_plane", "time_jitter")}
        if not any(switches.values()) or len(self.configuration_manager.patch_size) != 3:
            return super().get_dataloaders()
        import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as trainer_module

        original = trainer_module.nnUNetDataLoader
        trainer_module.nnUNetDataLoader = labelled_frame_loader(**switches)
        try:
            return super().get_dataloaders()
        finally:
            trainer_module.nnUNetDataLoader = original

    def _padding_as_ignore(self, transforms):
        """nnU-Net's transforms with the frames past the sequence (seg -1 throughout) mapped to the ignore label
        instead of background (:class:`PaddedFramesAsIgnore`); in-plane padding stays background."""
        from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTransform

        ignore = self.label_manager.ignore_label
        if not self.echo.get("padding_as_ignore") or ignore is None:
            return transforms
        found = [i for i, t in enumerate(transforms.transforms)
                 if isinstance(t, RemoveLabelTransform) and t.label_value == -1]
        if len(found) != 1:
            raise RuntimeError(f"expected one RemoveLabelTransform(-1, ...) in nnU-Net's transforms, found {found}")
        background = int(transforms.transforms[found[0]].set_to)  # nnU-Net's 0
        transforms.transforms[found[0]] = PaddedFramesAsIgnore(int(ignore), background)
        return transforms

    def get_training_transforms(self, *args, **kwargs):
        """nnU-Net's training transforms; with ``padding_as_ignore`` the padding past the sequence is ignored."""
        return self._padding_as_ignore(super().get_training_transforms(*args, **kwargs))

    def get_validation_transforms(self, *args, **kwargs):
        """nnU-Net's validation transforms; with ``padding_as_ignore`` the padding past the sequence is ignored."""
        return self._padding_as_ignore(super().get_validation_transforms(*args, **kwargs))

    def _build_loss(self):
        """nnU-Net's loss; with ``deep_supervision_full_time_only`` the outputs downsampled along time (axis 0 of a
        3D patch) get weight 0 and the others keep nnU-Net's relative weights (renormalised to sum 1)."""
        loss = super()._build_loss()
        if self.echo.get("deep_supervision_full_time_only") and self.enable_deep_supervision \
                and len(self.configuration_manager.patch_size) == 3:
            loss.weight_factors = full_time_weights(loss.weight_factors, self._get_deep_supervision_scales())
        return loss

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
