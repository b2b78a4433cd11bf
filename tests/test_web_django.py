"""A Django app on SQLite under a WSGI server (gunicorn), traced by one init() line.

``init()`` sits where Django users put it: in ``settings.py`` (Django's settings
are not loaded yet then: the instrumentation waits for Django to load its
middleware) or in ``wsgi.py`` after ``get_wsgi_application()`` (the handler has
loaded its middleware already: it is reloaded with the instrumentation before
the first request).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.otlp_receiver import OTLPReceiver
from tests.web_helpers import BIN, STATUS_ERROR, Server, export_env, server_spans, wait_quiet

SETTINGS = '''
import os
{init}
SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.environ["APP_DB"]}}}}
USE_TZ = True
'''

URLS = '''
import logging
from django.db import connection
from django.http import JsonResponse
from django.urls import path

log = logging.getLogger("shop")


def item(request, item_id):
    with connection.cursor() as cursor:
        cursor.execute("select %s + 1", [item_id])
        (value,) = cursor.fetchone()
    log.warning("item %s read", item_id)
    return JsonResponse({"id": item_id, "next": value})


def fail(request):
    raise KeyError("missing")


def health(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("items/<int:item_id>", item),
    path("fail", fail),
    path("health", health),
    path("health/ready", health),
]
'''

WSGI = '''
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
{init}
'''

INIT = 'import otelprod\notelprod.init(service_name="shop-django")'
ITEMS = 5


@pytest.fixture(scope="module", params=["settings.py", "wsgi.py"],
                ids=["init-in-settings", "init-after-get_wsgi_application"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[OTLPReceiver, str]]:
    app_dir: Path = tmp_path_factory.mktemp("django")
    site = app_dir / "mysite"
    site.mkdir()
    (site / "__init__.py").write_text("")
    in_settings = request.param == "settings.py"
    (site / "settings.py").write_text(SETTINGS.format(init=INIT if in_settings else ""))
    (site / "urls.py").write_text(URLS)
    (site / "wsgi.py").write_text(WSGI.format(init="" if in_settings else INIT))
    with OTLPReceiver() as receiver:
        server = Server([str(BIN / "gunicorn"), "-w", "1", "-b", "127.0.0.1:{port}",
                         "mysite.wsgi:application"],
                        export_env(receiver, app_dir, APP_DB=str(app_dir / "db.sqlite3")),
                        app_dir)
        try:
            server.wait_ready("/health")
            for item_id in range(ITEMS):
                assert server.get_json(f"/items/{item_id}")["next"] == item_id + 1
            assert server.get("/health/ready")[0] == 200
            assert server.get("/fail")[0] == 500
            receiver.wait_for(lambda r: len(server_spans(r)) >= ITEMS + 1)
        finally:
            stderr = server.stop()
        wait_quiet(receiver)
        yield receiver, stderr


def test_one_server_span_per_request_none_for_probes(served: Any) -> None:
    receiver, stderr = served
    spans = server_spans(receiver)
    routes = sorted(s["attributes"].get("http.route", "") for s in spans)
    assert routes == ["fail"] + ["items/<int:item_id>"] * ITEMS, stderr[-3000:]
    assert all(s["resource"]["service.name"] == "shop-django" for s in spans)
    assert all(s["scope"] == "opentelemetry.instrumentation.django" for s in spans)


def test_sqlite_spans_inside_the_requests(served: Any) -> None:
    receiver, _ = served
    traces = {s["trace_id"] for s in server_spans(receiver)}
    queries = [s for s in receiver.spans() if s["scope"].endswith("sqlite3")
               and "select" in s["attributes"].get("db.statement", "")]
    assert len(queries) == ITEMS
    assert {s["trace_id"] for s in queries} <= traces


def test_the_failing_request(served: Any) -> None:
    receiver, _ = served
    (failed,) = [s for s in server_spans(receiver) if s["attributes"].get("http.route") == "fail"]
    assert failed["status_code"] == STATUS_ERROR
    assert "exception" in [e["name"] for e in failed["events"]]
    errors = [r for r in receiver.logs() if r["severity_text"] == "ERROR"]
    assert [(r["scope"], r["trace_id"]) for r in errors] == [("django.request",
                                                              failed["trace_id"])]
    logs = [r for r in receiver.logs() if str(r["body"]).endswith(" read")]
    assert len(logs) == ITEMS
