"""Configuration files: TOML or YAML, flattened to dotted keys.

A file may hold three kinds of top-level entries: plain settings (nested
tables become ``database.host``), an ``environments`` table whose entry for
the current environment is laid over the rest, and a ``feature_flags`` table.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otelprod.errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ENVIRONMENTS_TABLE = "environments"
FLAGS_TABLE = "feature_flags"


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file's top-level mapping; the format follows the suffix."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"path: expected a file path (str or os.PathLike), got "
                        f"{type(path).__name__} {path!r}")
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{p}: cannot read the configuration file ({exc})") from exc
    if suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{p}: invalid TOML ({exc})") from exc
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{p}: invalid YAML ({exc})") from exc
        data = {} if data is None else data
    else:
        raise ConfigurationError(
            f"{p}: unknown configuration file type {suffix or '(none)'!r} "
            "(expected .toml, .yaml or .yml)")
    if not isinstance(data, dict):
        raise ConfigurationError(f"{p}: expected a mapping at the top level, "
                                 f"got {type(data).__name__}")
    return data


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"db": {"host": h}}`` -> ``{"db.host": h}``; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{str(key).strip().lower()}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out
