"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests run on the CPU with 2 threads, whatever the machine.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PARAMS_DIR = PROJECT_ROOT / "notebooks" / "params"


@pytest.fixture
def ci_params() -> Path:
    return PARAMS_DIR / "ci.yaml"
