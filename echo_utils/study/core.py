"""The study itself: the validated profile, the run directory's folders and the resolved cohort, built once.

:func:`open_study` is the one call that makes a :class:`Study` (a notebook's first cell, ``--submit``, a
benchmark): it loads and validates the profile, checks and locks-checks the run directory against its ``run.json``
(:func:`echo_utils.rundir.open_run`) and then resolves the cohort **once** (:class:`Cohort`: the data set root,
the train/val/test patients, every patient's folder, the registration's excluded patients and, on the paper
profile, the TED -> CAMUS pairs: :mod:`echo_utils.study.cohort`).  Everything downstream (the stages of
:mod:`echo_utils.study.stages`, the compute jobs) reads the cohort from the study instead of working it out again
from the profile.

A study is serialisable: :meth:`Study.to_dict` is plain JSON (the profile dump, the run directory, the resolved
cohort), and :meth:`Study.from_dict` rebuilds it without touching the data set, so a job runs the same in this
process, in a subprocess or on a Slurm node.

>>> study = open_study("notebooks/params/ci.yaml", run_dir="runs/ci")      # doctest: +SKIP
>>> train = study.sequences("train")                                       # doctest: +SKIP
>>> Study.from_dict(study.to_dict()).cohort == study.cohort                 # doctest: +SKIP
True
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import StudyConfig
from ..data import cohort as cohort_data
from ..data.camus import EchoSequence
from ..rundir import RunPaths, open_run
from .cohort import Cohort, resolve_cohort

__all__ = ["Cohort", "Study", "open_study", "resolve_cohort"]


class Study:
    """A study: ``cfg`` (the validated :class:`~echo_utils.config.StudyConfig`), ``paths`` (its run directory's
    :class:`~echo_utils.rundir.RunPaths`) and ``cohort`` (:class:`Cohort`).

    The cohort is resolved once, on first use (:func:`resolve_cohort`), or given (:meth:`from_dict` of a study
    that had resolved it): a job planned without the data set (``--submit --dry-run``, the nnU-Net trainings)
    does not need it.
    """

    def __init__(self, cfg: StudyConfig, paths: RunPaths | str | Path, cohort: Cohort | None = None):
        self.cfg = cfg
        self.paths = paths if isinstance(paths, RunPaths) else RunPaths(paths)
        self._cohort = cohort

    def __repr__(self) -> str:
        state = "resolved" if self._cohort is not None else "not resolved yet"
        return f"Study({self.cfg.name!r}, run_dir={str(self.paths.root)!r}, cohort {state})"

    @property
    def cohort(self) -> Cohort:
        """The resolved cohort (worked out from the profile on first use, then kept)."""
        if self._cohort is None:
            self._cohort = resolve_cohort(self.cfg, self.paths)
        return self._cohort

    @property
    def resolved(self) -> bool:
        """Whether the cohort has been resolved (or was given)."""
        return self._cohort is not None

    @property
    def run_dir(self) -> Path:
        return Path(self.paths.root)

    def sequences(self, split: str = "all") -> list[EchoSequence]:
        """The sequences of ``split`` in the study's order, read now (a list: for the small splits a step uses)."""
        from tqdm import tqdm

        keys = self.cohort.keys(split)
        return list(tqdm(self.read_sequences(keys, listed_in="the split"), total=len(keys), desc=f"load {split}",
                         disable=len(keys) < 40))

    def read_sequences(self, keys, *, listed_in: str = "the split"):
        """The sequences ``keys`` (``(patient, view)`` pairs), one at a time (every folder checked first)."""
        c = self.cohort
        return cohort_data.read_sequences(c.patients, [tuple(k) for k in keys], root=c.root, ted=c.ted,
                                          resize=c.resize, listed_in=listed_in)

    def to_dict(self) -> dict:
        """Plain JSON: the profile dump, the run directory and the cohort (``None`` when not resolved yet)."""
        return {"profile": self.cfg.model_dump(mode="json"), "run_dir": str(self.paths.root),
                "cohort": None if self._cohort is None else self._cohort.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "Study":
        """The study of :meth:`to_dict`, the profile validated strictly (as :func:`echo_utils.config.load_config`);
        a resolved cohort is taken as it is (the data set is not read)."""
        cfg = StudyConfig.model_validate_json(json.dumps(d["profile"]), strict=True)
        cohort = None if d.get("cohort") is None else Cohort.from_dict(d["cohort"])
        return cls(cfg, RunPaths(d["run_dir"]), cohort)

    @classmethod
    def of(cls, cfg: StudyConfig, paths: RunPaths) -> "Study":
        """The study of a profile already checked against its run directory (``ctx.cfg, ctx.paths`` of
        :func:`echo_utils.run.setup_notebook`), its cohort resolved now."""
        study = cls(cfg, paths)
        study.cohort  # noqa: B018 - resolve now: a data set problem is reported here, not in the middle of a step
        return study


def open_study(
    params: str | Path,
    overrides: object = None,
    run_dir: str | Path | None = None,
    device: str | None = None,
    *,
    create: bool = True,
) -> Study:
    """The one function that builds a :class:`Study`: :func:`echo_utils.rundir.open_run` (the profile, checked
    against the run directory's recorded settings and lock, before anything is written), then the cohort.

    Parameters are those of :func:`~echo_utils.rundir.open_run`; it raises what that raises, and
    :class:`~echo_utils.data.camus.EchoDataError` for a data set that cannot be resolved.
    """
    cfg, paths = open_run(params, overrides, run_dir, device, create=create)
    return Study.of(cfg, paths)
