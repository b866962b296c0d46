"""The keyed cache record: every cached step of a study records the settings it was made with, and refuses others.

A cached step (the synthetic cohort, the split, the pseudo-label store, the run directory itself) writes its
artifact, then a small JSON record beside it, with :meth:`KeyedRecord.write`.  The record is three things at once:

* the **key**: the settings the artifact depends on (:func:`settings_key` hashes them the same way whatever the
  order of their keys, for folder names);
* the **guard**: :meth:`KeyedRecord.check` compares the stored settings with the ones asked for *before anything is
  written*; a difference is a :class:`RecordMismatch` naming the file, every differing key and both values
  (``registration.alpha: 1.0 there, 0.5 now``), never a silent overwrite or a mix of two settings;
* the **done marker**: written last (atomically, :mod:`echo_utils.artifacts.atomic`), its presence
  (:attr:`KeyedRecord.done`) says the artifact is complete; a run killed before leaves no record, and the step is
  redone.

Read-back (:meth:`KeyedRecord.read`) distrusts the file: a damaged record is a
:class:`~echo_utils.artifacts.read.DamagedFile` naming it.

>>> record = KeyedRecord(root / "cohort.json", what="the synthetic cohort", indent=1, sort_keys=False)  # doctest: +SKIP
>>> if record.check(params) is None:   # absent: build the artifact, then mark it done   # doctest: +SKIP
...     build(root); record.write(params)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from ..config import display_path
from .atomic import write_json
from .read import Rebuild, damaged, read_json

__all__ = ["MISSING", "RecordMismatch", "KeyedRecord", "flatten_settings", "settings_diff", "settings_key"]


class _Missing:
    """A key one side of a comparison does not have (shown as ``(absent)``)."""

    def __repr__(self) -> str:
        return "(absent)"


MISSING = _Missing()

#: ``(dotted key, stored value, wanted value)``
DiffRow = tuple[str, Any, Any]


class RecordMismatch(ValueError):
    """A cached artifact was made with other settings: the message names the record's file, every differing key and
    both values.  ``path`` is the record, ``diff`` the rows ``(dotted key, stored, wanted)``."""

    def __init__(self, message: str, path: str | Path | None = None, diff: list[DiffRow] | tuple = ()):
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.diff = list(diff)


def flatten_settings(tree: dict, prefix: str = "") -> dict[str, object]:
    """Nested settings as dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and tuples are leaves, tuples
    as lists, as JSON reads them back; an empty dict is a leaf)."""
    out: dict[str, object] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten_settings(v, key + "."))
        else:
            out[key] = list(v) if isinstance(v, tuple) else v
    return out


def settings_key(settings: Any, length: int = 12) -> str:
    """A short stable key of JSON-like settings: the first ``length`` hex digits of the SHA-256 of their JSON with
    sorted keys, so the order in which a dict was built does not change it (values that JSON cannot hold are
    written as ``str``).  ``echo_utils.config.config_hash(*parts)`` is the same hash of the list ``parts``."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def settings_diff(stored: dict, wanted: dict) -> list[DiffRow]:
    """The differing dotted keys of two settings trees, sorted: ``(key, stored value, wanted value)``, a key that one
    side lacks given as :data:`MISSING`.  Empty exactly when the two flatten to the same values."""
    a, b = flatten_settings(stored), flatten_settings(wanted)
    rows = []
    for key in sorted(set(a) | set(b)):
        old, new = a.get(key, MISSING), b.get(key, MISSING)
        if old is MISSING or new is MISSING or old != new:
            rows.append((key, old, new))
    return rows


