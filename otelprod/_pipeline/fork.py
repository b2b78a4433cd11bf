"""A forked worker is an instance of its own: its own pid, its own metrics from zero.

After ``os.fork`` the SDK gives the child a new ``service.instance.id`` (its
own fork handlers re-run the resource detectors that depend on the process),
but by default not a new ``process.pid``: that detector is opt-in, and
otelprod sets the pid itself. The child also inherits the parent's
aggregation state: a counter the parent had at 1 reads 1 + n in the child,
so under a pre-fork server (gunicorn's ``preload_app``) every worker would
re-export the parent's counts as its own and sums across instances would
double-count. So, in the child:

* each metric reader gets fresh storage (instruments and observable callbacks
  are kept; they live outside the storage), with new locks where a parent's
  thread may have held one;
* ``process.pid`` is renewed on every provider, *after* the SDK's own fork
  handlers: renewing takes the provider's lock, which only the SDK's handler
  makes safe to take (a parent's thread may have held it at fork).

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

import os

from opentelemetry.sdk.resources import Resource

from otelprod import _forks, semconv
from otelprod._compat import otel_sdk
from otelprod._compat.otel_sdk import reset_metric_state
from otelprod._pipeline.providers import Pipeline


def prepare_for_fork(pipeline: Pipeline) -> None:
    """Register what a forked child of ``pipeline``'s process needs (for as long as it lives).

    Call it right after the providers are built, so that the pid renewal runs
    after their own fork handlers.
    """
    if "metrics" in pipeline.owned:
        _forks.register(pipeline, after_in_child=_reset_metrics)
    _forks.register_late(pipeline, after_in_child=_renew_pid)


def _reset_metrics(pipeline: Pipeline) -> None:
    reset_metric_state(pipeline.meter_provider)


def _renew_pid(pipeline: Pipeline) -> None:
    renewed: dict[str, int] = {semconv.PROCESS_PID: os.getpid()}
    if semconv.PROCESS_PARENT_PID in pipeline.resource.attributes:  # the process detector's
        renewed[semconv.PROCESS_PARENT_PID] = os.getppid()
    update = Resource(renewed)
    for provider in (pipeline.tracer_provider, pipeline.meter_provider,
                     pipeline.logger_provider):
        if provider is not None:
            otel_sdk.update_resource(provider, update)


__all__ = ["prepare_for_fork", "reset_metric_state"]
