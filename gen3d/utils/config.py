"""Dataclass configs from YAML or dicts: unknown keys are rejected, nested dataclasses are built,
and a stable hash identifies a resolved config."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from pathlib import Path

import yaml


def from_dict(cls, data: dict | None, *, where: str = "config"):
    """Build dataclass `cls` from `data`, recursing into dataclass-typed fields; unknown keys raise."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = from_dict(kind, value, where=f"{where}.{name}")
        values[name] = value
    return cls(**values)


def load_yaml(cls, path: str | Path):
    """`cls` from a YAML file of plain values."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys")
    return from_dict(cls, data, where=str(path))


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


def config_hash(config) -> str:
    """First 16 hex digits of the SHA-1 of the config's canonical JSON."""
    text = json.dumps(to_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:16]
