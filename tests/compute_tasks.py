"""Stand-in job functions for tests/test_compute.py: small, importable by a job's subprocess (PYTHONPATH=tests)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def write_value(path: str, value: int, block_while: str | None = None) -> dict:
    """Append one line to ``<path>.runs`` (how often the job started), wait while ``block_while`` exists, then
    write ``value * value`` to ``path`` atomically."""
    path = Path(path)
    with open(f"{path}.runs", "a") as fh:
        fh.write(f"{os.getpid()}\n")
    while block_while and Path(block_while).exists():
        time.sleep(0.2)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(value * value))
    os.replace(tmp, path)
    return {"outputs": [path]}


def fail(message: str) -> dict:
    """Print a line, then raise: the log tail must show both."""
    print(f"stand-in job starting: {message}", flush=True)
    raise RuntimeError(message)
