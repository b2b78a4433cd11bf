"""Every telemetry name otelprod emits, in one place.

Dashboards, alert rules and tests read names from here, so renaming an
instrument is a one-line change that the stack tests catch everywhere else.
Names follow the OpenTelemetry semantic conventions where one exists; for
resilience they follow the open proposal (semantic-conventions #2355:
``retry.*``, ``circuitbreaker.*``, ``ratelimiter.*``). See ``DESIGN.md``.
"""

from __future__ import annotations

from typing import Final

#: Instrumentation scope of every tracer, meter and logger otelprod creates.
SCOPE: Final = "otelprod"

#: Histogram bucket boundaries for durations in seconds (the SDK's defaults
#: are meant for milliseconds and put every observation in the first bucket).
DURATION_BUCKETS_S: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)

# --- resource attributes ----------------------------------------------------
SERVICE_NAME: Final = "service.name"
SERVICE_VERSION: Final = "service.version"
SERVICE_INSTANCE_ID: Final = "service.instance.id"
DEPLOYMENT_ENVIRONMENT_NAME: Final = "deployment.environment.name"
HOST_NAME: Final = "host.name"
PROCESS_PID: Final = "process.pid"
# where it runs (otelprod._pipeline.resource's detectors; the SDK's add process.runtime.*,
# process.executable.*, os.type, os.version, host.arch, host.id)
PROCESS_PARENT_PID: Final = "process.parent_pid"
PROCESS_RUNTIME_NAME: Final = "process.runtime.name"
PROCESS_RUNTIME_VERSION: Final = "process.runtime.version"
PROCESS_RUNTIME_DESCRIPTION: Final = "process.runtime.description"
OS_TYPE: Final = "os.type"
OS_VERSION: Final = "os.version"
HOST_ID: Final = "host.id"
CONTAINER_ID: Final = "container.id"
K8S_POD_NAME: Final = "k8s.pod.name"
K8S_POD_UID: Final = "k8s.pod.uid"
K8S_NAMESPACE_NAME: Final = "k8s.namespace.name"
K8S_NODE_NAME: Final = "k8s.node.name"
CLOUD_PROVIDER: Final = "cloud.provider"
CLOUD_PLATFORM: Final = "cloud.platform"
CLOUD_REGION: Final = "cloud.region"
FAAS_NAME: Final = "faas.name"
FAAS_VERSION: Final = "faas.version"
FAAS_INSTANCE: Final = "faas.instance"

# --- common attributes -----------------------------------------------------
ERROR_TYPE: Final = "error.type"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_STACKTRACE: Final = "exception.stacktrace"

# --- retry -------------------------------------------------------------------
METRIC_RETRY_ATTEMPTS: Final = "retry.attempts"
RETRY_NAME: Final = "retry.name"
RETRY_RESULT: Final = "retry.result"
RETRY_ATTEMPT: Final = "retry.attempt"
RETRY_DELAY: Final = "retry.delay"
EVENT_RETRY: Final = "retry"
EVENT_RETRY_EXHAUSTED: Final = "retry.exhausted"


class RetryResult:
    SUCCESS: Final = "success"
    RETRY: Final = "retry"
    EXHAUSTED: Final = "exhausted"
    #: the attempt failed with an exception the policy does not retry
    FAILURE: Final = "failure"


# --- circuit breaker -----------------------------------------------------------
METRIC_CIRCUITBREAKER_STATE: Final = "circuitbreaker.state"
METRIC_CIRCUITBREAKER_CALLS: Final = "circuitbreaker.calls"
METRIC_CIRCUITBREAKER_TRANSITIONS: Final = "circuitbreaker.transitions"
CIRCUITBREAKER_NAME: Final = "circuitbreaker.name"
CIRCUITBREAKER_STATE: Final = "circuitbreaker.state"
CIRCUITBREAKER_STATE_PREVIOUS: Final = "circuitbreaker.state.previous"
CIRCUITBREAKER_RESULT: Final = "circuitbreaker.result"
EVENT_CIRCUITBREAKER_STATE_CHANGE: Final = "circuitbreaker.state_change"
EVENT_CIRCUITBREAKER_REJECTED: Final = "circuitbreaker.rejected"
#: why the state changed (on circuitbreaker.state_change): failure_threshold, trial_failed,
#: trial_hung, timeout_elapsed, success_threshold, manual, shared_state
CIRCUITBREAKER_TRANSITION_REASON: Final = "circuitbreaker.transition.reason"


class CircuitBreakerState:
    CLOSED: Final = "closed"
    OPEN: Final = "open"
    HALF_OPEN: Final = "half_open"
    ALL: Final = ("closed", "open", "half_open")


class CircuitBreakerResult:
    SUCCESS: Final = "success"
    FAILURE: Final = "failure"
    REJECTED: Final = "rejected"
    #: ended by cancellation (asyncio.CancelledError, KeyboardInterrupt, a closed
    #: generator...): neither a success nor a failure unless count_cancellations
    CANCELLED: Final = "cancelled"
    ALL: Final = ("success", "failure", "rejected", "cancelled")


