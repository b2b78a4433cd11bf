"""Secrets: loaded from the environment or a directory, never shown.

Every value loaded is registered with the process-global scrubber, so it is
redacted from spans, logs and reports even when code passes the revealed
value along by mistake. :class:`Secret` keeps the value out of ``repr``,
``str`` and f-strings; ``get_secret_value()`` is the one explicit way out.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otelprod._scrub import scrubber

#: Files bigger than this in a secrets directory are skipped, not read.
MAX_SECRET_FILE_BYTES = 64 * 1024
#: The secret sources every otelprod process loads (init() and the CLI alike).
SECRETS_ENV_PREFIX = "SECRET_"
SECRETS_DIR_ENV = "OTELPROD_SECRETS_DIR"
DEFAULT_SECRETS_DIR = "/run/secrets"
HEALTH_TOKEN_ENV = "OTELPROD_HEALTH_TOKEN"
_MASK = "**********"


class Secret:
    """A secret value that does not print itself."""

    __slots__ = ("_value", "name")

    def __init__(self, value: str, name: str = "") -> None:
        if not isinstance(value, str):
            raise TypeError(f"secret {name!r}: expected a str value, got {type(value).__name__}")
        if not isinstance(name, str):
            raise TypeError(f"name: expected a str, got {type(name).__name__} {name!r}")
        self._value = value
        self.name = name

    def get_secret_value(self) -> str:
        """The value itself: call this at the one place it is needed."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, {_MASK!r})" if self.name else f"Secret({_MASK!r})"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return _MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            other = other._value
        if not isinstance(other, str):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not picklable: pass the name, not the value")


def _secret_name(raw: str) -> str:
    if not isinstance(raw, str):
        raise TypeError(f"secret name: expected a str, got {type(raw).__name__} {raw!r}")
    return raw.strip().lower().replace("-", "_")


class SecretsManager:
    """Named secrets from ``SECRET_*`` variables, ``/run/secrets`` files or code."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, Secret] = {}
        self._sources: dict[str, str] = {}

    def set_secret(self, name: str, value: str | Secret, *, source: str = "code") -> Secret:
        """Store ``value`` under ``name`` and register it with the scrubber."""
        key = _secret_name(name)
        if not key:
            raise ValueError(f"secret name: expected a non-empty name, got {name!r}")
        secret = value if isinstance(value, Secret) else Secret(value, key)
        scrubber.register_secret(secret.get_secret_value())
        with self._lock:
            self._secrets[key] = secret
            self._sources[key] = source
        return secret

    def load_from_env(self, prefix: str = "SECRET_",
                      environ: Mapping[str, str] | None = None) -> list[str]:
        """Load every ``<prefix>NAME`` variable as secret ``name``; returns the names."""
        if not isinstance(prefix, str) or not prefix:
            raise (TypeError if not isinstance(prefix, str) else ValueError)(
                f"prefix: expected a non-empty str, got {type(prefix).__name__} {prefix!r}")
        env = os.environ if environ is None else environ
        loaded = []
        for var, value in env.items():
            if var.startswith(prefix) and len(var) > len(prefix):
                name = _secret_name(var[len(prefix):])
                self.set_secret(name, value, source=f"env:{var}")
                loaded.append(name)
        return sorted(loaded)

    def load_from_directory(self, path: str | os.PathLike[str] = "/run/secrets") -> list[str]:
        """Load each regular file in ``path`` as a secret named after the file.

        The Docker/Kubernetes convention: one file per secret, the trailing
        newline an editor adds is dropped. A missing directory loads nothing.
        """
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise TypeError(f"path: expected a directory path (str or os.PathLike), got "
                            f"{type(path).__name__} {path!r}")
        root = Path(path)
        if not root.is_dir():
            return []
        loaded = []
        for entry in sorted(root.iterdir()):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            if entry.stat().st_size > MAX_SECRET_FILE_BYTES:
                continue
            value = entry.read_text(encoding="utf-8").rstrip("\r\n")
            name = _secret_name(entry.name)
            self.set_secret(name, value, source=f"file:{entry}")
            loaded.append(name)
        return loaded

    def get_secret(self, name: str, default: str | Secret | None = None) -> Secret | None:
        """The secret ``name`` (a :class:`Secret`), or ``default``."""
        secret = self._secrets.get(_secret_name(name))
        if secret is not None:
            return secret
        if default is None or isinstance(default, Secret):
            return default
        return Secret(default, _secret_name(name))

    def get_secret_value(self, name: str, default: str | None = None) -> str | None:
        secret = self._secrets.get(_secret_name(name))
        return secret.get_secret_value() if secret is not None else default

    def has_secret(self, name: str) -> bool:
        return _secret_name(name) in self._secrets

    def names(self) -> list[str]:
        return sorted(self._secrets)

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._sources.clear()

    def __len__(self) -> int:
        return len(self._secrets)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has_secret(name)

    def __repr__(self) -> str:
        return f"<SecretsManager {len(self)} secrets>"

    def status(self) -> dict[str, Any]:
        """For the status report: how many, from where; never a value."""
        sources: dict[str, int] = {}
        for source in self._sources.values():
            kind = source.split(":", 1)[0]
            sources[kind] = sources.get(kind, 0) + 1
        return {"count": len(self), "sources": sources}


_secrets = SecretsManager()


def load_secret_sources(secrets_dir: str | os.PathLike[str] | None = None, *,
                        environ: Mapping[str, str] | None = None) -> list[str]:
    """Load the secrets every otelprod process knows, so each of them is scrubbed.

    ``SECRET_*`` variables, the files of the secrets directory (``secrets_dir``,
    else ``$OTELPROD_SECRETS_DIR``, else ``/run/secrets``; a missing one loads
    nothing, an unreadable one is a warning), and ``OTELPROD_HEALTH_TOKEN``,
    which is registered with the scrubber only. ``otelprod.init()`` and the
    ``otelprod`` command both call this, so a value the service hides is hidden
    from the command's output too. Returns the names of the secrets loaded.
    """
    env = os.environ if environ is None else environ
    names = _secrets.load_from_env(SECRETS_ENV_PREFIX, environ=env)
    directory = secrets_dir or env.get(SECRETS_DIR_ENV) or DEFAULT_SECRETS_DIR
    try:
        names += _secrets.load_from_directory(directory)
    except (OSError, UnicodeDecodeError) as exc:
        logging.getLogger("otelprod.config").warning(
            "otelprod: cannot read the secrets directory %s (%s); its secrets are not "
            "loaded, nor scrubbed", directory, exc)
    token = env.get(HEALTH_TOKEN_ENV)
    if token:
        scrubber.register_secret(token)
    return names


def get_secrets() -> SecretsManager:
    """The process-global secrets manager."""
    return _secrets