class KeyedRecord:
    """The JSON record of one cached artifact, at ``path``: its settings, the guard on reuse and its done marker.

    Parameters
    ----------
    path : the record's file (e.g. ``pseudo_labels/dlir/params.json``).
    what : the artifact, for the mismatch message (``"the synthetic cohort"``).
    field : the key under which the record holds the settings (``"profile"`` for ``run.json``, ``"params"`` for
        ``split.json``); ``None``: the whole record is the settings.
    advice : the last sentence of the mismatch message (what to do); default: use another run directory or delete
        the artifact's folder.
    error : the :class:`RecordMismatch` subclass raised (a step's own, e.g. ``CohortMismatch``).
    diff : the comparison, ``(stored settings, wanted settings) -> rows`` (default :func:`settings_diff`).
    rebuild : what rebuilds a damaged record, for :class:`~echo_utils.artifacts.read.DamagedFile`.
    indent, sort_keys, newline : the JSON layout of the file (its on-disk format; see :func:`.atomic.write_json`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        what: str = "the cached artifact",
        field: str | None = None,
        advice: str | None = None,
        error: type[RecordMismatch] = RecordMismatch,
        diff: Callable[[dict, dict], list[DiffRow]] = settings_diff,
        rebuild: Rebuild = None,
        indent: int | None = 2,
        sort_keys: bool = True,
        newline: bool = False,
    ):
        self.path = Path(path)
        self.what, self.field, self.advice, self.error, self.diff = what, field, advice, error, diff
        self.rebuild = rebuild
        self._layout = {"indent": indent, "sort_keys": sort_keys, "newline": newline}

    def __repr__(self) -> str:
        return f"KeyedRecord({display_path(self.path)!r}, what={self.what!r})"

    @property
    def done(self) -> bool:
        """Whether the record exists: the artifact it describes was completed (it is written last)."""
        return self.path.is_file()

    def read(self) -> dict | None:
        """The stored record, or ``None`` when there is none; a file that is not a JSON object (holding ``field``)
        is a :class:`~echo_utils.artifacts.read.DamagedFile` naming it."""
        if not self.path.is_file():
            return None
        record = read_json(self.path, rebuild=self.rebuild)
        if not isinstance(record, dict):
            raise damaged(self.path, f"a JSON {type(record).__name__}, not a record", self.rebuild)
        if self.field is not None and self.field not in record:
            raise damaged(self.path, f"no {self.field!r} in it", self.rebuild)
        return record

    def settings(self, record: dict) -> dict:
        """The settings part of a record."""
        return record if self.field is None else record[self.field]

    def mismatch(self, rows: list[DiffRow]) -> RecordMismatch:
        """The error for a stored record whose settings differ by ``rows``: the file, the keys, both values."""
        keys = ", ".join(k for k, _, _ in rows)
        lines = [f"{display_path(self.path)}: {self.what} was made with other settings ({keys}):"]
        lines += [f"  {k}: {old!r} there, {new!r} now" for k, old, new in rows]
        lines.append(self.advice or f"Nothing was changed. Use another run directory for these settings, or delete "
                                    f"{display_path(self.path.parent)} to rebuild it with them.")
        return self.error("\n".join(lines), self.path, rows)

    def check(self, settings: dict) -> dict | None:
        """The stored record when its settings equal ``settings`` (per ``diff``); ``None`` when there is none yet.

        Raises ``error`` (a :class:`RecordMismatch`) when they differ; nothing is written either way.
        """
        record = self.read()
        if record is None:
            return None
        rows = self.diff(self.settings(record), settings)
        if rows:
            raise self.mismatch(rows)
        return record

    def write(self, record: dict) -> dict:
        """Write ``record`` atomically (mark the artifact done); returns it."""
        write_json(self.path, record, **self._layout)
        return record

    def claim(self, settings: dict, record: dict | None = None) -> dict:
        """:meth:`check` ``settings``, and write ``record`` (default: the settings, under ``field`` if set) when
        there is no record yet; returns the stored or the new record.  For artifacts made file by file after the
        record (the pseudo-label store), whose files say themselves which are done."""
        stored = self.check(settings)
        if stored is not None:
            return stored
        if record is None:
            record = settings if self.field is None else {self.field: settings}
        return self.write(record)
