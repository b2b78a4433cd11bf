"""``otelprod doctor``: the effective configuration, and one real export per signal."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from typing import Any

_SENSITIVE_ENV = ("HEADERS", "TOKEN", "PASSWORD", "SECRET", "KEY")


def _masked_env() -> dict[str, str]:
    out = {}
    for key in sorted(os.environ):
        if key.startswith(("OTEL_", "OTELPROD_")):
            value = os.environ[key]
            if any(word in key for word in _SENSITIVE_ENV):
                value = "[REDACTED]"
            out[key] = value
    return out


def run_doctor(endpoint: str | None, protocol: str | None, *, timeout: float,
               env: dict[str, str]) -> int:
    from otelprod._pipeline.doctor import check_exports
    from otelprod._pipeline.settings import load_settings
    from otelprod._scrub import scrubber

    settings = load_settings(endpoint=endpoint, protocol=protocol, export_timeout=timeout)
    print("Effective configuration")
    shown = scrubber.scrub_mapping({**asdict(settings), "environment_variables": env})
    print(json.dumps(shown, indent=2, default=str))

    print("\nCollector checks (one real export per signal)")
    failed = 0
    for check in check_exports(settings):
        failed += not check.ok
        verdict = "OK" if check.ok else f"FAILED ({check.error or 'the collector refused'})"
        print(f"  {check.signal:<8} {check.protocol:<14} {check.endpoint:<45} {verdict} "
              f"[{check.seconds * 1000:.0f} ms]")
    if failed:
        print(f"\n{failed} of 3 signals could not be exported. Is a collector running? "
              "`docker compose up -d` starts the bundled stack.")
    else:
        print("\nA test span 'otelprod.doctor' was sent.")
    return 1 if failed else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    return run_doctor(args.endpoint, args.protocol, timeout=args.timeout, env=_masked_env())


def register(subparsers: Any) -> None:
    doctor = subparsers.add_parser("doctor", help="show the effective configuration and check "
                                                  "the collector for each signal")
    doctor.add_argument("--endpoint")
    doctor.add_argument("--protocol", choices=["grpc", "http/protobuf"])
    doctor.add_argument("--timeout", type=float, default=3.0)
    doctor.set_defaults(func=cmd_doctor)
