"""CAMUS and TED readers, kept importable as ``echo_utils.camus`` (the code is in :mod:`echo_utils.data.camus`)."""

from .data import camus as _impl
from .data.camus import *  # noqa: F401,F403 - the public names of the readers
from .data.camus import __all__  # noqa: F401


def __getattr__(name):
    """Any other name of the readers (private helpers used by tests)."""
    return getattr(_impl, name)
