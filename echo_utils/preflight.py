"""What a run can be checked for before anything runs: the run directory, the device, the data and the split.

:func:`preflight` is called by the runner before it takes the lock, and is all that ``--check`` adds to the profile
and ``run.json`` checks. Nothing is written and no image is read:

* the run directory can be written (:func:`echo_utils.rundir.writable_problem`): a read-only mount is named now,
  not as a traceback from the lock;
* the device exists: ``cuda`` (from the profile or ``--device``) needs a GPU that torch sees;
* the data roots exist and hold the expected layout (``data.root`` for CAMUS, ``data.ted_root`` for TED, the
  ``data.ted_map`` file), found by :mod:`echo_utils.data.camus`'s own layout detection: patient folders, and
  the files of each view in the first one;
* the split leaves at least one patient for training and testing, and for validation when ``data.val_fraction``
  asks for one: computed as the run will compute it (:func:`echo_utils.data.cohort.study_split` without writing;
  for a synthetic cohort not generated yet, from ``data.n_patients``).

Each problem is a :class:`PreflightError` (a :class:`~echo_utils.config.ConfigError`: the runner prints it as one
line), naming the key or the path and what to do.
"""

from __future__ import annotations

from pathlib import Path

from .config import ConfigError, StudyConfig

__all__ = ["PreflightError", "preflight", "check_device", "check_data", "check_split"]


class PreflightError(ConfigError):
    """A run that cannot work, found before it started: names the key or the path."""


def check_device(cfg: StudyConfig) -> str:
    """The device the run computes on; ``cuda`` without a GPU that torch sees is a :class:`PreflightError`."""
    if cfg.device != "cuda":
        return cfg.torch_device
    import torch

    if not torch.cuda.is_available():
        raise PreflightError("device 'cuda' (the profile's device or --device) but torch sees no GPU on this machine "
                             "(torch.cuda.is_available() is False): use --device cpu, or --device auto")
    return "cuda"


def check_data(cfg: StudyConfig, run_dir: str | Path) -> None:
    """The data roots of the profile exist and hold a CAMUS / TED layout (a missing synthetic cohort is fine: the
    run generates it)."""
    from .data.camus import EchoDataError, detect_layout, list_patients
    from .data.cohort import study_root
    from .rundir import RunPaths

    def first_patient_reads(root: Path, views) -> None:
        first = next(iter(list_patients(root).values()))  # the root's layout, then its first patient's files
        for view in views:
            detect_layout(first, view)

    d = cfg.data
    try:
        if d.source != "synthetic":
            root = study_root(cfg, RunPaths(run_dir), generate=False)
            first_patient_reads(root, ("4CH",) if d.source == "ted" else d.views)
        if d.source == "camus" and d.ted_root:
            from .data.cohort import _expand

            first_patient_reads(_expand(d.ted_root, "ted_root"), ("4CH",))
        if d.ted_map and not Path(d.ted_map).is_file():
            raise EchoDataError(f"data.ted_map = {d.ted_map!r}: file not found")
    except EchoDataError as exc:
        raise PreflightError(f"data: {exc}") from None


def check_split(cfg: StudyConfig, run_dir: str | Path) -> dict[str, int]:
    """Patients per split (``train``, ``val``, ``test``); an empty training or test split, or an empty validation
    split while ``data.val_fraction`` > 0, is a :class:`PreflightError`."""
    from .data.camus import EchoDataError
    from .data.split import split_patients
    from .data.cohort import study_split
    from .rundir import RunPaths

    d = cfg.data
    paths = RunPaths(run_dir)
    root = Path(d.root) if d.root else paths.data
    try:
        if d.source == "synthetic" and not (root / "database_split").is_dir():  # not generated yet
            s = split_patients([f"patient{i:04d}" for i in range(1, d.n_patients + 1)], d.seed, d.test_fraction,
                               d.val_fraction)
            sizes = {"train": len(s["training"]), "val": len(s["validation"]), "test": len(s["testing"])}
        else:
            sizes = {k: len(v) for k, v in study_split(cfg, paths, write=False).items()}
    except EchoDataError as exc:
        raise PreflightError(f"data: {exc}") from None
    needed = ["train", "test"] + (["val"] if d.val_fraction > 0 else [])
    empty = [k for k in needed if sizes[k] < 1]
    if empty:
        n = sum(sizes.values())
        keys = "data.n_patients" if d.source == "synthetic" else "data.max_patients or the data set"
        raise PreflightError(
            f"the split leaves no {' and no '.join(empty)} patient ({n} patients: {sizes['train']} train, "
            f"{sizes['val']} val, {sizes['test']} test with data.test_fraction {d.test_fraction} and "
            f"data.val_fraction {d.val_fraction}): raise {keys} or change the fractions")
    return sizes


def preflight(cfg: StudyConfig, run_dir: str | Path) -> dict:
    """Every check of this module, in order (run directory, device, data, split); returns what was found:
    ``{"device": ..., "split": {"train": n, "val": n, "test": n}}``."""
    from .rundir import RunDirNotWritable, _not_writable_message, writable_problem

    run_dir = Path(run_dir)
    problem = writable_problem(run_dir)
    if problem:
        raise RunDirNotWritable(_not_writable_message(run_dir, problem))
    device = check_device(cfg)
    check_data(cfg, run_dir)
    return {"device": device, "split": check_split(cfg, run_dir)}