# --- rate limiter and backpressure --------------------------------------------
METRIC_RATELIMITER_REQUESTS: Final = "ratelimiter.requests"
METRIC_RATELIMITER_WAIT_DURATION: Final = "ratelimiter.wait.duration"
METRIC_RATELIMITER_AVAILABLE: Final = "ratelimiter.available"
RATELIMITER_NAME: Final = "ratelimiter.name"
RATELIMITER_RESULT: Final = "ratelimiter.result"
RATELIMITER_RETRY_AFTER: Final = "ratelimiter.retry_after"
EVENT_RATELIMITER_WAIT: Final = "ratelimiter.wait"
EVENT_RATELIMITER_REJECTED: Final = "ratelimiter.rejected"
RATELIMITER_DELAY: Final = "ratelimiter.delay"  # s slept for a slot (on ratelimiter.wait)
# a shared store (Redis) failed; the failure mode decided the request
METRIC_RATELIMITER_BACKEND_FAILURES: Final = "ratelimiter.backend.failures"
RATELIMITER_FAILURE_MODE: Final = "ratelimiter.failure_mode"  # open / closed
EVENT_RATELIMITER_BACKEND_FAILURE: Final = "ratelimiter.backend_failure"

METRIC_BACKPRESSURE_QUEUE_SIZE: Final = "backpressure.queue.size"
METRIC_BACKPRESSURE_REJECTIONS: Final = "backpressure.rejections"
BACKPRESSURE_NAME: Final = "backpressure.name"
BACKPRESSURE_REASON: Final = "backpressure.reason"  # full / shedding
EVENT_BACKPRESSURE_REJECTED: Final = "backpressure.rejected"


class BackpressureReason:
    FULL: Final = "full"  # at max_queue_size
    SHEDDING: Final = "shedding"  # above the high watermark, not yet below the low one


class RateLimiterResult:
    ALLOWED: Final = "allowed"
    WAITED: Final = "waited"
    REJECTED: Final = "rejected"


# --- dead-letter queue ----------------------------------------------------------
METRIC_DEADLETTER_QUEUE_SIZE: Final = "deadletter.queue.size"
METRIC_DEADLETTER_ENQUEUED: Final = "deadletter.enqueued"
METRIC_DEADLETTER_REPLAYED: Final = "deadletter.replayed"
DEADLETTER_QUEUE: Final = "deadletter.queue"
DEADLETTER_RESULT: Final = "deadletter.result"
EVENT_DEADLETTER_ENQUEUED: Final = "deadletter.enqueued"
DEADLETTER_OPERATION: Final = "deadletter.operation"
DEADLETTER_ITEM_ID: Final = "deadletter.item.id"


class DeadLetterResult:
    SUCCESS: Final = "success"
    FAILURE: Final = "failure"

# --- fallbacks and handled errors ------------------------------------------------
METRIC_FALLBACK_INVOCATIONS: Final = "fallback.invocations"
FALLBACK_NAME: Final = "fallback.name"
EVENT_FALLBACK: Final = "fallback"

METRIC_ERRORS_HANDLED: Final = "errors.handled"
ERROR_SEVERITY: Final = "error.severity"
ERROR_CONTEXT: Final = "error.context"

# --- uncaught exceptions (otelprod.init()'s hooks; log records on logger otelprod.uncaught,
# errors.handled with error.severity=critical and error.context=one of UncaughtContext) ----
#: what the hook was told besides the exception: asyncio's message, the unraisable's object
ERROR_DETAIL: Final = "error.detail"
THREAD_NAME: Final = "thread.name"
THREAD_ID: Final = "thread.id"


class UncaughtContext:
    MAIN_THREAD: Final = "uncaught.main_thread"  # FATAL record and a CRITICAL alert
    THREAD: Final = "uncaught.thread"
    ASYNCIO: Final = "uncaught.asyncio"
    UNRAISABLE: Final = "uncaught.unraisable"
    ALL: Final = ("uncaught.main_thread", "uncaught.thread", "uncaught.asyncio",
                  "uncaught.unraisable")


# --- health and alerts ------------------------------------------------------------
METRIC_HEALTH_CHECK_STATUS: Final = "health.check.status"
METRIC_HEALTH_CHECK_DURATION: Final = "health.check.duration"
HEALTH_CHECK_NAME: Final = "health.check.name"
HEALTH_STATUS: Final = "health.status"


class HealthStatusValue:
    HEALTHY: Final = "healthy"
    DEGRADED: Final = "degraded"
    UNHEALTHY: Final = "unhealthy"
    UNKNOWN: Final = "unknown"
    ALL: Final = ("healthy", "degraded", "unhealthy", "unknown")


METRIC_ALERTS_ACTIVE: Final = "alerts.active"
METRIC_ALERTS_RAISED: Final = "alerts.raised"
ALERT_SEVERITY: Final = "alert.severity"
ALERT_COMPONENT: Final = "alert.component"

# --- operations (structured logging's trace_request) -------------------------------
METRIC_OPERATION_DURATION: Final = "operation.duration"
OPERATION_NAME: Final = "operation.name"
OPERATION_RESULT: Final = "operation.result"

