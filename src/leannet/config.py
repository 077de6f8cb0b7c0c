"""Configs are pydantic schemas: unknown keys, wrong types and impossible values fail with
the key's dotted path. YAML files are loaded safely and `-o key.sub=value` overrides apply
before validation, so an override is checked exactly like the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from leannet.errors import ConfigError


class Schema(BaseModel):
    """Base for every config section: no unknown keys, values validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


S = TypeVar("S", bound=Schema)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply `a.b.c=value` strings; the value is parsed as YAML (so 0.1 is a float, [1,2] a list)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.sub=value")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else None
    return data


def validate(schema: type[S], data: dict[str, Any], source: str = "config") -> S:
    try:
        return schema.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        msg = first["msg"]
        if first["type"] == "extra_forbidden":
            msg = "unknown key"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ConfigError(f"{source}: {loc}: {msg}{more}") from None


def load_config(schema: type[S], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> S:
    """YAML file (optional) + overrides -> validated `schema` instance."""
    data = load_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides)
    return validate(schema, data, source=str(path) if path else "config")
