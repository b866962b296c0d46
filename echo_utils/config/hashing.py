"""The short, stable hash of settings that names every cached step's folder or record."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel

def config_hash(*parts: object, length: int = 12) -> str:
    """A short, stable hash of JSON-serialisable parts (pydantic models are dumped first)."""

    def norm(p: object) -> object:
        if isinstance(p, BaseModel):
            return p.model_dump(mode="json")
        return p

    blob = json.dumps([norm(p) for p in parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
