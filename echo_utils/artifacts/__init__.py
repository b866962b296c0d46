"""The artifact store of a run directory: how every cached step writes, keys, guards and reads back its files.

* :mod:`.files`: the name of every file in a run directory;
* :mod:`.atomic`: the one atomic writer (temporary file in the same folder, fsync, ``os.replace``);
* :mod:`.record`: the keyed cache record (settings -> stable key; a mismatch names the keys; the done marker);
* :mod:`.read`: read-back that names a damaged file.

It sits below every package that caches (data, registration, pseudo-labels, segmentation, the run directory), and
imports nothing of theirs.
"""

from . import files
from .atomic import atomic_path, write_bytes, write_json, write_text
from .read import DamagedFile, read_json
from .record import MISSING, KeyedRecord, RecordMismatch, flatten_settings, settings_diff, settings_key

__all__ = ["files", "atomic_path", "write_bytes", "write_text", "write_json", "DamagedFile", "read_json",
           "MISSING", "KeyedRecord", "RecordMismatch", "flatten_settings", "settings_diff", "settings_key"]
