"""The synthetic cohort generator, kept importable as ``echo_utils.phantom``: the phantom
(:mod:`echo_utils.data.phantom`, its patients in :mod:`echo_utils.data.phantom_patient`) and its cohort writer
(:mod:`echo_utils.data.phantom_cohort`)."""

from .data import phantom as _impl
from .data import phantom_cohort as _cohort
from .data.phantom import *  # noqa: F401,F403 - the public names of the generator
from .data.phantom_cohort import *  # noqa: F401,F403 - make_cohort, cohort_summary, ...

__all__ = [*_impl.__all__, *_cohort.__all__]


def __getattr__(name):
    """Any other name of the generator or the writer (private helpers used by tests and benchmarks)."""
    for module in (_impl, _cohort):
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module 'echo_utils.phantom' has no attribute {name!r}")
