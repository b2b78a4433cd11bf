"""Which instrumentations init() activates, why it skips the others, and the instrument setting.

Instrumentation packages of our own making (a dist-info directory with an
``opentelemetry_instrumentor`` entry point on ``PYTHONPATH``) stand for one that
fails and one whose library is at a version it does not support.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.util.http import parse_excluded_urls

from otelprod._pipeline import http_conventions, instrumentation
from otelprod._pipeline.frameworks import kind_of
from otelprod._pipeline.settings import Settings, load_settings
from otelprod.errors import ConfigurationError
from tests.conftest import python_env, run_python
from tests.otlp_receiver import OTLPReceiver
from tests.web_helpers import BIN, server_spans

BOOM = '''
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

class BoomInstrumentor(BaseInstrumentor):
    def instrumentation_dependencies(self):
        return []

    def _instrument(self, **kwargs):
        raise RuntimeError("this instrumentation is broken")

    def _uninstrument(self, **kwargs):
        pass
'''


def fake_instrumentations(directory: Path) -> Path:
    """Two instrumentation packages: ``boom`` raises, ``oldflask`` wants flask < 1."""
    (directory / "boom_instr.py").write_text(BOOM)
    for name, module, requires in (("boom", "boom_instr", ""),
                                   ("oldflask", "boom_instr",
                                    'Requires-Dist: flask<1.0; extra == "instruments"\n')):
        info = directory / f"fake_{name}_instrumentation-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-{name}-"
                                       f"instrumentation\nVersion: 1.0\n{requires}")
        (info / "entry_points.txt").write_text(
            f"[opentelemetry_instrumentor]\n{name} = {module}:BoomInstrumentor\n")
    return directory


# --- the instrument setting ------------------------------------------------------------------
@pytest.mark.parametrize("value,expected", [
    (True, "true"), (False, "false"), (["FastAPI", " requests "], "fastapi,requests"),
    ("no", "false"), ("flask,django", "django,flask"), ([], "false")])
def test_instrument_accepts_bool_list_and_text(value: object, expected: str) -> None:
    assert load_settings(instrument=value).instrument == expected


def test_instrument_from_the_variable() -> None:
    assert load_settings(environ={"OTELPROD_INSTRUMENT": "requests,httpx"}).instrument == \
        "httpx,requests"


@pytest.mark.parametrize("value,words", [
    ([1, 2], "expected true, false or a list"), ("fast api", "'fast api'"),
    (3.5, "expected true, false or a list")])
def test_a_bad_instrument_value_names_the_setting_and_the_value(value: object,
                                                                words: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_settings(instrument=value)
    assert "instrument" in str(error.value) and words in str(error.value)


# --- the environment the instrumentations read -------------------------------------------------
def test_probe_paths_match_exactly_and_nothing_else() -> None:
    excluded = parse_excluded_urls(",".join(http_conventions.excluded_url_patterns(Settings())))
    for url in ("http://h:80/health", "https://h/health/", "http://h/health?full=1",
                "http://h:8000/health/live", "http://h/health/ready"):
        assert excluded.url_disabled(url), url
    for url in ("http://h/healthz", "http://h/api/health", "http://h/health/other",
                "http://h/items/health", "http://h/"):
        assert not excluded.url_disabled(url), url


def test_user_routes_and_regexes_are_excluded_too() -> None:
    settings = Settings(excluded_urls="/metrics, ^.*/internal/.*$")
    excluded = parse_excluded_urls(",".join(http_conventions.excluded_url_patterns(settings)))
    assert excluded.url_disabled("http://h/metrics")
    assert excluded.url_disabled("http://h/a/internal/b")
    assert not excluded.url_disabled("http://h/health")  # replaced, not added


def test_the_environment_respects_the_users_own_values() -> None:
    env = {"OTEL_SEMCONV_STABILITY_OPT_IN": "database",
           "OTEL_PYTHON_FLASK_EXCLUDED_URLS": "/mine",
           "OTEL_PYTHON_EXCLUDED_URLS": "/everywhere"}
    http_conventions.prepare_environment(Settings(), env)
    assert env["OTEL_SEMCONV_STABILITY_OPT_IN"] == "database"
    assert env["OTEL_PYTHON_FLASK_EXCLUDED_URLS"] == "/mine"
    fastapi = env["OTEL_PYTHON_FASTAPI_EXCLUDED_URLS"].split(",")
    assert fastapi[0] == "/everywhere" and len(fastapi) == 4  # theirs and the three probes
    assert "OTEL_PYTHON_REQUESTS_EXCLUDED_URLS" not in env  # clients keep tracing them
    fresh: dict[str, str] = {}
    http_conventions.prepare_environment(Settings(), fresh)
    assert fresh["OTEL_SEMCONV_STABILITY_OPT_IN"] == "http"


# --- what init() makes of each installed instrumentation ----------------------------------------
def test_survey_says_why_each_one_is_skipped() -> None:
    states = {i.name: i for i in instrumentation.survey(
        Settings(), {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "urllib3, requests"})}
    assert states["logging"].state == instrumentation.OTELPROD
    assert states["system_metrics"].state == instrumentation.OTELPROD
    assert states["requests"].state == instrumentation.DISABLED
    assert states["urllib3"].state == instrumentation.DISABLED
    assert states["fastapi"].state == instrumentation.ACTIVE
    assert states["psycopg"].state == instrumentation.ABSENT
    assert "psycopg" in states["psycopg"].reason
    everything = instrumentation.survey(
        Settings(), {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "*"})
    assert {i.state for i in everything} == {instrumentation.DISABLED, instrumentation.OTELPROD}
    assert not {i.name for i in instrumentation.survey(Settings(instrument="false"), {})
                if i.state == instrumentation.ACTIVE}
    chosen = {i.name: i.state for i in instrumentation.survey(Settings(instrument="flask"), {})}
    assert chosen["flask"] == instrumentation.ACTIVE
    assert chosen["fastapi"] == instrumentation.NOT_SELECTED


SHOW = '''
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(message)s")
import otelprod
from otelprod import _init
otelprod.init(service_name="svc"{kw})
for i in _init.instrumentations():
    print("STATE", i.name, "=", i.state)
from opentelemetry.instrumentation.flask import FlaskInstrumentor
print("FLASK", FlaskInstrumentor().is_instrumented_by_opentelemetry)
otelprod.shutdown(timeout=2)
'''


def _states(output: str) -> dict[str, str]:
    return dict(line.removeprefix("STATE ").split(" = ") for line in output.splitlines()
                if line.startswith("STATE "))


def test_a_failing_instrumentor_is_a_warning_and_the_others_still_load(tmp_path: Path) -> None:
    fake_instrumentations(tmp_path)
    env = python_env(OTELPROD_CONSOLE="false", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    result = run_python(SHOW.format(kw=""), env=env)
    assert result.returncode == 0, result.stderr
    states = _states(result.stdout)
    assert states["boom"] == instrumentation.FAILED
    assert states["oldflask"] == instrumentation.CONFLICT
    assert states["flask"] == instrumentation.ACTIVE and "FLASK True" in result.stdout
    # one warning for the broken one, one INFO line for the conflict (the application's
    # handler shows them: it logs to stdout)
    (warning,) = [line for line in result.stdout.splitlines()
                  if "the boom instrumentation failed" in line]
    assert warning.startswith("WARNING") and "this instrumentation is broken" in warning
    (conflict,) = [line for line in result.stdout.splitlines()
                   if "not instrumenting oldflask" in line]
    assert conflict.startswith("INFO") and "flask<1.0" in conflict


@pytest.mark.parametrize("kw,env,flask", [
    (", instrument=False", {}, False),
    (", instrument=['requests']", {}, False),
    ("", {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "flask"}, False),
    ("", {"OTELPROD_INSTRUMENT": "flask"}, True)])
def test_the_instrument_setting_and_the_disabled_variable(kw: str, env: dict[str, str],
                                                          flask: bool) -> None:
    result = run_python(SHOW.format(kw=kw), env=python_env(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", **env))
    assert result.returncode == 0, result.stderr
    assert f"FLASK {flask}" in result.stdout
    if "requests" in kw:
        assert _states(result.stdout)["requests"] == instrumentation.ACTIVE


def test_naming_an_instrumentation_that_is_not_installed_is_a_warning() -> None:
    """Said on stderr when the application has no logging handler of its own."""
    code = SHOW.format(kw=", instrument=['requests', 'pyramid']").replace(
        "logging.basicConfig", "(lambda **kw: None)")
    result = run_python(code, env=python_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("instrument names 'pyramid'") == 1, result.stderr


# --- instrument_app --------------------------------------------------------------------------
def test_instrument_app_refuses_what_is_no_app() -> None:
    with pytest.raises(TypeError, match=r"instrument_app.*FastAPI, Starlette, Flask or Django"):
        kind_of(42)

    async def asgi(scope: object, receive: object, send: object) -> None: ...

    def wsgi(environ: object, start_response: object) -> list[bytes]:
        return []

    assert (kind_of(asgi), kind_of(wsgi)) == ("asgi", "wsgi")


SERVED_BEFORE_INIT = '''
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flask import Flask
import otelprod

api = FastAPI()
api.get("/hello")(lambda: {"hi": 1})
web = Flask("web")
web.get("/hello")(lambda: {"hi": 1})
client = TestClient(api)
assert client.get("/hello").status_code == 200   # its middleware stack is built: untraced
otelprod.init(service_name="early", instrument=False)  # nothing instrumented by init()
assert otelprod.instrument_app(api) is api
assert otelprod.instrument_app(web) is web
assert otelprod.instrument_app(api) is api            # idempotent
for _ in range(2):
    assert client.get("/hello").status_code == 200
    assert web.test_client().get("/hello").status_code == 200
wrapped = otelprod.instrument_app(lambda environ, start_response: [])
assert type(wrapped).__module__ == "opentelemetry.instrumentation.wsgi"
otelprod.shutdown(timeout=5)
'''


def test_instrument_app_traces_apps_that_served_before_init() -> None:
    with OTLPReceiver() as receiver:
        result = run_python(SERVED_BEFORE_INIT, env=python_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc"))
        assert result.returncode == 0, result.stderr
        scopes = sorted(s["scope"].rsplit(".", 1)[-1] for s in server_spans(receiver))
        assert scopes == ["fastapi", "fastapi", "flask", "flask"]
        assert "already instrumented" not in result.stderr


# --- the command line ----------------------------------------------------------------------
def test_otelprod_instrumentations_lists_what_is_missing_offline(tmp_path: Path) -> None:
    fake_instrumentations(tmp_path)
    env = python_env()
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    text = subprocess.run([str(BIN / "otelprod"), "instrumentations"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert any(line.split()[:1] == ["fastapi"] and "active" in line for line in lines)
    assert any("oldflask" in line and "version conflict" in line for line in lines)
    assert any("logging" in line and "done by otelprod" in line for line in lines)
    # jinja2 is installed (Flask needs it) and its instrumentation is not
    from importlib.metadata import version

    from opentelemetry.instrumentation.version import __version__

    pinned = f"opentelemetry-instrumentation-jinja2=={__version__}"
    assert any(line.strip().startswith(f"jinja2 {version('jinja2')}") and pinned in line
               for line in lines)
    assert f"'{pinned}'" in lines[-1] and lines[-1].strip().startswith("pip install")
    data = json.loads(subprocess.run([str(BIN / "otelprod"), "instrumentations", "--json"],
                                     env=env, capture_output=True, text=True,
                                     timeout=60).stdout)
    assert {row["package"] for row in data["missing"]} >= {
        "opentelemetry-instrumentation-jinja2"}
    assert not {row["package"] for row in data["missing"]} & {
        "opentelemetry-instrumentation-fastapi", "opentelemetry-instrumentation-logging"}


def test_otelprod_run_needs_a_command_it_can_find() -> None:
    for args, code, words in ((["run"], 2, "give the command"),
                              (["run", "--", "no-such-command-here"], 127, "not found")):
        result = subprocess.run([str(BIN / "otelprod"), *args], capture_output=True,
                                text=True, timeout=60)
        assert (result.returncode, words in result.stderr) == (code, True), result.stderr


def test_otelprod_run_puts_the_bootstrap_first_and_otelprod_as_distro() -> None:
    from opentelemetry.instrumentation import auto_instrumentation

    from otelprod.cli.run import child_environment

    env = child_environment({"PYTHONPATH": "/mine", "OTEL_PYTHON_CONFIGURATOR": "theirs"},
                            "/here")
    bootstrap = str(Path(auto_instrumentation.__file__).parent)
    assert env["PYTHONPATH"].split(":") == [bootstrap, "/here", "/mine"]
    assert env["OTEL_PYTHON_DISTRO"] == "otelprod"
    assert env["OTEL_PYTHON_CONFIGURATOR"] == "theirs"  # the user's choice stands
    assert sys.executable  # (the child runs the command's own interpreter)
