"""Reading Jobs as the API server sends them: how they ended, and which ConfigMaps/Secrets they use."""

from __future__ import annotations

from datetime import UTC, datetime

from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.invocation import Invocation
from oscar_stream.launch import job_spec
from oscar_stream.launch.job_status import Finished, finished, parse_time, referenced_objects, time_text
from oscar_stream.route.model import InputSpec, ServiceSpec


def _job(**status: object) -> dict[str, object]:
    return {"metadata": {"name": "j"}, "status": status}


def test_running_completed_and_failed_jobs() -> None:
    assert finished(_job()) is None
    assert finished({"metadata": {"name": "j"}}) is None
    assert finished(_job(conditions=[{"type": "Complete", "status": "False"}])) is None
    assert finished(_job(conditions=[{"type": "Complete", "status": "True",
                                      "lastTransitionTime": "2026-01-01T00:00:05Z"}])) == \
        Finished("succeeded", None, datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC))
    failed = finished(_job(conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                        "message": "Job has reached the specified backoff limit"}]))
    assert failed == Finished("failed", "BackoffLimitExceeded: Job has reached the specified backoff limit", None)


def test_times() -> None:
    assert time_text(parse_time("2026-01-01T10:00:00Z")) == "2026-01-01T10:00:00.000Z"
    assert parse_time("yesterday") is None and parse_time(None) is None and time_text(None) is None


def test_a_built_job_references_its_script_secrets_and_storage_configuration() -> None:
    service = ServiceSpec(name="s", image="i", script="x", secrets={"T": "v"},
                          inputs=(InputSpec("minio.default", "b/in"),))
    event = StorageEvent(id="e" * 32, type=CREATED, time="2026-01-01T00:00:00.000Z", storage="minio.default",
                         kind="s3", bucket="b", key="in/a", action="s3:ObjectCreated:Put")
    invocation = Invocation.of(service.name, service.version, event)
    job = job_spec.build_job(invocation, service, "ns", "helper:1", "storage-abc", "dep")
    assert referenced_objects(job) == job_spec.current_objects(service, "dep") | {"storage-abc"}
    assert referenced_objects({"metadata": {"name": "j"}}) == set()
