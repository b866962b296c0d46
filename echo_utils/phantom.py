"""The synthetic cohort generator, kept importable as ``echo_utils.phantom`` (the code is in
:mod:`echo_utils.data.phantom`)."""

from .data import phantom as _impl
from .data.phantom import *  # noqa: F401,F403 - the public names of the generator
from .data.phantom import __all__  # noqa: F401


def __getattr__(name):
    """Any other name of the generator (private helpers used by tests and benchmarks)."""
    return getattr(_impl, name)
