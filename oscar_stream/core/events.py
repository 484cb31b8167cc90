"""The canonical storage event: CloudEvents 1.0, structured JSON, serialized with orjson.

Every field that is copied from a store's notification into an event is checked here, so that no event can
carry something a later stage cannot handle: an object key longer than S3 allows, control characters, ``.`` or
``..`` path segments (a job writes its input under the key's last segment), a bucket name no store accepts, a
time outside what RFC 3339 in UTC can express.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from oscar_stream.core.errors import InvalidEvent
from oscar_stream.core.times import normalize_time

EventType = Literal["io.oscar-stream.object.created", "io.oscar-stream.object.removed", "io.oscar-stream.object.other"]
CREATED: EventType = "io.oscar-stream.object.created"
REMOVED: EventType = "io.oscar-stream.object.removed"
OTHER: EventType = "io.oscar-stream.object.other"
_TYPES = {CREATED, REMOVED, OTHER}
STORAGE_PRODUCER = "storage"

MAX_KEY_BYTES = 1024  # S3's limit for an object key; also applied to dCache paths
MAX_TEXT_BYTES = 1024  # any other text field copied from a notification (etag, version id, principal, ...)
STORAGE_ID = re.compile(r"^[a-z][a-z0-9]*\.[A-Za-z0-9][A-Za-z0-9_-]*$")
# S3's bucket rules (3-63 characters, lowercase letters, digits, dots and hyphens, starting and ending with a
# letter or digit), plus the underscore that older buckets and some S3-compatible stores allow.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DOT_SEGMENT = re.compile(r"(?:^|/)\.\.?(?:/|$)")


def check_storage_id(storage: str) -> str:
    if not STORAGE_ID.match(storage):
        raise InvalidEvent(f"storage id {storage[:80]!r} is not of the form <type>.<name> (e.g. minio.default)")
    return storage


def check_bucket(bucket: str) -> str:
    if not _BUCKET.match(bucket):
        raise InvalidEvent(f"bucket name {bucket[:80]!r} is not a valid S3 bucket name (3-63 characters: lowercase "
                           "letters, digits, '.', '-', '_', starting and ending with a letter or digit)")
    return bucket


def check_key(key: str, where: str = "object key") -> str:
    """An object key (or dCache path) every stage and executor can handle."""
    if not key:
        raise InvalidEvent(f"{where} is empty")
    if len(key) > MAX_KEY_BYTES // 4:  # shorter keys cannot be over the limit, whatever their characters
        size = len(key.encode("utf-8", "surrogatepass"))
        if size > MAX_KEY_BYTES:
            raise InvalidEvent(f"{where} is {size} bytes long; the limit is {MAX_KEY_BYTES} (as in S3)")
    # str methods first (they run in C): most keys need no regular expression at all
    if not key.isprintable() and _CONTROL.search(key):
        raise InvalidEvent(f"{where} {key[:80]!r} contains control characters")
    if (key[0] == "." or "/." in key) and _DOT_SEGMENT.search(key):
        raise InvalidEvent(f"{where} {key[:80]!r} has a '.' or '..' path segment")
    return key


def check_text(value: str | None, where: str) -> str | None:
    if value is not None and len(value) > MAX_TEXT_BYTES:
        raise InvalidEvent(f"{where} is {len(value)} characters long; the limit is {MAX_TEXT_BYTES}")
    return value


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
        """The event in a CloudEvents envelope, every field checked (the events topic may be written by peers
        and by hand)."""
        if not isinstance(envelope, dict):
            raise InvalidEvent("a canonical event must be a JSON object")
        if envelope.get("specversion") != "1.0":
            raise InvalidEvent(f"specversion must be '1.0', got {str(envelope.get('specversion'))[:40]!r}")
        data = envelope.get("data")
        if not isinstance(data, dict):
            raise InvalidEvent("'data' must be an object")
        kind = envelope.get("type")
        if kind not in _TYPES:
            raise InvalidEvent(f"unknown event type {str(kind)[:80]!r}")
        event_id, time = envelope.get("id"), envelope.get("time")
        if not isinstance(event_id, str) or not event_id or len(event_id) > 128:
            raise InvalidEvent("'id' must be a non-empty string of at most 128 characters")
        if not isinstance(time, str):
            raise InvalidEvent("'time' must be a string")
        fields: dict[str, Any] = {name: data.get(name) for name in _DATA_FIELDS}
        for required in ("storage", "kind", "key", "action"):
            if not isinstance(fields[required], str) or not fields[required]:
                raise InvalidEvent(f"data.{required} must be a non-empty string")
        for optional in _OPTIONAL_TEXT:
            value = fields[optional]
            if value is not None and (value.__class__ is not str or len(value) > MAX_TEXT_BYTES):
                if not isinstance(value, str):
                    raise InvalidEvent(f"data.{optional} must be a string or null")
                check_text(value, f"data.{optional}")
        size = fields["size"]
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise InvalidEvent("data.size must be a non-negative integer or null")
        if fields["kind"] not in ("s3", "dcache"):
            raise InvalidEvent(f"data.kind must be 's3' or 'dcache', got {fields['kind'][:40]!r}")
        check_storage_id(fields["storage"])
        check_key(fields["key"], "data.key")
        check_text(fields["action"], "data.action")
        if fields["kind"] == "s3":
            if not isinstance(fields["bucket"], str):
                raise InvalidEvent("data.bucket must be a string for an S3 event")
            check_bucket(fields["bucket"])
        elif fields["bucket"] is not None:
            raise InvalidEvent("data.bucket must be null for a dCache event")
        if fields["producer"] is None:
            fields["producer"] = STORAGE_PRODUCER
        if fields["received_at"] is not None:
            fields["received_at"] = normalize_time(fields["received_at"], "data.received_at")
        return cls(id=event_id, type=kind, time=normalize_time(time, "'time'"), **fields)

    @classmethod
    def from_json(cls, payload: bytes) -> StorageEvent:
        try:
            return cls.from_cloudevent(orjson.loads(payload))
        except orjson.JSONDecodeError as err:
            raise InvalidEvent(f"not JSON: {err}") from err


_DATA_FIELDS = tuple(name for name in StorageEvent.__dataclass_fields__ if name not in ("id", "type", "time"))
_OPTIONAL_TEXT = ("etag", "version_id", "sequencer", "principal", "content_type", "producer", "received_at")
