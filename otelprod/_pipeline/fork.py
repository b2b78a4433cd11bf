"""A forked worker starts its metrics from zero.

After ``os.fork`` the SDK gives the child a new ``service.instance.id``, but
the child also inherits the parent's aggregation state: a counter the parent
had at 1 reads 1 + n in the child, so under a pre-fork server (gunicorn's
``preload_app``) every worker re-exports the parent's counts as its own and
sums across instances double-count. The child's instance is a new stream, so
its aggregations must start empty: this hook gives each metric reader fresh
storage in the child (instruments and observable callbacks are kept; they live
outside the storage), and new locks where a parent's thread may have held one.

Pre-fork servers: call ``otelprod.init()`` in the app module (with gunicorn's
``preload_app`` it then runs once, in the arbiter) and flush each worker on
its way out. A worker that leaves through ``sys.exit`` runs otelprod's atexit
flush by itself; gunicorn's ``worker_exit`` hook covers every other way out::

    # gunicorn.conf.py
    def worker_exit(server, worker):
        import otelprod
        otelprod.shutdown()

What a worker could not send before it exited stays in the disk spool and is
sent by the next process of the service.
"""

from __future__ import annotations

import inspect
import os
import threading
from typing import Any


def reset_metric_state(meter_provider: Any) -> bool:
    """Forget every aggregation of an SDK ``MeterProvider``; False if it is not one we know."""
    consumer = getattr(meter_provider, "_measurement_consumer", None)
    storages = getattr(consumer, "_reader_storages", None)
    config = getattr(meter_provider, "_sdk_config", None)
    if consumer is None or storages is None or config is None:
        return False
    from opentelemetry.sdk.metrics._internal.metric_reader_storage import MetricReaderStorage

    takes_limit = "instrument_class_cardinality_limit" in inspect.signature(
        MetricReaderStorage).parameters
    fresh = {}
    for reader in storages:
        args = [config, reader._instrument_class_temporality,
                reader._instrument_class_aggregation]
        if takes_limit:
            args.append(getattr(reader, "_instrument_class_cardinality_limit", {}))
        fresh[reader] = MetricReaderStorage(*args)
        if hasattr(reader, "_export_lock"):  # held if the parent was exporting at fork
            reader._export_lock = threading.Lock()
    consumer._lock = threading.Lock()
    consumer._reader_storages = fresh
    return True


def _after_fork_in_child() -> None:
    try:
        from otelprod import _init as _bootstrap

        pipeline = _bootstrap._pipeline
        if pipeline is not None and "metrics" in pipeline.owned:
            reset_metric_state(pipeline.meter_provider)
    except Exception:  # never break a fork over telemetry
        pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
