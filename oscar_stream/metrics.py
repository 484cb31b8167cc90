"""Every metric oscar-stream exports. Names start with ``oscar_stream_``; label sets are bounded (sources,
reasons and services are configured names, never object keys or ids)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from oscar_stream.request_tally import RequestTally

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_JOB_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

EVENTS_RECEIVED = Counter(
    "oscar_stream_events_received", "Raw notifications accepted from a source", ["source", "transport"],
    registry=REGISTRY,
)
EVENTS_NORMALIZED = Counter(
    "oscar_stream_events_normalized", "Canonical events produced", ["source", "type"], registry=REGISTRY
)
EVENTS_IGNORED = Counter(
    "oscar_stream_events_ignored", "Notifications that are not object events (test messages, directories, ...)",
    ["source"], registry=REGISTRY,
)
DEADLETTERED = Counter(
    "oscar_stream_deadlettered", "Records sent to the dead-letter topic", ["stage", "reason"], registry=REGISTRY
)
EVENTS_ROUTED = Counter(
    "oscar_stream_events_routed", "Events that matched at least one service", ["storage"], registry=REGISTRY
)
EVENTS_UNMATCHED = Counter(
    "oscar_stream_events_unmatched", "Events no service wants (not an error)", ["storage"], registry=REGISTRY
)
INVOCATIONS = Counter(
    "oscar_stream_invocations", "Invocations received by the launch stage (one per routed service)",
    ["service"], registry=REGISTRY
)
JOBS_LAUNCHED = Counter(
    "oscar_stream_jobs_launched", "Jobs started (local) or created (Kubernetes)", ["service", "executor"],
    registry=REGISTRY,
)
JOBS_DUPLICATE = Counter(
    "oscar_stream_jobs_duplicate", "Redelivered invocations recognised as already launched",
    ["service", "executor"], registry=REGISTRY,
)
JOBS_SUCCEEDED = Counter(
    "oscar_stream_jobs_succeeded", "Jobs that finished successfully", ["service", "executor"], registry=REGISTRY
)
JOBS_FAILED = Counter(
    "oscar_stream_jobs_failed", "Jobs that failed (after their retries)", ["service", "executor"],
    registry=REGISTRY,
)
JOBS_RETRIED = Counter(
    "oscar_stream_jobs_retried", "Launch attempts retried (API errors, failed local runs)", ["service", "executor"],
    registry=REGISTRY,
)
JOBS_ACTIVE = Gauge(
    "oscar_stream_jobs_active", "Jobs launched and not finished", ["service", "executor"], registry=REGISTRY
)
JOB_DURATION = Histogram(
    "oscar_stream_job_duration_seconds", "Job run time, from launch to finish", ["service", "executor"],
    buckets=_JOB_BUCKETS, registry=REGISTRY,
)
UPLOAD_TO_LAUNCH = Histogram(
    "oscar_stream_upload_to_launch_seconds", "Time from the storage event to the job's launch",
    ["service", "executor"], buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
OUTPUTS_PUBLISHED = Counter(
    "oscar_stream_outputs_published", "Output objects uploaded and published as events", ["service"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "oscar_stream_consumer_lag_records", "Records not yet consumed, per topic", ["topic", "group"],
    registry=REGISTRY,
)
GATEWAY_REQUESTS = RequestTally(
    "oscar_stream_gateway_requests", "Webhook gateway requests by status code",
    "oscar_stream_gateway_request_seconds", "Webhook gateway request latency (includes the Kafka ack)",
    _LATENCY_BUCKETS, REGISTRY,
)
DCACHE_EVENTS_LOST = Counter(
    "oscar_stream_dcache_events_lost", "dCache EVENT_LOSS / queue-overflow notices", ["source"], registry=REGISTRY
)
DCACHE_RECONNECTS = Counter(
    "oscar_stream_dcache_reconnects", "dCache SSE reconnections", ["source"], registry=REGISTRY
)
PER_SERVICE_JOB_METRICS = (JOBS_LAUNCHED, JOBS_DUPLICATE, JOBS_SUCCEEDED, JOBS_FAILED, JOBS_RETRIED, JOBS_ACTIVE)


def initialize_service(service: str, executor: str) -> None:
    """Create a service's series at 0, so the first increments show up in rate() and increase()."""
    for metric in PER_SERVICE_JOB_METRICS:
        metric.labels(service, executor)


RESULTS_DUPLICATE = Counter(
    "oscar_stream_results_duplicate", "Results not published again: their invocation already has one", ["service"],
    registry=REGISTRY,
)
INVOCATIONS_QUEUED = Gauge(
    "oscar_stream_invocations_queued", "Invocations waiting in this worker for a free slot of their service",
    ["service"], registry=REGISTRY,
)
CONCURRENCY_SHARE = Gauge(
    "oscar_stream_concurrency_share", "This worker's share of a service's concurrency limit", ["service"],
    registry=REGISTRY,
)
PARTITIONS_OWNED = Gauge(
    "oscar_stream_partitions_owned", "Partitions this worker's agent consumes", ["stage"], registry=REGISTRY,
)
STAGE_RECOVERIES = Counter(
    "oscar_stream_stage_recoveries", "Times a stage dropped its Kafka clients after a failure and started over",
    ["stage"], registry=REGISTRY,
)
EVENTS_FORWARDED = Counter(
    "oscar_stream_events_forwarded", "Events forwarded to the cluster of a remote service", ["cluster", "status"],
    registry=REGISTRY,
)
SERVICES_LOADED = Gauge(
    "oscar_stream_services", "Services in the routing table of this worker", registry=REGISTRY
)


_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: Counter | Histogram, *labels: str) -> Any:
    """``metric.labels(*labels)`` for hot paths: ``labels()`` validates and locks on every call (measured at
    several microseconds per event), so the labelled child is looked up once and kept."""
    key = (id(metric), labels)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*labels)
    return found


def count(metric: Counter, *labels: str, amount: float = 1.0) -> None:
    child(metric, *labels).inc(amount)


WARM_REPLICAS = Gauge(
    "oscar_stream_warm_replicas", "Warm replicas of a service running in this worker", ["service"], registry=REGISTRY
)
WARM_RUNNING = Gauge(
    "oscar_stream_warm_running", "Requests running on a service's warm replicas", ["service"], registry=REGISTRY
)
WARM_WAITING = Gauge(
    "oscar_stream_warm_waiting", "Requests waiting for a free warm replica", ["service"], registry=REGISTRY
)
WARM_COLD_STARTS = Counter(
    "oscar_stream_warm_cold_starts", "Warm replicas started (scale-ups, including from zero)", ["service"],
    registry=REGISTRY,
)
WARM_START_SECONDS = Histogram(
    "oscar_stream_warm_start_seconds", "Time to start a warm replica until its runner is ready", ["service"],
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
WARM_REQUESTS = Counter(
    "oscar_stream_warm_requests", "Requests served by warm replicas, by outcome", ["service", "outcome"],
    registry=REGISTRY,
)
WARM_REQUEST_SECONDS = Histogram(
    "oscar_stream_warm_request_seconds", "Time of a request on a warm replica, waiting included", ["service"],
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
