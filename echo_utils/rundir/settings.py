"""The settings a run directory was made with: ``run.json``, compared before anything is written.

The first run writes ``run.json`` (:func:`settings_record`: the resolved profile, its hash, where it came from).
Every later run (the runner, or a notebook opened by hand) compares its own record with it first
(:func:`check_settings`); a difference is a :class:`SettingsMismatch` that names the differing keys and suggests
another ``--run-dir``. Keys that change only the speed (:data:`RUNTIME_KEYS`, :data:`RUNTIME_SECTIONS`) are recorded
but not compared.

>>> check_settings("runs/ci", settings_record(cfg), write=True)   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from ..artifacts.files import SETTINGS_FILE
from ..artifacts.read import DamagedFile
from ..artifacts.record import KeyedRecord, RecordMismatch, flatten_settings
from ..config import ConfigError, StudyConfig, config_hash, display_path
from .paths import utc_now, writes

__all__ = ["RUNTIME_KEYS", "RUNTIME_SECTIONS", "SettingsMismatch", "settings_record", "settings_diff",
           "without_runtime_keys",
           "settings_file", "read_settings", "check_settings"]

# Profile keys that change how fast a run goes, not what it computes: recorded, never compared.
RUNTIME_KEYS = frozenset({"nnunet.threads", "nnunet.pools", "nnunet.n_proc", "registration.threads",
                          "registration.elastix.workers"})
# Whole sections that only say where the work runs (echo_utils.compute: backend, shards, Slurm): never compared.
RUNTIME_SECTIONS = ("compute.",)


class SettingsMismatch(ConfigError, RecordMismatch):
    """The run directory was made with other settings: names the differing keys (the artifact store's
    :class:`~echo_utils.artifacts.record.RecordMismatch` of ``run.json``, and a :class:`ConfigError`)."""


def without_runtime_keys(dumped: dict) -> dict:
    """A dumped profile (``model_dump(mode="json")``, nested) without the :data:`RUNTIME_KEYS` (a copy): what the
    work depends on, e.g. for a job's cache key."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in dumped.items()}
    for key in RUNTIME_KEYS:
        *parents, last = key.split(".")
        node = out
        for part in parents:
            if not isinstance(node.get(part), dict):
                break
            node[part] = dict(node[part])  # copied on the way down: the caller's dump is left as it was
            node = node[part]
        else:
            node.pop(last, None)
    return out


def _compared(dumped: dict) -> dict[str, object]:
    """A dumped profile (``model_dump(mode="json")``) as dotted keys, the runtime keys left out."""
    return {k: v for k, v in flatten_settings(dumped).items()
            if k not in RUNTIME_KEYS and not k.startswith(RUNTIME_SECTIONS)}


def settings_record(cfg: StudyConfig, *, params: str | Path | None = None, overrides: dict | None = None) -> dict:
    """What ``run.json`` holds: the resolved profile, its hash (runtime keys excluded), where it came from
    (``params``, ``overrides``) and when (``created``, UTC)."""
    profile = cfg.model_dump(mode="json")
    return {
        "profile_hash": config_hash(_compared(profile)),
        "profile": profile,
        "params": display_path(params) if params is not None else None,
        "overrides": overrides or {},
        "created": utc_now(),
    }


def settings_diff(recorded: dict, current: dict) -> list[tuple[str, object, object]]:
    """Differing keys of two dumped profiles, as ``(dotted key, recorded value, current value)``, sorted.

    The profile schema grows: a key the record lacks (an option added since) counts only when its current value
    is not the option's default (the default keeps the earlier behaviour), and a recorded key the schema no longer
    has (an option removed since) is not compared.
    """
    a, b = _compared(recorded), _compared(current)
    defaults = _compared(StudyConfig(name="defaults").model_dump(mode="json"))
    rows = []
    for key in sorted(b):
        if key not in a:
            if key in defaults and b[key] == defaults[key]:
                continue
            rows.append((key, None, b[key]))
        elif a[key] != b[key]:
            rows.append((key, a[key], b[key]))
    return rows


def settings_file(run_dir: str | Path) -> KeyedRecord:
    """``run_dir/run.json`` as the artifact store's keyed record: the resolved profile under ``"profile"``, compared
    by :func:`settings_diff`, written as ``json.dumps(indent=2, sort_keys=True)`` and a line break."""
    run_dir = Path(run_dir)
    return KeyedRecord(
        run_dir / SETTINGS_FILE,
        what=f"run directory {display_path(run_dir)}",
        field="profile",
        advice=(f"Nothing was changed. Use another run directory for these settings (--run-dir runs/<new name>), "
                f"or rerun with the recorded ones ({display_path(run_dir / SETTINGS_FILE)})."),
        error=SettingsMismatch,
        diff=settings_diff,
        rebuild="move it away or use another --run-dir",
        indent=2, sort_keys=True, newline=True,
    )


def read_settings(run_dir: str | Path) -> dict | None:
    """The recorded ``run.json`` of ``run_dir``, or ``None`` when there is none yet; a damaged one (or one without
    a profile) is a :class:`ConfigError` naming it."""
    try:
        return settings_file(run_dir).read()
    except DamagedFile as exc:
        raise ConfigError(str(exc)) from None


def check_settings(run_dir: str | Path, record: dict, *, write: bool = False) -> dict | None:
    """Refuse a run whose settings differ from those ``run_dir`` was made with; nothing is written on refusal.

    Parameters
    ----------
    run_dir : the run directory (it may not exist yet).
    record : this run's settings record (:func:`settings_record`); its ``"profile"`` is what is compared.
    write : write ``record`` as ``run.json`` when the directory has none yet (the directory must exist then).

    Returns the recorded settings (``None`` when none were recorded and ``write`` is false).

    Raises
    ------
    SettingsMismatch naming every differing key with both values, and suggesting ``--run-dir``;
    RunDirNotWritable when ``run.json`` cannot be written.
    """
    run_dir = Path(run_dir)
    store = settings_file(run_dir)
    if run_dir.is_dir():
        try:
            recorded = store.check(record["profile"])
        except DamagedFile as exc:
            raise ConfigError(str(exc)) from None
        if recorded is not None:
            return recorded
    if not write:
        return None
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {display_path(run_dir)} does not exist; its settings cannot be recorded")
    with writes(run_dir):
        return store.write(record)
