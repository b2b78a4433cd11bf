"""``otelprod spool status | flush | purge``: look into and act on the disk spool.

``status`` only reads: what is spooled per signal, and what the service's
processes dropped, by reason (from the spool's ``drops.log``). ``flush``
sends what is spooled now, through the same exporters (endpoint, protocol,
headers, TLS) a service would use. ``purge`` deletes, and only with ``--yes``;
segments a running process has claimed are left alone.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from otelprod._pipeline.spool.report import describe
from otelprod._pipeline.spool.store import default_root, service_dir


def _root(args: argparse.Namespace) -> Path:
    return Path(args.dir or os.environ.get("OTELPROD_SPOOL_DIR") or default_root())


def _service(args: argparse.Namespace) -> str:
    if args.service_name:
        return str(args.service_name)
    from otelprod._pipeline.exporters import spool_service_name
    from otelprod._pipeline.settings import load_settings

    return spool_service_name(load_settings())


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _print_status(name: str, info: dict[str, Any]) -> None:
    age = info["oldest_age_s"]
    print(f"{name}: {info['segments']} segments, {_size(info['bytes'])}"
          + (f", oldest {age:.0f} s ago" if age is not None else "")
          + (f", {info['claimed']} being sent" if info["claimed"] else "")
          + f"  [{info['path']}]")
    if info.get("writable") is False:
        print("  the directory is not writable: what the collector does not take is dropped")
    for signal, s in sorted(info["signals"].items()):
        print(f"  {signal:<8} {s['segments']:>6} segments {_size(s['bytes']):>11} "
              f"{s['items']:>9} items")
    for signal, reasons in sorted(info.get("dropped_by_signal", {}).items()):
        lost = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        print(f"  dropped  {signal:<8} {sum(reasons.values()):>9} items ({lost})")


def cmd_status(args: argparse.Namespace) -> int:
    root = _root(args)
    if args.all:
        dirs = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    else:
        dirs = [service_dir(root, _service(args))]
    infos = {d.name: describe(d) for d in dirs}
    if args.json:
        print(json.dumps(infos, indent=2))
        return 0
    if not infos:
        print(f"No spool under {root}.")
    for name, info in infos.items():
        _print_status(name, info)
    return 0


def cmd_flush(args: argparse.Namespace) -> int:
    from otelprod._pipeline.exporters import build_otlp_exporters
    from otelprod._pipeline.settings import load_settings

    service = _service(args)
    settings = load_settings(service_name=service, endpoint=args.endpoint,
                             protocol=args.protocol, spool_dir=str(_root(args)),
                             export_timeout=min(args.timeout, 30.0))
    path = service_dir(settings.spool_dir, service)
    before = describe(path)
    if not before["segments"]:
        print(f"{service}: nothing spooled  [{path}]")
        return 0
    exporters = build_otlp_exporters(settings, service_name=service)
    deadline = time.monotonic() + args.timeout
    for signal in ("traces", "metrics", "logs"):
        exporter: Any = getattr(exporters, signal)
        exporter.start()
        exporter.force_flush(max(1, int((deadline - time.monotonic()) * 1000)))
        exporter.shutdown(timeout_millis=max(1, int((deadline - time.monotonic()) * 1000)))
    after = describe(path)
    sent = before["segments"] - after["segments"]
    print(f"{service}: sent {sent} of {before['segments']} segments "
          f"({_size(before['bytes'] - after['bytes'])})")
    if after["segments"]:
        errors = {s: getattr(exporters, s).health.last_error for s in ("traces", "metrics", "logs")
                  if getattr(exporters, s).health.last_error}
        print(f"{after['segments']} segments left ({_size(after['bytes'])}); the collector "
              f"did not take them: {errors or 'timed out'}")
        return 1
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from otelprod._pipeline.spool.store import SpoolDir

    path = service_dir(_root(args), _service(args))
    info = describe(path)
    if not info["segments"]:
        print(f"Nothing to purge  [{path}]")
        return 0
    if not args.yes:
        _print_status(path.name, info)
        print("Not deleted: pass --yes to delete this telemetry for good.")
        return 1
    segments, size = SpoolDir(path).purge()
    print(f"Deleted {segments} segments ({_size(size)}) from {path}")
    return 0


def register(subparsers: Any) -> None:
    spool = subparsers.add_parser("spool", help="inspect, send or delete telemetry spooled "
                                                "on disk while the collector was away")
    spool.add_argument("--dir", help="spool root (default: $OTELPROD_SPOOL_DIR or the user "
                                     "cache directory)")
    spool.add_argument("--service-name", help="the service (default: OTELPROD_SERVICE_NAME, "
                                              "OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES)")
    sub = spool.add_subparsers(dest="spool_command", required=True)

    p = sub.add_parser("status", help="what is spooled, per signal")
    p.add_argument("--all", action="store_true", help="every service under the spool root")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("flush", help="send what is spooled now")
    p.add_argument("--endpoint", help="OTLP endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT)")
    p.add_argument("--protocol", choices=["grpc", "http/protobuf"])
    p.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    p.set_defaults(func=cmd_flush)

    p = sub.add_parser("purge", help="delete what is spooled (needs --yes)")
    p.add_argument("--yes", action="store_true", help="confirm the deletion")
    p.set_defaults(func=cmd_purge)
