"""Reading a profile: strict YAML, ``--set`` overrides, environment overrides, validation against the schema."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from .schema import PROJECT_ROOT, ConfigError, StudyConfig

def _format_errors(path: Path, err: ValidationError, overrides: dict | None = None) -> str:
    where = display_path(path) + (f" with overrides {_dotted(overrides)}" if overrides else "")
    lines = [f"invalid profile {where}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<top level>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  - unknown key '{loc}'")
        elif e["type"] == "value_error":  # our validators name the value themselves
            lines.append(f"  - {loc + ': ' if e['loc'] else ''}{e['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  - {loc}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


class DuplicateKey(yaml.YAMLError):
    """A mapping that gives the same key twice (YAML would keep the last value silently)."""

    def __init__(self, key: str, first: int, second: int):
        where = f"on line {first}" if first == second else f"on lines {first} and {second}"
        super().__init__(f"key '{key}' is given twice, {where}; keep one")
        self.key, self.lines = key, (first, second)


class _Loader(yaml.SafeLoader):
    """YAML 1.1 safe loader that also reads ``1e-3`` (no dot) as a float, as YAML 1.2 does, and refuses a key given
    twice in one mapping (:class:`DuplicateKey`, naming the dotted key and both lines) instead of keeping the last."""

    def construct_document(self, node):
        self._refuse_duplicates(node, "")
        return super().construct_document(node)

    def _refuse_duplicates(self, node, prefix: str) -> None:
        if isinstance(node, yaml.SequenceNode):
            for item in node.value:
                self._refuse_duplicates(item, prefix)
        if not isinstance(node, yaml.MappingNode):
            return
        seen: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<' merges are overridden on purpose
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKey(f"{prefix}{key}", seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: SafeConstructor's own error names it
                pass
            self._refuse_duplicates(value_node, f"{prefix}{key}.")


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml(text: str) -> object:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def _dotted(tree: dict, prefix: str = "") -> str:
    items = []
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            items.append(_dotted(v, f"{prefix}{k}."))
        else:
            items.append(f"{prefix}{k}={json.dumps(v)}")
    return " ".join(items)


def parse_overrides(overrides: object) -> dict:
    """Normalise overrides to a nested dict.

    Accepted forms (all equivalent)::

        {"registration": {"alpha": 0}}            # nested dict (papermill -p overrides / -y)
        {"registration.alpha": 0}                  # dotted keys
        ["registration.alpha=0", "data.n_patients=8"]   # --set items; values are YAML ("[6, 9]", "null", "1e-3")
        "registration.alpha=0 data.n_patients=8"   # one string of --set items (make SET="...")
        '{"registration": {"alpha": 0}}'           # a JSON/YAML mapping as a string (papermill -p)

    ``None`` or empty gives ``{}``. A malformed item is a :class:`ConfigError` naming it.
    """
    if overrides is None or overrides == "" or overrides == [] or overrides == {}:
        return {}
    if isinstance(overrides, str):
        text = overrides.strip()
        parsed = None
        if text.startswith("{"):
            try:
                parsed = _yaml(text)
            except yaml.YAMLError as exc:
                raise ConfigError(f"overrides {overrides!r} are not a valid mapping: {exc}") from None
        return parse_overrides(parsed if isinstance(parsed, dict) else text.split())
    if isinstance(overrides, (list, tuple)):
        out: dict = {}
        for item in overrides:
            if not isinstance(item, str) or "=" not in item or not item.split("=", 1)[0].strip():
                raise ConfigError(f"override {item!r} is not of the form section.key=value (e.g. registration.alpha=0)")
            key, value = item.split("=", 1)
            try:
                parsed_value = _yaml(value) if value.strip() else ""
            except yaml.YAMLError as exc:
                raise ConfigError(f"override {item!r}: the value is not valid YAML: {exc}") from None
            out = deep_merge(out, parse_overrides({key.strip(): parsed_value}))
        return out
    if isinstance(overrides, dict):
        out = {}
        for key, value in overrides.items():
            if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
                raise ConfigError(f"override key {key!r} is not a profile key such as 'registration.alpha'")
            head, *rest = key.split(".")
            if isinstance(value, dict):
                value = parse_overrides(value)
            for part in reversed(rest):
                value = {part: value}
            out = deep_merge(out, {head: value})
        return out
    raise ConfigError(f"overrides must be a mapping or a list of key=value strings, got {type(overrides).__name__}")


# Environment variables that override a profile key (after the file, before explicit overrides): knobs that
# depend on the machine rather than the study.
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "ECHO_NNUNET_THREADS": ("nnunet", "threads"),
    "ECHO_NNUNET_POOLS": ("nnunet", "pools"),
    "ECHO_REGISTRATION_THREADS": ("registration", "threads"),
}


def _env_overrides() -> dict:
    out: dict = {}
    for var, (section, key) in ENV_OVERRIDES.items():
        value = os.environ.get(var)
        if value not in (None, ""):
            out = deep_merge(out, {section: {key: _yaml(value)}})
    return out


def resolve_params_path(path: str | Path) -> Path:
    """The absolute path of a profile: as given if it exists (relative to the working directory), else relative
    to the project root (so ``notebooks/params/ci.yaml`` works from anywhere). Used by the loader and the runner.
    """
    path = Path(path).expanduser()
    if not path.is_absolute() and not path.exists() and (PROJECT_ROOT / path).exists():
        path = PROJECT_ROOT / path
    return path.resolve()


def display_path(path: str | Path) -> str:
    """``path`` relative to the project root when inside it (as printed in the book), else as an absolute path."""
    p = Path(path).expanduser()
    p = (p if p.is_absolute() else Path.cwd() / p).resolve()
    try:
        return p.relative_to(PROJECT_ROOT).as_posix() or "."
    except ValueError:
        return str(p)


def load_config(path: str | Path, overrides: object = None) -> StudyConfig:
    """Load and validate a YAML profile.

    Parameters
    ----------
    path : the YAML file; a relative path is taken from the working directory, else from the project root
        (:func:`resolve_params_path`).
    overrides : values merged over the file's, in any form :func:`parse_overrides` accepts (a nested dict such as
        ``{"registration": {"alpha": 0.5}}``, dotted keys, or ``"registration.alpha=0.5"`` strings); validated
        like the file itself. The environment variables of :data:`ENV_OVERRIDES` apply before them.

    Types are strict: an int key refuses ``true`` and ``1.5``, a float key refuses ``"1.0"``; an int is a float.

    Raises
    ------
    ConfigError if the file is missing, is not a YAML mapping, or fails validation; the message names the file,
    the overrides and every offending key.
    """
    path = resolve_params_path(path)
    if not path.is_file():
        raise ConfigError(f"profile not found: {display_path(path)}")
    try:
        raw = _yaml(path.read_text())
    except DuplicateKey as exc:
        raise ConfigError(f"profile {display_path(path)}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"profile {display_path(path)} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"profile {display_path(path)} must be a YAML mapping, got {type(raw).__name__}")
    extra = deep_merge(_env_overrides(), parse_overrides(overrides))
    if extra:
        raw = deep_merge(raw, extra)
    try:
        # Validated from JSON in strict mode: YAML lists become tuples, but no bool passes as an int, no string
        # as a number (pydantic's lax Python mode would accept both).
        return StudyConfig.model_validate_json(json.dumps(raw, default=str), strict=True)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc, parse_overrides(overrides))) from None


def deep_merge(base: dict, extra: dict) -> dict:
    """``extra`` merged over ``base``, nested dicts key by key (neither is modified)."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
