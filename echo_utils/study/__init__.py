"""The study's home: :class:`Study` (the validated profile, the run directory's folders and the resolved cohort,
built once by :func:`open_study`), the cohort's resolution and evaluation set (:mod:`.cohort`), the run's checks
before it starts (:mod:`.checks`) and one stage function per pipeline step (:mod:`.stages`).

The notebooks and the compute jobs (:mod:`echo_utils.compute.pipeline`) both call the stages; the file names of a
run directory are :mod:`echo_utils.artifacts.files`, every cached step's record :mod:`echo_utils.artifacts.record`.

>>> study = open_study("notebooks/params/ci.yaml", run_dir="runs/ci")       # doctest: +SKIP
>>> net = stages.registration(study)                                        # doctest: +SKIP
"""

from . import checks, cohort, stages
from .core import Cohort, Study, open_study, resolve_cohort

__all__ = ["Cohort", "Study", "open_study", "resolve_cohort", "checks", "cohort", "stages"]
