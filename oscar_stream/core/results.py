"""The outcome of one invocation, the objects its job stored, and the events those objects become (which chain
to the next stage)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

from oscar_stream.core.errors import InvalidEvent
from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.ids import created_object_id
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.jobs import LogLocation
from oscar_stream.core.times import now_rfc3339

ExecutorKind = Literal["local", "kubernetes", "remote", "warm"]


@dataclass(frozen=True)
class StoredObject:
    storage: str
    bucket: str | None
    key: str
    size: int
    etag: str | None
    version_id: str | None = None


@dataclass(frozen=True)
class Result:
    invocation_id: str
    service: str
    event_id: str
    status: Literal["succeeded", "failed"]
    executor: ExecutorKind
    reason: str | None = None
    job: str | None = None
    logs: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    event_time: str | None = None
    outputs: list[StoredObject] = field(default_factory=list)
    log: LogLocation | None = None  # where the job's log was kept (OSCAR's API serves it from there)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, payload: bytes) -> Result:
        try:
            doc: dict[str, Any] = orjson.loads(payload)
            doc["outputs"] = [StoredObject(**o) for o in doc.get("outputs", [])]
            doc["log"] = LogLocation(**doc["log"]) if isinstance(doc.get("log"), dict) else None
            return cls(**doc)
        except (orjson.JSONDecodeError, TypeError, AttributeError) as err:
            raise InvalidEvent(f"not a result record: {err}") from err

    @classmethod
    def failed(cls, invocation: Invocation, executor: ExecutorKind, reason: str, **extra: Any) -> Result:
        return cls(invocation.id, invocation.service, invocation.event.id, "failed", executor, reason=reason,
                   finished_at=now_rfc3339(), event_time=invocation.event.time, **extra)


def output_events(result: Result) -> list[StorageEvent]:
    """One "created" event per uploaded output, with the same id the store's own notification would get."""
    now = result.finished_at or now_rfc3339()
    return [
        StorageEvent(
            id=created_object_id(o.storage, o.bucket, o.key, o.version_id, o.etag, now),
            type=CREATED,
            time=now,
            storage=o.storage,
            kind="dcache" if o.bucket is None else "s3",
            bucket=o.bucket,
            key=o.key,
            action="s3:ObjectCreated:Put" if o.bucket is not None else "IN_CLOSE_WRITE",
            size=o.size,
            etag=o.etag,
            version_id=o.version_id,
            producer=f"service:{result.service}",
            received_at=now,
        )
        for o in result.outputs
    ]
