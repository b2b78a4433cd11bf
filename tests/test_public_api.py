"""The curated top-level API: every name resolves, lazily, to the module that defines it."""

from __future__ import annotations

import importlib

import otelprod


def test_every_public_name_resolves_to_its_defining_module() -> None:
    for name in otelprod.__all__:
        value = getattr(otelprod, name)
        module = importlib.import_module(otelprod._EXPORTS[name])
        assert value is getattr(module, name), name


def test_importing_otelprod_does_not_load_the_sdk(tmp_path) -> None:
    from tests.conftest import run_python

    result = run_python("""
    import sys, otelprod
    print(any(m.startswith("opentelemetry.sdk") for m in sys.modules))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_unknown_names_raise_attribute_error() -> None:
    try:
        otelprod.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_every_public_name_is_visible_to_type_checkers() -> None:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(otelprod))
    checked = {alias.asname or alias.name
               for node in ast.walk(tree) if isinstance(node, ast.If)
               and ast.unparse(node.test) == "TYPE_CHECKING"
               for stmt in node.body if isinstance(stmt, ast.ImportFrom)
               for alias in stmt.names}
    assert checked == set(otelprod.__all__) == set(otelprod._EXPORTS)


def test_importing_otelprod_loads_neither_the_pipeline_nor_the_exporters() -> None:
    from tests.conftest import run_python

    result = run_python("""
    import sys, otelprod
    print(sorted(m for m in sys.modules if m.startswith(
        ("opentelemetry.sdk", "opentelemetry.exporter", "grpc", "otelprod._pipeline"))))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
