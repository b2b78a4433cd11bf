"""Scrubbing: secrets never leave the process.

One process-global :data:`scrubber` is the single place that decides what is
secret. Every exit path asks it: the scrubbing span exporter and log record
processor on the SDK's pipeline (``otelprod._pipeline.scrubbing``), the JSON
log lines, the status report and the CLI. Two rules, after DESIGN.md:

* registered secret values (the secrets manager registers every value it
  loads) are replaced wherever they appear inside a string;
* values under sensitive keys (password, token, api key, cookie, …) are
  replaced, whatever they are, in mappings and in ``key=value`` text such as
  URL query strings; passwords in a URL's userinfo too.

Keys are matched case- and separator-insensitively (``X-Api-Key`` is
``apikey``), by substring for the long stems and exactly for the short ones
(``pwd``, ``pin``), so ``token_count`` looks sensitive: that is what the
allowlist is for.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"

#: Registered secrets shorter than this are ignored: redacting every "abc" in
#: every log line would make the logs useless and protect nothing.
MIN_SECRET_LENGTH = 4

_MAX_DEPTH = 32
#: scrubbed strings up to this length are remembered (log messages and field
#: values repeat a lot); the cache is bounded and emptied on any change
_CACHE_MAX_LEN = 512
_CACHE_ENTRIES = 4096

#: normalized stems: a key containing one of these is sensitive
_SENSITIVE_STEMS = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "authorization",
    "cookie", "session", "creditcard", "cardnumber", "privatekey", "accesskey",
    "credential", "signingkey", "encryptionkey",
)
#: normalized names that are sensitive only as a whole key (or a key's last part)
_SENSITIVE_EXACT = ("pwd", "pass", "auth", "pin", "cvv", "cvc", "ssn", "jwt", "otp", "dsn")
#: keys that look sensitive but are counts or names, not secrets
_DEFAULT_ALLOWED = (
    "token_count", "max_tokens", "prompt_tokens", "completion_tokens", "total_tokens",
    "input_tokens", "output_tokens", "token_type", "session_count", "cookie_count",
    "secret_count", "secrets_dir",
)

#: Patterns that are secrets wherever they appear, whatever key they are under.
_DEFAULT_PATTERNS = (
    r"(?i:\b(?:bearer|basic|token)\s+[A-Za-z0-9\-._~+/]{8,}=*)",
    r"\beyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]{5,}",  # JWT
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
    r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",  # GitHub token
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack token
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
)

_SEPARATORS = re.compile(r"[\s_.\-]+")
#: ``scheme://user:password@`` keeps the user; ``scheme://token@`` (no colon) loses it all
_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://(?:[^:/?#@\s]*:)?)[^:@/?#\s]+@")
#: ``user:password@host`` without a scheme, as the gRPC exporter quotes its endpoint
_NETLOC_USERINFO = re.compile(
    r"(?<![\w.+\-/:@])(?P<user>[\w.~%\-]*):[^\s:@/?#\[\]]+@(?=[\w\-]+[.:]|\[)")
#: values that say "no value" are kept: ``"token": null`` must stay valid JSON
_NO_VALUE = frozenset({"null", "None", REDACTED})
_KEY_SEP = re.compile(r"(?P<key>[A-Za-z_][\w.\-]*)(?:=|[\"']?[ \t]*:[ \t]*[\"']?)")
_VALUE = re.compile(r"\[REDACTED\]|[^\s&;,\"'}\]]+")


def _normalize(key: str) -> str:
    return _SEPARATORS.sub("", key.lower())


class Scrubber:
    """Decides what is secret and replaces it. Thread-safe; never raises."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._secret_re: re.Pattern[str] | None = None
        self._patterns: tuple[re.Pattern[str], ...] = tuple(
            re.compile(p) for p in _DEFAULT_PATTERNS)
        self._pattern_re: re.Pattern[str] | None = None
        self._combine_patterns()
        self._text_cache: dict[str, str] = {}
        self._stems: tuple[str, ...] = _SENSITIVE_STEMS
        self._exact: frozenset[str] = frozenset(_SENSITIVE_EXACT)
        self._allowed: frozenset[str] = frozenset(_normalize(k) for k in _DEFAULT_ALLOWED)
        self._key_cache: dict[str, bool] = {}

    # --- configuration ------------------------------------------------------------
    def register_secret(self, value: str) -> None:
        """Redact ``value`` (and its URL-encoded forms) wherever it appears."""
        if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
            return
        forms = {value, quote(value, safe=""), quote_plus(value)}
        with self._lock:
            if forms <= self._secrets:
                return
            self._secrets |= forms
            ordered = sorted(self._secrets, key=len, reverse=True)  # longest first
            self._secret_re = re.compile("|".join(re.escape(s) for s in ordered))
            self._text_cache = {}

    def forget_secrets(self) -> None:
        """Drop every registered secret (tests, and re-initialisation)."""
        with self._lock:
            self._secrets = set()
            self._secret_re = None
            self._text_cache = {}

    @property
    def secret_count(self) -> int:
        return len(self._secrets)

    def add_pattern(self, pattern: str | re.Pattern[str]) -> None:
        """Redact every match of ``pattern`` (a regex) in every string."""
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
        with self._lock:
            self._patterns = (*self._patterns, compiled)
            self._combine_patterns()
            self._text_cache = {}

    def _combine_patterns(self) -> None:
        # One pass over the text instead of one per pattern, when they combine.
        try:
            if any(p.flags & ~re.UNICODE for p in self._patterns):
                raise re.error("flags")
            self._pattern_re = re.compile("|".join(f"(?:{p.pattern})" for p in self._patterns))
        except re.error:
            self._pattern_re = None

    def add_sensitive_key(self, name: str) -> None:
        """Treat keys containing ``name`` (normalized) as sensitive."""
        stem = _normalize(name)
        if not stem:
            raise ValueError(f"sensitive key: expected a non-empty name, got {name!r}")
        with self._lock:
            self._stems = (*self._stems, stem)
            self._allowed = self._allowed - {stem}
            self._key_cache = {}
            self._text_cache = {}

    def allow_key(self, name: str) -> None:
        """Never treat the key ``name`` as sensitive, e.g. ``token_count``."""
        with self._lock:
            self._allowed = self._allowed | {_normalize(name)}
            self._key_cache = {}
            self._text_cache = {}

    # --- decisions ------------------------------------------------------------------
    def is_sensitive_key(self, key: str) -> bool:
        cached = self._key_cache.get(key)
        if cached is not None:
            return cached
        result = self._decide(key)
        cache = self._key_cache
        if len(cache) > 4096:  # bounded: keys may be user-controlled
            cache.clear()
        cache[key] = result
        return result

    def _decide(self, key: str) -> bool:
        normalized = _normalize(key)
        last = _normalize(re.split(r"[.\s]", key.strip())[-1]) if key else ""
        if normalized in self._allowed or last in self._allowed:
            return False
        if normalized in self._exact or last in self._exact:
            return True
        return any(stem in normalized for stem in self._stems)

    # --- scrubbing --------------------------------------------------------------------
    def scrub(self, value: Any) -> Any:
        """A copy of ``value`` with secrets replaced; non-text values pass through."""
        try:
            return self._scrub(value, 0)
        except Exception:  # a scrubbing bug must not leak, nor raise into the caller
            return REDACTED

    def scrub_mapping(self, mapping: Mapping[Any, Any]) -> dict[Any, Any]:
        """A new dict: sensitive keys' values replaced, nested values walked."""
        try:
            return self._scrub_mapping(mapping, 0)
        except Exception:
            return {k: REDACTED for k in list(mapping)}

    def is_clean(self, mapping: Mapping[Any, Any]) -> bool:
        """True when :meth:`scrub_mapping` would change nothing in this flat mapping.

        The export path asks this first: most spans carry nothing secret, and
        answering from the caches costs far less than building a scrubbed copy.
        """
        try:
            for key, value in mapping.items():
                if isinstance(value, str):
                    if (value and self.is_sensitive_key(key)) or self._scrub_text(value) != value:
                        return False
                elif isinstance(value, (int, float)):  # bool included
                    if self.is_sensitive_key(key):
                        return False
                elif value is not None:
                    return False  # sequences and the rest: let scrub_mapping walk them
            return True
        except Exception:
            return False

    def scrub_text(self, text: str) -> str:
        try:
            return self._scrub_text(text)
        except Exception:
            return REDACTED

    def _scrub(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self._scrub_text(value)
        if depth > _MAX_DEPTH:
            return REDACTED
        if isinstance(value, Mapping):
            return self._scrub_mapping(value, depth + 1)
        if isinstance(value, (list, tuple)):
            items = [self._scrub(v, depth + 1) for v in value]
            return tuple(items) if isinstance(value, tuple) else items
        return value

    def _scrub_mapping(self, mapping: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, value in mapping.items():
            if value is not None and value != "" and isinstance(key, str) \
                    and self.is_sensitive_key(key):
                out[key] = REDACTED
            else:
                out[key] = self._scrub(value, depth)
        return out

    def _scrub_text(self, text: str) -> str:
        cache = self._text_cache
        cached = cache.get(text)
        if cached is not None:
            return cached
        result = self._scrub_uncached(text)
        if len(text) <= _CACHE_MAX_LEN:
            if len(cache) >= _CACHE_ENTRIES:
                cache.clear()
            cache[text] = result
        return result

    def _scrub_uncached(self, text: str) -> str:
        secret_re = self._secret_re
        if secret_re is not None:
            text = secret_re.sub(REDACTED, text)
        combined = self._pattern_re
        if combined is not None:
            text = combined.sub(REDACTED, text)
        else:
            for pattern in self._patterns:
                text = pattern.sub(REDACTED, text)
        if "@" in text:
            if "://" in text:
                text = _USERINFO.sub(lambda m: m.group("head") + REDACTED + "@", text)
            if ":" in text:  # a gRPC target quoted without its scheme: user:password@host
                text = _NETLOC_USERINFO.sub(lambda m: m.group("user") + ":" + REDACTED + "@",
                                            text)
        if "=" in text or ":" in text:
            text = self._redact_pairs(text)
        return text

    def _redact_pairs(self, text: str) -> str:
        """``password=x``, ``"token": "x"``, ``api-key: x`` -> value redacted.

        Keys are found without consuming values, so in ``Error: password=x``
        the pair after the first colon is still seen.
        """
        out: list[str] = []
        pos = 0
        for match in _KEY_SEP.finditer(text):
            if match.start() < pos or not self.is_sensitive_key(match.group("key")):
                continue
            value = _VALUE.match(text, match.end())
            if value is None or value.group(0) in _NO_VALUE:
                continue
            out.append(text[pos:match.end()])
            out.append(REDACTED)
            pos = value.end()
        if not out:
            return text
        out.append(text[pos:])
        return "".join(out)


#: The process-global scrubber every exit path uses.
scrubber = Scrubber()


__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "Scrubber",
    "scrubber",
]
