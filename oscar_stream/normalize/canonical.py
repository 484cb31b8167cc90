"""The canonical storage event: CloudEvents 1.0, structured JSON, serialized with orjson."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

EventType = Literal["io.oscar-stream.object.created", "io.oscar-stream.object.removed", "io.oscar-stream.object.other"]
CREATED: EventType = "io.oscar-stream.object.created"
REMOVED: EventType = "io.oscar-stream.object.removed"
OTHER: EventType = "io.oscar-stream.object.other"
_TYPES = {CREATED, REMOVED, OTHER}
STORAGE_PRODUCER = "storage"


class InvalidEvent(ValueError):
    """A canonical event (from Kafka or a file) that does not have the required shape."""


def identity_id(*parts: str | None) -> str:
    """A 32-hex-digit id derived from ``parts``: the same parts always give the same id."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(b"\x1f" + (part or "").encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def created_object_id(
    storage: str, bucket: str | None, key: str, version_id: str | None, etag: str | None, fallback: str | None
) -> str:
    """The id of "this version of this object was created". A job computes it for the objects it uploads and
    the store's own notification of the same upload yields it again, so both lead to one invocation downstream.
    The sequencer is left out: an uploader cannot know it, and some stores restart it."""
    return identity_id("created", storage, bucket, key, version_id or etag or fallback)


def normalize_etag(etag: str | None) -> str | None:
    """Stores differ in quoting the ETag (``"abc"`` vs ``abc``); compare it without the quotes."""
    if etag is None:
        return None
    stripped = etag.strip().strip('"')
    return stripped or None


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_rfc3339() -> str:
    return rfc3339(datetime.now(UTC))


def age_seconds(moment: str) -> float:
    """Seconds since an RFC 3339 time (0 if it cannot be read or lies in the future)."""
    try:
        then = datetime.fromisoformat(moment)
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(UTC) - then).total_seconds())


@dataclass(frozen=True, slots=True)
class StorageEvent:
    """One change to one object. ``id`` is derived from the object's identity, never random."""

    id: str
    type: EventType
    time: str
    storage: str
    kind: Literal["s3", "dcache"]
    bucket: str | None
    key: str
    action: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None
    principal: str | None = None
    content_type: str | None = None
    producer: str = STORAGE_PRODUCER
    received_at: str | None = None

    @property
    def path(self) -> str:
        """Bucket and key joined (``bucket/key``); for dCache the absolute path without its leading slash."""
        return f"{self.bucket}/{self.key}" if self.bucket else self.key.lstrip("/")

    @property
    def partition_key(self) -> bytes:
        return f"{self.storage}/{self.path}".encode()

    @property
    def source(self) -> str:
        if self.producer == STORAGE_PRODUCER:
            return f"/oscar-stream/storage/{self.storage}"
        return f"/oscar-stream/{self.producer.replace(':', '/', 1)}"

    def to_cloudevent(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _DATA_FIELDS}  # asdict() deep-copies: slow on a hot path
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "subject": self.path,
            "datacontenttype": "application/json",
            "data": data,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_cloudevent())


    @classmethod
    def from_cloudevent(cls, envelope: Any) -> StorageEvent:
        if not isinstance(envelope, dict):
            raise InvalidEvent("a canonical event must be a JSON object")
        if envelope.get("specversion") != "1.0":
            raise InvalidEvent(f"specversion must be '1.0', got {envelope.get('specversion')!r}")
        data = envelope.get("data")
        if not isinstance(data, dict):
            raise InvalidEvent("'data' must be an object")
        if envelope.get("type") not in _TYPES:
            raise InvalidEvent(f"unknown event type {envelope.get('type')!r}")
        fields: dict[str, Any] = {name: data.get(name) for name in _DATA_FIELDS}
        for required in ("storage", "kind", "key", "action"):
            if not isinstance(fields[required], str) or not fields[required]:
                raise InvalidEvent(f"data.{required} must be a non-empty string")
        if fields["producer"] is None:
            fields["producer"] = STORAGE_PRODUCER
        if not isinstance(envelope.get("id"), str) or not isinstance(envelope.get("time"), str):
            raise InvalidEvent("'id' and 'time' must be strings")
        return cls(id=envelope["id"], type=envelope["type"], time=envelope["time"], **fields)

    @classmethod
    def from_json(cls, payload: bytes) -> StorageEvent:
        try:
            return cls.from_cloudevent(orjson.loads(payload))
        except orjson.JSONDecodeError as err:
            raise InvalidEvent(f"not JSON: {err}") from err


_DATA_FIELDS = tuple(name for name in StorageEvent.__dataclass_fields__ if name not in ("id", "type", "time"))
