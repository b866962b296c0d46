"""The shell command that reruns (and so resumes) a run: :func:`resume_command`."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from ..config import display_path

__all__ = ["set_items", "resume_command"]


def set_items(tree: dict, prefix: str = "") -> list[str]:
    """Nested overrides as ``--set`` items: ``{"registration": {"alpha": 0}}`` -> ``["registration.alpha=0"]``
    (non-string values as JSON)."""
    items = []
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            items += set_items(v, f"{prefix}{k}.")
        else:
            items.append(f"{prefix}{k}={json.dumps(v) if not isinstance(v, str) else v}")
    return items


def resume_command(
    params: str | Path,
    overrides: dict | None,
    run_dir: str | Path,
    device: str | None = None,
    only: list[str] | None = None,
) -> str:
    """The shell command that reruns (and so resumes) a run: finished notebooks' steps are cached."""
    args = ["python", "-m", "echo_utils.run", "--params", display_path(params)]
    for item in set_items(overrides or {}):
        args += ["--set", item]
    args += ["--run-dir", display_path(run_dir)]
    if device:
        args += ["--device", device]
    if only:
        args += ["--only", *only]
    return shlex.join(args)
