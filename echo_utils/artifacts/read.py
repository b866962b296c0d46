"""Reading a cached artifact back without trusting it: a file that cannot be read whole is a :class:`DamagedFile`
naming it and what rebuilds it, never a bare ``JSONDecodeError`` or ``EOFError`` later.

The readers of the heavier formats (torch checkpoints, NIfTI, gzip streams, CSV tables) are in
:mod:`echo_utils.safe_load`, which raises the same error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Union

from ..config import display_path

__all__ = ["DamagedFile", "Rebuild", "damaged", "first_line", "read_json"]

#: What rebuilds a damaged file, for its message: a sentence, or a function giving it (called only on failure).
Rebuild = Union[str, Callable[[], str], None]


class DamagedFile(ValueError):
    """A file of the run directory that cannot be read (truncated, corrupt): names it and what rebuilds it."""

    def __init__(self, message: str, path: str | Path | None = None):
        super().__init__(message)
        self.path = None if path is None else Path(path)


def first_line(exc: BaseException) -> str:
    """The first sentence of an exception's message (torch's zip errors go on for four more)."""
    text = str(exc).strip().splitlines()
    return text[0].split(". ")[0].rstrip(".") if text else type(exc).__name__


def damaged(path: Path, reason: str, rebuild: Rebuild) -> DamagedFile:
    """The :class:`DamagedFile` for ``path``: ``"<path> is damaged (<reason>); <what rebuilds it>"``."""
    advice = rebuild() if callable(rebuild) else rebuild
    return DamagedFile(f"{display_path(path)} is damaged ({reason}); "
                       + (advice or "delete it and rerun the step that wrote it"), path)


def read_json(path: str | Path, *, rebuild: Rebuild = None) -> Any:
    """A JSON file; a truncated or corrupt one is a :class:`DamagedFile` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{display_path(path)} does not exist") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise damaged(path, f"not valid JSON: {first_line(exc)}", rebuild) from None
