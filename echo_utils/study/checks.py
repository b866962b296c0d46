"""The checks of a run before anything runs (``--check``, and the runner before it takes the lock): the profile
translated at the edge into the plain checks of :mod:`echo_utils.preflight`."""

from __future__ import annotations

from pathlib import Path

from ..config import StudyConfig
from ..preflight import check_data, check_device, check_run_dir, check_split
from ..rundir import RunPaths

__all__ = ["preflight"]


def preflight(cfg: StudyConfig, run_dir: str | Path) -> dict:
    """Every check of :mod:`echo_utils.preflight`, in order (run directory, device, data, split) on the profile
    ``cfg`` and the run directory ``run_dir``; returns what was found:
    ``{"device": ..., "split": {"train": n, "val": n, "test": n}}``. Reads only."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    check_device(cfg.device)
    data_dir = RunPaths(run_dir).data
    check_data(cfg.data, data_dir)
    return {"device": cfg.torch_device, "split": check_split(cfg.data, data_dir)}