# --- validation ----------------------------------------------------------------------
METRIC_VALIDATION_FAILURES: Final = "validation.failures"
VALIDATION_INPUT_TYPE: Final = "validation.input_type"
VALIDATION_THREAT: Final = "validation.threat"
EVENT_VALIDATION_FAILED: Final = "validation.failed"
#: rule ids of the detector findings behind a failure (``xss.event_handler``, …)
VALIDATION_RULES: Final = "validation.rules"
#: the first few error messages; they never quote the input in full
VALIDATION_ERRORS: Final = "validation.errors"
#: length in characters and a short SHA-256 of the input, in place of the input itself
VALIDATION_VALUE_LENGTH: Final = "validation.value.length"
VALIDATION_VALUE_HASH: Final = "validation.value.hash"


class ValidationThreat:
    XSS: Final = "xss"
    SQLI: Final = "sqli"
    FORMAT: Final = "format"
    NONE: Final = "none"


# --- feature flags (OTel feature-flag semantic conventions) ---------------------------
EVENT_FEATURE_FLAG_EVALUATION: Final = "feature_flag.evaluation"
FEATURE_FLAG_KEY: Final = "feature_flag.key"
FEATURE_FLAG_PROVIDER_NAME: Final = "feature_flag.provider.name"
FEATURE_FLAG_RESULT_VARIANT: Final = "feature_flag.result.variant"
FEATURE_FLAG_RESULT_VALUE: Final = "feature_flag.result.value"
FEATURE_FLAG_RESULT_REASON: Final = "feature_flag.result.reason"
FEATURE_FLAG_CONTEXT_ID: Final = "feature_flag.context.id"

# --- system and process metrics (semantic-convention names) -----------------------------
METRIC_SYSTEM_CPU_UTILIZATION: Final = "system.cpu.utilization"
METRIC_SYSTEM_MEMORY_USAGE: Final = "system.memory.usage"
METRIC_SYSTEM_MEMORY_UTILIZATION: Final = "system.memory.utilization"
METRIC_SYSTEM_DISK_IO: Final = "system.disk.io"
METRIC_SYSTEM_NETWORK_IO: Final = "system.network.io"
METRIC_SYSTEM_FILESYSTEM_UTILIZATION: Final = "system.filesystem.utilization"
METRIC_PROCESS_CPU_UTILIZATION: Final = "process.cpu.utilization"
METRIC_PROCESS_MEMORY_USAGE: Final = "process.memory.usage"
METRIC_PROCESS_THREAD_COUNT: Final = "process.thread.count"
METRIC_PROCESS_OPEN_FILE_DESCRIPTOR_COUNT: Final = "process.unix.file_descriptor.count"

# --- HTTP servers (stable semantic conventions; emitted by the contrib instrumentations
# init() activates, opted in with OTEL_SEMCONV_STABILITY_OPT_IN=http) ----------------------
METRIC_HTTP_SERVER_REQUEST_DURATION: Final = "http.server.request.duration"
METRIC_HTTP_SERVER_ACTIVE_REQUESTS: Final = "http.server.active_requests"
HTTP_ROUTE: Final = "http.route"
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"

# --- the exporter's own health --------------------------------------------------------
METRIC_EXPORT_SPOOL_SIZE: Final = "otelprod.export.spool.size"
METRIC_EXPORT_DROPPED: Final = "otelprod.export.dropped"
METRIC_EXPORT_FAILURES: Final = "otelprod.export.failures"
SIGNAL: Final = "signal"
#: why ``otelprod.export.dropped`` items were lost (a :class:`DropReason` value)
REASON: Final = "reason"


class DropReason:
    """Where telemetry was lost: the ``reason`` of ``otelprod.export.dropped``."""

    QUEUE_FULL: Final = "queue_full"  # the SDK's in-memory batch queue was full
    SPOOL_FULL: Final = "spool_full"  # the spool bound, or the disk/file-size limit
    SPOOL_UNUSABLE: Final = "spool_unusable"  # the spool directory cannot be written
    CORRUPT_SEGMENT: Final = "corrupt_segment"  # a spooled segment was damaged
    SEGMENT_LOST: Final = "segment_lost"  # a claimed segment vanished before it was sent
    SHUTDOWN_DEADLINE: Final = "shutdown_deadline"  # still queued when the deadline passed
    AFTER_SHUTDOWN: Final = "after_shutdown"  # emitted after the pipeline was shut down
    REJECTED: Final = "rejected"  # the collector answered with a non-retryable error
    EXPORT_FAILED: Final = "export_failed"  # the SDK exporter failed (spool disabled)
    EXPORT_ERROR: Final = "export_error"  # the exporter raised (a bug, e.g. in encoding)
    ALL: Final = ("queue_full", "spool_full", "spool_unusable", "corrupt_segment",
                  "segment_lost", "shutdown_deadline", "after_shutdown", "rejected",
                  "export_failed", "export_error")


class Signal:
    TRACES: Final = "traces"
    METRICS: Final = "metrics"
    LOGS: Final = "logs"
    ALL: Final = ("traces", "metrics", "logs")
