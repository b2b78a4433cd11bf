"""The environment contrib's HTTP instrumentations read when they load.

Set before any instrumentor loads, the way a distro does it, and inherited by
child processes (worker processes of a server) as ``opentelemetry-instrument``'s:

* ``OTEL_SEMCONV_STABILITY_OPT_IN=http``: the stable HTTP semantic conventions
  (``http.server.request.duration`` in seconds, ``http.route``,
  ``http.response.status_code``, ``url.*``), which the dashboards query,
  unless the user set the variable themselves;
* the health-probe routes (otelprod's ``excluded_urls`` setting) left out of
  the server frameworks' traces through their own
  ``OTEL_PYTHON_<FRAMEWORK>_EXCLUDED_URLS``: the HTTP clients keep tracing calls
  to other services' health routes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping

from otelprod._pipeline.settings import Settings

SEMCONV_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"

#: ASGI frameworks: their per-message "http send"/"http receive" spans are left out (two or
#: more spans per request that say little and cost time)
ASGI_FRAMEWORKS = ("fastapi", "starlette")

#: server frameworks whose excluded URLs otelprod sets: entry-point name -> contrib's env name
SERVER_FRAMEWORKS = {
    "fastapi": "FASTAPI", "starlette": "STARLETTE", "flask": "FLASK", "django": "DJANGO",
    "falcon": "FALCON", "pyramid": "PYRAMID", "tornado": "TORNADO",
    "aiohttp-server": "AIOHTTP_SERVER",
}


def excluded_url_patterns(settings: Settings) -> list[str]:
    """otelprod's excluded URLs as the regexes contrib matches against the full URL.

    A path (``/health``) matches that path exactly, with or without a trailing
    slash or a query; anything else is already a regex and is kept as it is.
    """
    patterns = []
    for entry in settings.excluded_urls.split(","):
        entry = entry.strip()
        if not entry:
            continue
        if entry.startswith("/"):
            entry = rf"^[a-z][a-z0-9+.\-]*://[^/?#]*{re.escape(entry.rstrip('/'))}/?(?:[?#]|$)"
        patterns.append(entry)
    return patterns


def server_excluded_urls(framework_env: str, settings: Settings,
                         environ: Mapping[str, str] | None = None) -> str:
    """The excluded URLs of one server framework, in contrib's comma-separated form.

    A user's own ``OTEL_PYTHON_<FRAMEWORK>_EXCLUDED_URLS`` is kept as it is;
    otherwise their ``OTEL_PYTHON_EXCLUDED_URLS`` and otelprod's routes add up.
    """
    env = os.environ if environ is None else environ
    variable = f"OTEL_PYTHON_{framework_env}_EXCLUDED_URLS"
    if env.get(variable) and variable not in _set_by_us:
        return env[variable]
    generic = [url.strip() for url in env.get("OTEL_PYTHON_EXCLUDED_URLS", "").split(",")]
    return ",".join([url for url in generic if url] + excluded_url_patterns(settings))


#: the variables this process set (a later init() with other settings recomputes them)
_set_by_us: set[str] = set()


def prepare_environment(settings: Settings,
                        environ: MutableMapping[str, str] | None = None) -> None:
    """Set what the instrumentors read at load time, respecting the user's own values.

    Child processes inherit them, as they inherit ``opentelemetry-instrument``'s.
    """
    env = os.environ if environ is None else environ
    env.setdefault(SEMCONV_ENV, "http")
    for framework_env in SERVER_FRAMEWORKS.values():
        variable = f"OTEL_PYTHON_{framework_env}_EXCLUDED_URLS"
        if variable in env and variable not in _set_by_us:
            continue  # the user's own
        value = server_excluded_urls(framework_env, settings, env)
        if value:
            env[variable] = value
            _set_by_us.add(variable)
        elif variable in _set_by_us:
            del env[variable]
            _set_by_us.discard(variable)


__all__ = ["ASGI_FRAMEWORKS", "SEMCONV_ENV", "SERVER_FRAMEWORKS", "excluded_url_patterns",
           "prepare_environment", "server_excluded_urls"]
