"""The synthetic cohort: the stable import path ``echo_utils.phantom`` of DESIGN.md's public API.

Only the contract name lives here (``make_cohort``). The generator is :mod:`echo_utils.data.phantom` (its patients
in :mod:`echo_utils.data.phantom_patient`, their motion in :mod:`echo_utils.data.phantom_motion`) and the cohort
writer :mod:`echo_utils.data.phantom_cohort` (``cohort_summary``, ``CohortMismatch``, ...): import any other name
from there. Nothing inside ``echo_utils`` imports this module.
"""

from .data.phantom_cohort import make_cohort

__all__ = ["make_cohort"]
