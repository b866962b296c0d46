"""Typed, validated study profiles (``notebooks/params/*.yaml``).

A profile is one YAML file with one section per pipeline stage.  Every key is declared here with its type and
default; an unknown key, a wrong type or an impossible value is a :class:`ConfigError` that names the file and
the offending key, never a silent default.

>>> cfg = load_config("notebooks/params/ci.yaml")          # doctest: +SKIP
>>> cfg.registration.grid_spacing                          # doctest: +SKIP
8

Values can be changed without editing a file: ``overrides`` (a nested dict, dotted keys, or ``--set``-style
``"registration.alpha=0"`` strings whose values are read as YAML) are merged over the file and validated the same
way. Types are strict (``true`` is not an int, ``"1.0"`` is not a float). A few environment variables
(:data:`ENV_OVERRIDES`) override their profile key, between the file and the explicit overrides.

>>> load_config("notebooks/params/ci.yaml", overrides=["registration.alpha=0"]).registration.alpha  # doctest: +SKIP
0.0

The run directory (``runs/<profile>/`` by default) holds everything a run writes; it is
:mod:`echo_utils.rundir`'s (``resolve_run_dir``, ``RunPaths``, and ``open_run``, the one call a notebook makes:
profile + overrides + run directory, checked against the run's recorded settings).

The package: :mod:`~echo_utils.config.schema` (the sections and their checks), :mod:`~echo_utils.config.load`
(YAML, overrides, ``load_config``) and :mod:`~echo_utils.config.hashing` (``config_hash``).
"""

from __future__ import annotations

from .hashing import config_hash
from .load import ENV_OVERRIDES, deep_merge, display_path, load_config, parse_overrides, resolve_params_path
from .schema import (PROJECT_ROOT, SEED_OFFSETS, ComputeConfig, ConfigError, DataConfig, ElastixConfig,
                     EvaluationConfig, NnUNetConfig, OpticalFlowConfig, PseudoLabelConfig, RegistrationConfig,
                     StudyConfig)

__all__ = [
    "ConfigError",
    "DataConfig",
    "RegistrationConfig",
    "ElastixConfig",
    "OpticalFlowConfig",
    "PseudoLabelConfig",
    "NnUNetConfig",
    "EvaluationConfig",
    "ComputeConfig",
    "StudyConfig",
    "load_config",
    "config_hash",
    "PROJECT_ROOT",
    "parse_overrides",
    "deep_merge",
    "resolve_params_path",
    "display_path",
    "ENV_OVERRIDES",
    "SEED_OFFSETS",
]
