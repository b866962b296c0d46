"""Reading the files of a run directory without trusting them: no pickle runs code, a damaged file is named.

A run directory is copied, shared and downloaded with a study's results, so every file in it is read as if a
stranger had written it:

* :func:`load_torch` reads a torch checkpoint with ``torch.load(weights_only=True)``: tensors, plain containers
  and the few NumPy scalar types nnU-Net logs (:data:`NUMPY_ALLOWED`). A checkpoint that carries any other pickled
  object (code that would run on load) is an :class:`UnsafeFile`, raised before that object is built. It is the
  one loader of the registration checkpoints and of every nnU-Net checkpoint, for prediction and for a resumed
  training (``EchoTrainer.load_checkpoint``; nnU-Net's own uses ``weights_only=False``).
* :func:`read_nifti`, :func:`check_gzip`, :func:`read_json`, :func:`read_table` read the other cached artifacts
  whole, so that a truncated file fails here, as a :class:`DamagedFile` naming it and what rebuilds it, instead of
  a bare ``EOFError`` later (or, with SimpleITK, silently zero voxels).  :class:`DamagedFile` and :func:`read_json`
  are the artifact store's (:mod:`echo_utils.artifacts.read`), re-exported here.

What else a run reads with ``pickle`` (nnU-Net's preprocessed case properties, submitit's job files) is listed,
with the trust it assumes, in the reproducibility chapter.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .artifacts.files import SETTINGS_FILE
from .artifacts.read import DamagedFile, Rebuild, damaged as _damaged, first_line as _first_line, read_json
from .config import display_path
from .rundir import resume_command

__all__ = ["UnsafeFile", "DamagedFile", "NUMPY_ALLOWED", "load_torch", "read_nifti", "check_gzip", "read_json",
           "read_table", "rerun_hint"]


class UnsafeFile(pickle.UnpicklingError, ValueError):
    """A file that would run code (or build objects other than data) when unpickled: refused, nothing ran."""

    def __init__(self, message: str, path: str | Path | None = None):
        super().__init__(message)
        self.path = None if path is None else Path(path)


#: The non-torch globals a checkpoint may name: NumPy scalars (``np.float64`` values in nnU-Net's logged curves)
#: and the dtypes they carry. Nothing callable beyond these constructors of plain data.
NUMPY_ALLOWED = [np._core.multiarray.scalar, np.dtype,
                 *(type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool"))]


def rerun_hint(path: str | Path, notebook: str, *, delete: bool | str | Path = False) -> str:
    """``"rerun notebook NN, which rebuilds it: <command>"`` with the runner's command for the run directory that
    holds ``path`` (found by its ``run.json``), or the bare advice when ``path`` is not in a run directory.

    ``delete=True`` starts the advice with ``"delete it and"``, a path with ``"delete <path> and"``: what must go
    for the rerun to rebuild it (a file that exists counts as done for the cached step that wrote it).
    """
    gone = "" if delete is False else "delete it and " if delete is True else f"delete {display_path(delete)} and "
    advice = f"{gone}rerun notebook {notebook}, which rebuilds it"
    path = Path(path).resolve()
    for run_dir in path.parents:
        record = run_dir / SETTINGS_FILE
        if record.is_file():
            try:
                rec = read_json(record)
                params = rec.get("params")
            except (OSError, ValueError, AttributeError):  # a damaged record (DamagedFile is a ValueError): no command
                params = None
            if params:
                cmd = resume_command(params, rec.get("overrides") or {}, run_dir, None, [notebook])
                return f"{advice}: {cmd}"
            break
    return advice


def load_torch(path: str | Path, *, map_location: Any = "cpu", rebuild: Rebuild = None) -> Any:
    """``torch.load(path, weights_only=True)`` with :data:`NUMPY_ALLOWED`: a checkpoint, never code.

    Raises
    ------
    FileNotFoundError if ``path`` does not exist; :class:`UnsafeFile` (a ``pickle.UnpicklingError``) if the file
    asks for any other global, before building it; :class:`DamagedFile` if it is truncated or not a torch file.
    Both messages end with ``rebuild`` (what rebuilds the file).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{display_path(path)} does not exist")
    try:
        with torch.serialization.safe_globals(NUMPY_ALLOWED):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # the weights-only unpickler met something other than plain data
        advice = (rebuild() if callable(rebuild) else rebuild) or "delete it if you did not write it"
        raise UnsafeFile(f"{display_path(path)} is not a plain checkpoint (tensors and containers only); refusing "
                         f"to unpickle it ({_unsupported(exc)}); {advice}", path) from None
    except (EOFError, RuntimeError, OSError, ValueError, KeyError, IndexError) as exc:
        raise _damaged(path, f"{type(exc).__name__}: {_first_line(exc)}", rebuild) from None


def _unsupported(exc: BaseException) -> str:
    """The line of torch's message that names what was refused (e.g. ``unsupported GLOBAL posix.system``)."""
    for line in str(exc).splitlines():
        if "Unsupported global" in line or "Unsupported operand" in line or "GLOBAL" in line:
            return line.strip().rstrip(".")
    return _first_line(exc)


def read_nifti(path: str | Path, *, rebuild: Rebuild = None) -> np.ndarray:
    """The whole voxel array of a NIfTI file, as nibabel stores it (``(W, H[, T])``), read now.

    A missing file is a ``FileNotFoundError``; a truncated or corrupt one (gzip stream cut short, header damaged,
    fewer voxels than the header says) is a :class:`DamagedFile` naming it.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{display_path(path)} does not exist")
    try:
        return np.asarray(nib.load(str(path)).dataobj)
    except Exception as exc:  # noqa: BLE001 - nibabel, gzip and zlib raise many types; all mean "cannot read"
        raise _damaged(path, f"{type(exc).__name__}: {_first_line(exc)}", rebuild) from None


def check_gzip(path: str | Path, *, rebuild: Rebuild = None) -> Path:
    """``path`` itself when it is not gzip-compressed or its gzip stream is whole (read through to its CRC and
    length); a truncated or corrupt stream is a :class:`DamagedFile`. For readers that do not notice: SimpleITK
    reads a truncated ``.nii.gz`` without an error, the missing voxels silently zero."""
    import gzip
    import zlib

    path = Path(path)
    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            return path
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 22):
                pass
    except (EOFError, OSError, zlib.error) as exc:
        raise _damaged(path, f"{type(exc).__name__}: {_first_line(exc)}", rebuild) from None
    return path


def read_table(path: str | Path, *, columns: Iterable[str] = (), rebuild: Rebuild = None):
    """A CSV table written by ``DataFrame.to_csv``, checked before it is used.

    Refused as a :class:`DamagedFile` naming the file: a file that does not parse, lacks one of ``columns``, or
    does not end with a line break (``to_csv`` always ends with one, so a file cut short mid-row is caught). A file
    cut exactly at a line break loses whole rows and cannot be told from a shorter table by its content alone.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{display_path(path)} does not exist")
    raw = path.read_bytes()
    if not raw:
        raise _damaged(path, "empty file", rebuild)
    if not raw.endswith(b"\n"):
        raise _damaged(path, "it ends in the middle of a row", rebuild)
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise _damaged(path, f"not a CSV table: {_first_line(exc)}", rebuild) from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise _damaged(path, f"no column {', '.join(map(repr, missing))}", rebuild)
    return df

