"""CAMUS and TED readers, kept importable as ``echo_utils.camus``: the readers are in :mod:`echo_utils.data.camus`,
the study's cohort, split and selections (``load_study`` and friends) in :mod:`echo_utils.data.study`."""

from .data import camus as _impl
from .data.camus import *  # noqa: F401,F403 - the public names of the readers
from .data.camus import __all__ as _readers
from .data.study import iter_study, load_study, study_root, study_sequences, study_split  # noqa: F401

__all__ = [*_readers, "study_root", "study_split", "study_sequences", "iter_study", "load_study"]


def __getattr__(name):
    """Any other name of the readers (private helpers used by tests)."""
    return getattr(_impl, name)
