"""Demo scene: structured logs, traced requests, feature flags and scrubbed secrets."""

from __future__ import annotations

import logging
import random

from otelprod.config_manager import ConfigManager, Environment, FeatureFlag, get_secrets
from otelprod.structured_logging import JsonFormatter, ObservabilitySystem, bound_context

TITLE = "logging & config: JSON logs, trace_request, flags, secrets"


class FlakyInventory:
    """A fake dependency that fails about one call in four (seeded: the same every run)."""

    def __init__(self) -> None:
        self._random = random.Random(7)

    def reserve(self, sku: str) -> int:
        if self._random.random() < 0.25:
            raise ConnectionError(f"inventory timed out reserving {sku}")
        return self._random.randint(1, 9)


def run(out) -> None:  # type: ignore[no-untyped-def]
    config = ConfigManager(Environment.STAGING)
    config.register_feature_flag(FeatureFlag("new_checkout", rollout_percentage=50,
                                             allowed_environments=[Environment.STAGING]))
    api_key = get_secrets().set_secret("demo_inventory_key", "inv-demo-key-0451")
    obs = ObservabilitySystem("demo")
    logger = obs.get_logger("checkout")
    inventory = FlakyInventory()

    on = failed = 0
    for n in range(12):
        user = f"user-{n}"
        try:
            with bound_context(user_id=user), \
                    obs.trace_request("checkout", user_id=user) as ctx:
                new_flow = config.is_feature_enabled("new_checkout", key=user)
                on += new_flow
                units = inventory.reserve(f"sku-{n % 3}")
                ctx["logger"].info("reserved %d units", units, new_checkout=new_flow)
        except ConnectionError:
            failed += 1
            # the key slips into the message by mistake: the scrubber catches it
            logger.error("inventory failed for %s; key=%s", user, api_key.get_secret_value())
    out.step(f"12 traced checkouts, {failed} failed on the flaky inventory; new_checkout on "
             f"for {on} users (a feature_flag.evaluation event on each span)")

    report = obs.get_performance_report()["checkout"]
    out.step(f"performance: {report['count']} calls, success rate {report['success_rate']:.0%}, "
             f"p95 {report['p95_ms']:.2f} ms (also the operation.duration histogram)")

    record = logging.LogRecord("demo.checkout", logging.WARNING, __file__, 0,
                               "calling inventory with %s", (api_key.get_secret_value(),), None)
    record.__dict__.update(password="hunter2", sku="sku-1")
    line = JsonFormatter().format(record)
    out.step(f"a JSON line with a secret and a password in it, as written: {line}")
