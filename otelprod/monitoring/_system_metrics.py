"""System and process metrics from psutil, under the semantic-convention names.

opentelemetry-instrumentation-system-metrics (0.66b2) is used where what it
emits is current: ``process.memory.usage`` and ``process.cpu.utilization``.
Everything else comes from psutil here, because the instrumentation still
emits deprecated shapes for it: attributes ``state``/``cpu``/``device``/
``direction`` instead of ``cpu.mode``/``cpu.logical_number``/``system.device``/
``disk.io.direction``/``network.io.direction``/``system.memory.state``, the old
``process.open_file_descriptor.count`` name, no unit on the thread count, and
no filesystem metrics at all.

Collection happens only when the metric reader asks (every export interval,
60 s by default); one collection costs well under a millisecond of CPU.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otelprod import _forks, _telemetry, semconv
from otelprod._compat import otel_instrumentation

_log = logging.getLogger("otelprod.monitoring")

# semantic-convention attribute names (stable or incubating)
CPU_MODE = "cpu.mode"
CPU_LOGICAL_NUMBER = "cpu.logical_number"
SYSTEM_MEMORY_STATE = "system.memory.state"
SYSTEM_DEVICE = "system.device"
DISK_IO_DIRECTION = "disk.io.direction"
NETWORK_INTERFACE_NAME = "network.interface.name"
NETWORK_IO_DIRECTION = "network.io.direction"
FS_MOUNTPOINT = "system.filesystem.mountpoint"
FS_TYPE = "system.filesystem.type"
FS_MODE = "system.filesystem.mode"

#: psutil cpu_times field(s) -> cpu.mode
_CPU_MODES = {"user": ("user",), "nice": ("nice",), "system": ("system",), "idle": ("idle",),
              "iowait": ("iowait",), "interrupt": ("irq", "softirq"), "steal": ("steal",)}
_MEMORY_STATES = ("used", "free", "buffers", "cached")
#: block devices that are noise on every Linux host
_SKIP_DEVICES = ("loop", "ram", "zram")
_PARTITIONS_TTL = 300.0

#: metric name -> where it comes from; tests and the benchmark read this
FROM_INSTRUMENTATION = (semconv.METRIC_PROCESS_MEMORY_USAGE,
                        semconv.METRIC_PROCESS_CPU_UTILIZATION)
FROM_PSUTIL = (
    semconv.METRIC_SYSTEM_CPU_UTILIZATION, semconv.METRIC_SYSTEM_MEMORY_USAGE,
    semconv.METRIC_SYSTEM_MEMORY_UTILIZATION, semconv.METRIC_SYSTEM_DISK_IO,
    semconv.METRIC_SYSTEM_NETWORK_IO, semconv.METRIC_SYSTEM_FILESYSTEM_UTILIZATION,
    semconv.METRIC_PROCESS_THREAD_COUNT, semconv.METRIC_PROCESS_OPEN_FILE_DESCRIPTOR_COUNT,
)


class SystemMetrics:
    """Registers the observable instruments once per process; callbacks report only while
    enabled. Use the one of ``monitoring_system``: a second instance registers nothing."""

    _lock = threading.Lock()
    _registered = False

    def __init__(self) -> None:
        self.enabled = False
        self._proc = psutil.Process()
        self._cpu_prev: list[Any] | None = None
        self._partitions: list[Any] = []
        self._partitions_at = -_PARTITIONS_TTL
        self._instrumentor: Any = None
        self.callbacks: list[Callable[[CallbackOptions], Iterator[Observation]]] = []

    # --- lifecycle -------------------------------------------------------------------
    def start(self, meter_provider: Any = None) -> None:
        """Create the instruments on first call (instruments cannot be removed), then enable.

        ``meter_provider`` (default: the global one, once per process) is for
        measuring the collection on a provider of its own.
        """
        with self._lock:
            self.enabled = True
            if meter_provider is None:
                if SystemMetrics._registered:
                    return
                SystemMetrics._registered = True
            elif self.callbacks:
                return
        meter = (meter_provider.get_meter(semconv.SCOPE) if meter_provider is not None
                 else _telemetry.meter)
        self._register(meter)
        self._start_instrumentation(meter_provider)
        _forks.register(self, after_in_child=SystemMetrics._process)

    def stop(self) -> None:
        self.enabled = False

    def _register(self, meter: Meter) -> None:
        try:
            self._cpu_prev = psutil.cpu_times(percpu=True)
        except Exception:  # pragma: no cover - exotic platforms
            self._cpu_prev = None
        spec: list[tuple[str, str, str, str, Callable[..., Iterator[Observation]]]] = [
            ("gauge", semconv.METRIC_SYSTEM_CPU_UTILIZATION, "1",
             "Fraction of time each logical CPU spent in each mode since the last collection.",
             self._cpu_utilization),
            ("updown", semconv.METRIC_SYSTEM_MEMORY_USAGE, "By", "Memory in use, by state.",
             self._memory_usage),
            ("gauge", semconv.METRIC_SYSTEM_MEMORY_UTILIZATION, "1",
             "Fraction of memory in each state.", self._memory_utilization),
            ("counter", semconv.METRIC_SYSTEM_DISK_IO, "By", "Disk bytes transferred.",
             self._disk_io),
            ("counter", semconv.METRIC_SYSTEM_NETWORK_IO, "By",
             "Bytes transmitted and received.", self._network_io),
            ("gauge", semconv.METRIC_SYSTEM_FILESYSTEM_UTILIZATION, "1",
             "Fraction of filesystem bytes used.", self._filesystem_utilization),
            ("updown", semconv.METRIC_PROCESS_THREAD_COUNT, "{thread}", "Process threads count.",
             self._thread_count),
        ]
        if sys.platform != "win32":
            spec.append(("updown", semconv.METRIC_PROCESS_OPEN_FILE_DESCRIPTOR_COUNT,
                         "{file_descriptor}",
                         "Number of UNIX file descriptors in use by the process.",
                         self._open_fds))
        factories = {"gauge": meter.create_observable_gauge,
                     "updown": meter.create_observable_up_down_counter,
                     "counter": meter.create_observable_counter}
        for kind, name, unit, description, fn in spec:
            callback = self._guard(name, fn)
            self.callbacks.append(callback)
            factories[kind](name, callbacks=[callback], unit=unit, description=description)

    def _start_instrumentation(self, meter_provider: Any = None) -> None:
        """process.memory.usage and process.cpu.utilization via the contrib instrumentation."""
        try:
            from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
        except ImportError:  # pragma: no cover - a declared dependency
            _log.warning("opentelemetry-instrumentation-system-metrics is missing: "
                         "no process memory and CPU metrics")
            return
        theirs = otel_instrumentation.existing_instance(SystemMetricsInstrumentor)
        if (meter_provider is None and theirs is not None
                and theirs.is_instrumented_by_opentelemetry):
            return  # the application instrumented it already: these series exist

        class _ProcessMetrics(SystemMetricsInstrumentor):
            """Our own singleton, so the application's instrumentor stays untouched."""

        try:
            self._instrumentor = _ProcessMetrics(
                config={name: None for name in FROM_INSTRUMENTATION})
            self._instrumentor.instrument(meter_provider=meter_provider)
        except Exception:
            _log.warning("could not start the process metrics instrumentation", exc_info=True)

    def _guard(self, name: str, fn: Callable[[], Iterator[Observation]]
               ) -> Callable[[CallbackOptions], Iterator[Observation]]:
        """A callback that reports nothing while stopped and never raises into the reader."""
        failed = False

        def callback(options: CallbackOptions) -> Iterator[Observation]:
            nonlocal failed
            if not self.enabled:
                return iter(())
            try:
                return iter(list(fn()))
            except Exception as exc:
                if not failed:
                    failed = True
                    _log.warning("system metric %s could not be collected: %r", name, exc)
                return iter(())

        callback.__name__ = f"observe_{name}"
        return callback

    def _process(self) -> psutil.Process:
        if self._proc.pid != os.getpid():  # forked: follow the child
            self._proc = psutil.Process()
            instrumentor = self._instrumentor
            if instrumentor is not None:
                otel_instrumentation.follow_process(instrumentor, self._proc)
        return self._proc

    # --- callbacks ----------------------------------------------------------------------
    def _cpu_utilization(self) -> Iterator[Observation]:
        now = psutil.cpu_times(percpu=True)
        prev, self._cpu_prev = self._cpu_prev, now
        if prev is None or len(prev) != len(now):
            return
        for number, (before, after) in enumerate(zip(prev, now, strict=True)):
            deltas = {mode: sum(max(0.0, getattr(after, f, 0.0) - getattr(before, f, 0.0))
                                for f in fields)
                      for mode, fields in _CPU_MODES.items()
                      if hasattr(after, fields[0])}
            total = sum(deltas.values())
            if total <= 0:
                continue
            for mode, delta in deltas.items():
                yield Observation(delta / total, {CPU_MODE: mode, CPU_LOGICAL_NUMBER: number})

    def _memory_usage(self) -> Iterator[Observation]:
        memory = psutil.virtual_memory()
        for state in _MEMORY_STATES:
            if hasattr(memory, state):
                yield Observation(getattr(memory, state), {SYSTEM_MEMORY_STATE: state})

    def _memory_utilization(self) -> Iterator[Observation]:
        memory = psutil.virtual_memory()
        if not memory.total:
            return
        for state in _MEMORY_STATES:
            if hasattr(memory, state):
                yield Observation(getattr(memory, state) / memory.total,
                                  {SYSTEM_MEMORY_STATE: state})

    def _disk_io(self) -> Iterator[Observation]:
        for device, counters in (psutil.disk_io_counters(perdisk=True) or {}).items():
            if device.startswith(_SKIP_DEVICES):
                continue
            yield Observation(counters.read_bytes, {SYSTEM_DEVICE: device,
                                                    DISK_IO_DIRECTION: "read"})
            yield Observation(counters.write_bytes, {SYSTEM_DEVICE: device,
                                                     DISK_IO_DIRECTION: "write"})

    def _network_io(self) -> Iterator[Observation]:
        for nic, counters in (psutil.net_io_counters(pernic=True) or {}).items():
            yield Observation(counters.bytes_recv, {NETWORK_INTERFACE_NAME: nic,
                                                    NETWORK_IO_DIRECTION: "receive"})
            yield Observation(counters.bytes_sent, {NETWORK_INTERFACE_NAME: nic,
                                                    NETWORK_IO_DIRECTION: "transmit"})

    def partitions(self) -> list[Any]:
        """Mounted physical filesystems, re-read every few minutes (it is the costly call)."""
        now = time.monotonic()
        if now - self._partitions_at >= _PARTITIONS_TTL:
            self._partitions = psutil.disk_partitions(all=False)
            self._partitions_at = now
        return self._partitions

    def _filesystem_utilization(self) -> Iterator[Observation]:
        for part in self.partitions():
            try:
                usage = psutil.disk_usage(part.mountpoint)
            except OSError:  # unmounted since, or not readable
                continue
            if not usage.total:
                continue
            mode = "ro" if "ro" in part.opts.split(",") else "rw"
            yield Observation(usage.used / usage.total, {
                SYSTEM_DEVICE: part.device, FS_MOUNTPOINT: part.mountpoint,
                FS_TYPE: part.fstype, FS_MODE: mode})

    def _thread_count(self) -> Iterator[Observation]:
        yield Observation(self._process().num_threads())

    def _open_fds(self) -> Iterator[Observation]:
        yield Observation(self._process().num_fds())

    # --- the status report's figures --------------------------------------------------------
    def snapshot(self, disk_path: str = "/") -> dict[str, Any]:
        """Current system and process figures, JSON-serialisable."""
        out: dict[str, Any] = {}
        try:
            memory = psutil.virtual_memory()
            out["cpu_percent"] = psutil.cpu_percent(interval=None)
            out["cpu_count"] = psutil.cpu_count()
            out["memory"] = {"total_bytes": memory.total, "available_bytes": memory.available,
                             "used_bytes": memory.used, "percent": memory.percent}
            disk = psutil.disk_usage(disk_path)
            out["disk"] = {"path": disk_path, "total_bytes": disk.total,
                           "free_bytes": disk.free, "percent": disk.percent}
            if hasattr(os, "getloadavg"):
                out["load_average"] = [round(x, 2) for x in os.getloadavg()]
            proc = self._process()
            with proc.oneshot():
                process: dict[str, Any] = {
                    "pid": proc.pid, "rss_bytes": proc.memory_info().rss,
                    "cpu_percent": proc.cpu_percent(interval=None),
                    "threads": proc.num_threads()}
                if sys.platform != "win32":
                    process["open_fds"] = proc.num_fds()
            out["process"] = process
        except Exception as exc:  # a report with a hole beats no report
            out["error"] = f"{type(exc).__name__}: {_telemetry.truncate(str(exc))}"
        return out
