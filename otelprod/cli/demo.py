"""``otelprod demo``: a workload exercising every feature, shown in Jaeger or on the terminal."""

from __future__ import annotations

import argparse
import os
import socket
import time
from typing import Any
from urllib.parse import urlsplit


class _Progress:
    """Prints the demo's progress, one line a step, with the time since the start."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def step(self, message: str) -> None:
        print(f"[{time.monotonic() - self._start:6.2f}s] {message}", flush=True)


def _reachable(url: str, timeout: float = 0.5) -> bool:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _traces_endpoint(args: argparse.Namespace) -> str:
    from otelprod._pipeline.exporters import resolve_targets
    from otelprod._pipeline.settings import load_settings

    settings = load_settings(endpoint=args.endpoint, protocol=args.protocol)
    return resolve_targets(settings)["traces"].describe()


def cmd_demo(args: argparse.Namespace) -> int:
    import otelprod
    from otelprod.demo import SCENES, run_demo

    out = _Progress()
    endpoint = _traces_endpoint(args)
    console = args.console or not _reachable(endpoint)
    if console and not args.console:
        print(f"No collector answers at {endpoint}: showing the telemetry on this terminal "
              "instead (start one with `docker compose up -d`).", flush=True)
    # Short intervals so the demo's metrics and batches show while it runs.
    os.environ.setdefault("OTEL_METRIC_EXPORT_INTERVAL", "2000")
    os.environ.setdefault("OTEL_BSP_SCHEDULE_DELAY", "500")
    os.environ.setdefault("OTEL_BLRP_SCHEDULE_DELAY", "500")
    otelprod.init(args.service_name, endpoint=args.endpoint, protocol=args.protocol,
                  console=console)
    out.step(f"otelprod initialised: service {args.service_name!r}, "
             f"{'console' if console else 'OTLP to ' + endpoint}")
    try:
        run_demo(out, args.scene or SCENES)
    finally:
        out.step("flushing telemetry")
        ok = otelprod.shutdown(timeout=10)
        out.step("done" if ok else "done (some telemetry was not flushed in time)")
    return 0


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser("demo", help="run a demo workload that exercises every feature")
    demo.add_argument("--service-name", default="otelprod-demo")
    demo.add_argument("--endpoint", help="OTLP endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT)")
    demo.add_argument("--protocol", choices=["grpc", "http/protobuf"])
    demo.add_argument("--console", action="store_true",
                      help="render telemetry on the terminal even when a collector answers")
    demo.add_argument("--scene", action="append",
                      help="run only this scene module (repeatable)")
    demo.set_defaults(func=cmd_demo)
