"""What a run can be checked for before anything runs, in plain arguments: the run directory, the device, the data
roots and the split.

The study layer's :func:`echo_utils.study.checks.preflight` (called by the runner before it takes the lock, and all
that ``--check`` adds to the profile and ``run.json`` checks) hands these checks the profile's sections. Nothing is
written and no image is read:

* :func:`check_run_dir`: the run directory can be written (:func:`echo_utils.rundir.writable_problem`): a
  read-only mount is named now, not as a traceback from the lock;
* :func:`check_device`: the device exists: ``cuda`` (from the profile or ``--device``) needs a GPU that torch sees;
* :func:`check_data`: the data roots of a ``data`` section exist and hold the expected layout (``data.root`` for
  CAMUS, ``data.ted_root`` for TED, the ``data.ted_map`` file), found by :mod:`echo_utils.data.camus`'s own layout
  detection: patient folders, and the files of each view in the first one;
* :func:`check_split`: the split leaves at least one patient for training and testing, and for validation when
  ``data.val_fraction`` asks for one: computed as the run will compute it
  (:func:`echo_utils.data.cohort.cohort_split` without writing; for a synthetic cohort not generated yet, from
  ``data.n_patients``).

Each problem is a :class:`PreflightError` (a :class:`~echo_utils.config.ConfigError`: the runner prints it as one
line), naming the key or the path and what to do.
"""

from __future__ import annotations

from pathlib import Path

from .config import ConfigError

__all__ = ["PreflightError", "check_run_dir", "check_device", "check_data", "check_split"]


class PreflightError(ConfigError):
    """A run that cannot work, found before it started: names the key or the path."""


def check_run_dir(run_dir: str | Path) -> None:
    """The run directory ``run_dir`` can be written (or created); otherwise a
    :class:`~echo_utils.rundir.RunDirNotWritable` that says why (read-only file system, no permission)."""
    from .rundir import RunDirNotWritable, _not_writable_message, writable_problem

    problem = writable_problem(Path(run_dir))
    if problem:
        raise RunDirNotWritable(_not_writable_message(Path(run_dir), problem))


def check_device(device: str) -> None:
    """``device`` (the profile's ``device`` or ``--device``: ``cpu``, ``cuda`` or ``auto``) can be used: ``cuda``
    without a GPU that torch sees is a :class:`PreflightError`."""
    if device != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise PreflightError("device 'cuda' (the profile's device or --device) but torch sees no GPU on this machine "
                             "(torch.cuda.is_available() is False): use --device cpu, or --device auto")


def check_data(data, data_dir: str | Path) -> None:
    """The data roots of the ``data`` section (:class:`~echo_utils.config.DataConfig`) exist and hold a CAMUS / TED
    layout (a missing synthetic cohort, under ``data.root`` or ``data_dir``, is fine: the run generates it)."""
    from .data.camus import EchoDataError, detect_layout, list_patients
    from .data.cohort import cohort_root, cohort_views, ted_root

    def first_patient_reads(root: Path, views) -> None:
        first = next(iter(list_patients(root).values()))  # the root's layout, then its first patient's files
        for view in views:
            detect_layout(first, view)

    d = data
    try:
        if d.source != "synthetic":
            first_patient_reads(cohort_root(d, data_dir, generate=False), cohort_views(d))
        if d.source == "camus" and d.ted_root:
            first_patient_reads(ted_root(d), ("4CH",))
        if d.ted_map and not Path(d.ted_map).is_file():
            raise EchoDataError(f"data.ted_map = {d.ted_map!r}: file not found")
    except EchoDataError as exc:
        raise PreflightError(f"data: {exc}") from None


def check_split(data, data_dir: str | Path) -> dict[str, int]:
    """Patients per split (``train``, ``val``, ``test``) of the ``data`` section (the seeded split's record in
    ``data_dir``, the run's ``paths.data``, read but never written); an empty training or test split, or an empty
    validation split while ``data.val_fraction`` > 0, is a :class:`PreflightError`."""
    from .data.camus import EchoDataError
    from .data.cohort import cohort_root, cohort_split
    from .data.split import split_patients

    d = data
    root = Path(d.root) if d.root else Path(data_dir)
    try:
        if d.source == "synthetic" and not (root / "database_split").is_dir():  # not generated yet
            s = split_patients([f"patient{i:04d}" for i in range(1, d.n_patients + 1)], d.seed, d.test_fraction,
                               d.val_fraction)
            sizes = {"train": len(s["training"]), "val": len(s["validation"]), "test": len(s["testing"])}
        else:
            split = cohort_split(d, cohort_root(d, data_dir, generate=False), data_dir, write=False)
            sizes = {k: len(v) for k, v in split.items()}
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
