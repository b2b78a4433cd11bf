"""Web applications get server spans whatever order the code is written in.

The contrib instrumentations of FastAPI and Flask replace the framework's
class (``fastapi.FastAPI = _InstrumentedFastAPI``): an app built before
``init()``, or built after it from a class imported before it (``from fastapi
import FastAPI`` above the ``init()`` line), is a plain app and would never
trace. Django's instrumentation adds its middleware to the settings, which
may not be loaded yet when ``init()`` runs (it would then configure Django
with empty settings), and is too late for a handler that has loaded its
middleware already.

So once an instrumentation is active, otelprod hooks the one place each
framework passes through before serving its first request, and there hands
the app to contrib's own ``instrument_app`` (with the excluded URLs):

* FastAPI: ``FastAPI.build_middleware_stack`` (built on the first request);
* Flask: ``Flask.__call__`` (the WSGI entry);
* Django: ``BaseHandler.load_middleware`` (instrument first, once the settings
  are there) and the handlers' ``__call__`` (reload a chain loaded without it).

:func:`instrument_app` does the same on demand, for an app that already served
requests or a bare WSGI/ASGI callable.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

from otelprod._compat.otel_instrumentation import app_instrumented
from otelprod._pipeline.http_conventions import prepare_environment, server_excluded_urls
from otelprod._pipeline.settings import Settings

_log = logging.getLogger("otelprod._pipeline.instrumentation")

#: instrumentations that may wait for their framework, and what they wait for
DEFERRED_REASONS = {
    "django": "activates when Django loads its middleware (its settings are not loaded yet)",
}

_lock = threading.RLock()
_settings: Settings | None = None
_hooked: set[str] = set()
_deferred: dict[str, tuple[Any, dict[str, Any]]] = {}  # name -> (instrumentor, kwargs)
_MARK = "_otelprod_traced"  # on a Django handler whose middleware chain has contrib's


def _excluded(framework_env: str) -> str | None:
    return None if _settings is None else server_excluded_urls(framework_env, _settings)


# --- called by the loader ------------------------------------------------------------------
def defer(name: str, instrumentor: Any, kwargs: dict[str, Any]) -> bool:
    """True when ``instrumentor`` must wait for its framework (then it is hooked to it)."""
    if name != "django":
        return False
    from django.conf import settings

    if settings.configured:
        return False
    with _lock:
        _deferred[name] = (instrumentor, kwargs)
    _hook_django()
    return True


def after_instrumented(name: str, settings: Settings) -> None:
    """Hook the framework of an instrumentation that just became active."""
    global _settings
    _settings = settings
    hook = _HOOKS.get(name)
    if hook is not None:
        hook()


def _wrap_once(key: str, module: str, name: str, wrapper: Callable[..., Any]) -> None:
    import wrapt

    with _lock:
        if key in _hooked:
            return
        wrapt.wrap_function_wrapper(module, name, wrapper)
        _hooked.add(key)


def _guarded(framework: str, app: Any, instrument: Callable[[], None]) -> None:
    """Instrument ``app`` once; a failure is a warning, said once per app."""
    with _lock:
        if app_instrumented(app) or \
                getattr(app, "_otelprod_failed", False):
            return
        try:
            instrument()
        except Exception as exc:
            app._otelprod_failed = True
            _log.warning(f"otelprod: could not instrument this {framework} app; it serves "
                         "untraced: %r", exc)


# --- FastAPI --------------------------------------------------------------------------------
def _fastapi_active() -> bool:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    return bool(FastAPIInstrumentor().is_instrumented_by_opentelemetry)


def _instrument_fastapi(app: Any) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls=_excluded("FASTAPI"),
                                       exclude_spans=["receive", "send"])


def _hook_fastapi() -> None:
    def build_middleware_stack(wrapped: Any, app: Any, args: Any, kwargs: Any) -> Any:
        if app is not None and not app_instrumented(app) \
                and _fastapi_active():
            _guarded("FastAPI", app, lambda: _instrument_fastapi(app))
            if app_instrumented(app):
                return app.build_middleware_stack()  # contrib's, around this one
        return wrapped(*args, **kwargs)

    _wrap_once("fastapi", "fastapi.applications", "FastAPI.build_middleware_stack",
               build_middleware_stack)


# --- Flask ----------------------------------------------------------------------------------
def _flask_active() -> bool:
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    return bool(FlaskInstrumentor().is_instrumented_by_opentelemetry)


def _instrument_flask(app: Any) -> None:
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    instrument: Any = FlaskInstrumentor.instrument_app  # contrib's Flask module is untyped
    instrument(app, excluded_urls=_excluded("FLASK"))


def _hook_flask() -> None:
    def call(wrapped: Any, app: Any, args: Any, kwargs: Any) -> Any:
        if app is not None and not app_instrumented(app) \
                and _flask_active():
            _guarded("Flask", app, lambda: _instrument_flask(app))
        return wrapped(*args, **kwargs)

    _wrap_once("flask", "flask.app", "Flask.__call__", call)


# --- Django ---------------------------------------------------------------------------------
def _django_instrumented() -> bool:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    return bool(DjangoInstrumentor().is_instrumented_by_opentelemetry)


def _instrument_django() -> None:
    """Activate a deferred Django instrumentation (the settings are loaded by now)."""
    with _lock:
        pending = _deferred.pop("django", None)
        if pending is None:
            return
        instrumentor, kwargs = pending
        try:
            instrumentor.instrument(**kwargs)
        except Exception as exc:
            _log.warning("otelprod: instrumenting Django failed; it serves untraced: %r", exc)


def _reload_middleware(handler: Any) -> None:
    from django.core.handlers.asgi import ASGIHandler

    handler.load_middleware(is_async=isinstance(handler, ASGIHandler))


def _hook_django() -> None:
    def load_middleware(wrapped: Any, handler: Any, args: Any, kwargs: Any) -> Any:
        _instrument_django()
        result = wrapped(*args, **kwargs)
        if handler is not None and _django_instrumented():
            setattr(handler, _MARK, True)
        return result

    def call(wrapped: Any, handler: Any, args: Any, kwargs: Any) -> Any:
        # a handler built before init() loaded its middleware without contrib's: reload it
        if handler is not None and not getattr(handler, _MARK, False) \
                and _django_instrumented():
            with _lock:
                if not getattr(handler, _MARK, False):
                    _reload_middleware(handler)
        return wrapped(*args, **kwargs)

    _wrap_once("django", "django.core.handlers.base", "BaseHandler.load_middleware",
               load_middleware)
    _wrap_once("django.wsgi", "django.core.handlers.wsgi", "WSGIHandler.__call__", call)
    _wrap_once("django.asgi", "django.core.handlers.asgi", "ASGIHandler.__call__", call)


_HOOKS: dict[str, Callable[[], None]] = {
    "fastapi": _hook_fastapi, "flask": _hook_flask, "django": _hook_django,
}


# --- on demand ------------------------------------------------------------------------------
def kind_of(app: Any) -> str:
    """"fastapi", "starlette", "flask", "django", "asgi" or "wsgi"; TypeError otherwise."""
    names = {(cls.__module__, cls.__qualname__) for cls in type(app).__mro__}
    for kind, marks in _KINDS:
        if names & marks:
            return kind
    if callable(app):
        call = app if inspect.isfunction(app) or inspect.ismethod(app) else \
            type(app).__call__
        return "asgi" if inspect.iscoroutinefunction(call) else "wsgi"
    raise TypeError(f"instrument_app(app): expected a FastAPI, Starlette, Flask or Django "
                    f"application, or a WSGI or ASGI callable, got {type(app).__name__} "
                    f"{app!r:.80}")


_KINDS = (
    ("fastapi", {("fastapi.applications", "FastAPI")}),
    ("starlette", {("starlette.applications", "Starlette")}),
    ("flask", {("flask.app", "Flask"), ("flask.sansio.app", "App")}),
    ("django", {("django.core.handlers.base", "BaseHandler")}),
)

#: kind -> (instrumentation distribution, otelprod extra)
PACKAGES = {
    "fastapi": ("opentelemetry-instrumentation-fastapi", "fastapi"),
    "starlette": ("opentelemetry-instrumentation-starlette", "starlette"),
    "flask": ("opentelemetry-instrumentation-flask", "flask"),
    "django": ("opentelemetry-instrumentation-django", "django"),
    "asgi": ("opentelemetry-instrumentation-asgi", "asgi"),
    "wsgi": ("opentelemetry-instrumentation-wsgi", "wsgi"),
}


def instrument_app(app: Any, settings: Settings) -> Any:
    """Give ``app`` server spans; returns it (a bare WSGI/ASGI callable comes back wrapped).

    For FastAPI, Starlette, Flask and Django apps built before ``init()`` (or
    already serving); idempotent. A missing instrumentation package is a
    warning naming the pip command, and the app is returned as it was.
    """
    global _settings
    kind = kind_of(app)
    _settings = _settings or settings
    prepare_environment(settings)
    try:
        return _INSTRUMENT[kind](app)
    except ImportError as exc:
        package, extra = PACKAGES[kind]
        _log.warning(f"otelprod: cannot instrument this {kind} app: {package} is not "
                     f"installed (pip install 'otelprod[{extra}]'): %s", exc)
        return app


def _fastapi_app(app: Any) -> Any:
    _guarded("FastAPI", app, lambda: _instrument_fastapi(app))
    app.middleware_stack = None  # built again, with the instrumentation, on the next request
    return app


def _starlette_app(app: Any) -> Any:
    from opentelemetry.instrumentation.starlette import StarletteInstrumentor

    _guarded("Starlette", app, lambda: StarletteInstrumentor.instrument_app(
        app, excluded_urls=_excluded("STARLETTE"), exclude_spans=["receive", "send"]))
    app.middleware_stack = None
    return app


def _flask_app(app: Any) -> Any:
    _guarded("Flask", app, lambda: _instrument_flask(app))
    return app


def _django_app(handler: Any) -> Any:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    _hook_django()
    _instrument_django()
    if not _django_instrumented():
        DjangoInstrumentor().instrument(excluded_urls=_excluded("DJANGO"))
    with _lock:
        _reload_middleware(handler)
        setattr(handler, _MARK, True)
    return handler


def _asgi_app(app: Any) -> Any:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.util.http import parse_excluded_urls

    excluded = _excluded("ASGI")
    return OpenTelemetryMiddleware(
        app, excluded_urls=parse_excluded_urls(excluded) if excluded else None,
        exclude_spans=["receive", "send"])


def _wsgi_app(app: Any) -> Any:
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app)


_INSTRUMENT: dict[str, Callable[[Any], Any]] = {
    "fastapi": _fastapi_app, "starlette": _starlette_app, "flask": _flask_app,
    "django": _django_app, "asgi": _asgi_app, "wsgi": _wsgi_app,
}

__all__ = ["DEFERRED_REASONS", "after_instrumented", "defer", "instrument_app", "kind_of"]
