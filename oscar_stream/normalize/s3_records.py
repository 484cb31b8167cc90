"""S3-format bucket notifications (MinIO, AWS, versitygw and other S3-compatible stores)."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import unquote_plus

import orjson

from oscar_stream.core.errors import InvalidEvent
from oscar_stream.core.events import (
    CREATED,
    OTHER,
    REMOVED,
    EventType,
    StorageEvent,
    check_bucket,
    check_key,
    check_text,
)
from oscar_stream.core.ids import created_object_id, identity_id, normalize_etag
from oscar_stream.core.times import normalize_time
from oscar_stream.normalize.outcome import ParseError, ParseOutcome

KeyEncoding = Literal["url", "raw"]
_ARN = "arn:aws:s3:::"


def _event_type(name: str) -> EventType:
    bare = name.removeprefix("s3:")
    if bare.startswith("ObjectCreated:"):
        return CREATED
    if bare.startswith("ObjectRemoved:"):
        return REMOVED
    return OTHER


def _text(value: Any, where: str, required: bool = False, limited: bool = True) -> str | None:
    if value is None or (value == "" and not required):
        if required:
            raise ParseError(f"{where} is missing")
        return None
    if not isinstance(value, str):
        raise ParseError(f"{where} must be a string, got {type(value).__name__}")
    if required and not value:
        raise ParseError(f"{where} is empty")
    return check_text(value, where) if limited else value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(f"{where} must be an object, got {type(value).__name__}")
    return value


def _size(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParseError(f"s3.object.size must be a non-negative integer, got {value!r}")
    return value


def _time(value: Any, received_at: str | None) -> str:
    if value is None and received_at is not None:
        return received_at  # some stores omit it; the time we received the notification is the best we have
    text = _text(value, "eventTime", required=True)
    assert text is not None
    return normalize_time(text, "eventTime")


def _principal(record: dict[str, Any]) -> str | None:
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        return None
    # versitygw writes "PrincipalId", everyone else "principalId".
    value = identity.get("principalId", identity.get("PrincipalId"))
    return check_text(value, "userIdentity.principalId") if isinstance(value, str) and value else None


def _from_path_arn(arn: Any, bucket: str, raw_key: str) -> tuple[str, str]:
    """versitygw writes the request's path into the bucket's ARN (``arn:aws:s3:::/<bucket>/<key>``; AWS and MinIO
    write ``arn:aws:s3:::<bucket>``, never with a ``/``). Its ``bucket.name``, and a key without ``/``, point into
    a request buffer the server reuses before the notification is sent, so under concurrent requests they can
    carry another request's bytes (seen with versitygw 1.8: ``oscar-stre`` for ``bench-warm``, and the event
    matched no service); the ARN is copied while the request runs. Where it names the object, it is believed."""
    if not isinstance(arn, str) or not arn.startswith(_ARN):
        return bucket, raw_key
    arn_bucket, _, arn_key = arn[len(_ARN):].removeprefix("/").partition("/")
    return (arn_bucket, arn_key) if arn_bucket and arn_key else (bucket, raw_key)


def parse_record(
    record: Any, storage: str, key_encoding: KeyEncoding, received_at: str | None = None
) -> StorageEvent:
    rec = _object(record, "record")
    name = _text(rec.get("eventName"), "eventName", required=True)
    assert name is not None
    s3 = _object(rec.get("s3"), "s3")
    bucket_doc = _object(s3.get("bucket"), "s3.bucket")
    bucket = _text(bucket_doc.get("name"), "s3.bucket.name", required=True)
    obj = _object(s3.get("object"), "s3.object")
    raw_key = _text(obj.get("key"), "s3.object.key", required=True, limited=False)  # checked once decoded
    assert raw_key is not None and bucket is not None
    bucket, raw_key = _from_path_arn(bucket_doc.get("arn"), bucket, raw_key)
    key = unquote_plus(raw_key, errors="strict") if key_encoding == "url" else raw_key
    check_bucket(bucket)
    check_key(key, "s3.object.key")
    etag = normalize_etag(_text(obj.get("eTag"), "s3.object.eTag"))
    version_id = _text(obj.get("versionId"), "s3.object.versionId")
    sequencer = _text(obj.get("sequencer"), "s3.object.sequencer")
    time = _time(rec.get("eventTime"), received_at)
    kind = _event_type(name)
    if kind == CREATED:
        identity = created_object_id(storage, bucket, key, version_id, etag, sequencer or time)
    else:
        identity = identity_id(name, storage, bucket, key, version_id, sequencer or time)
    content_type = _text(obj.get("contentType"), "s3.object.contentType")
    return StorageEvent(
        id=identity,
        type=kind,
        time=time,
        storage=storage,
        kind="s3",
        bucket=bucket,
        key=key,
        action=name if name.startswith("s3:") else f"s3:{name}",
        size=_size(obj.get("size")),
        etag=etag,
        version_id=version_id,
        sequencer=sequencer,
        principal=_principal(rec),
        content_type=content_type,
        received_at=received_at,
    )


def _is_test_event(doc: dict[str, Any]) -> bool:
    return isinstance(doc.get("Event"), str) and doc["Event"].endswith("TestEvent") and "Records" not in doc


def parse_s3_notification(
    payload: bytes, storage: str, key_encoding: KeyEncoding = "url", received_at: str | None = None
) -> ParseOutcome:
    """Every record of one notification message. Raises :class:`ParseError` only if nothing is usable."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        raise ParseError(f"not JSON: {err}") from err
    if not isinstance(doc, dict):
        raise ParseError(f"expected a JSON object with 'Records', got a JSON {type(doc).__name__}")
    if _is_test_event(doc):
        return ParseOutcome(ignored=f"test message ({doc['Event']}) sent when notifications were configured")
    records = doc.get("Records")
    if not isinstance(records, list):
        raise ParseError("no 'Records' list in the notification")
    if not records:
        raise ParseError("'Records' is empty: the notification carries no event")
    outcome = ParseOutcome()
    for index, record in enumerate(records):
        try:
            outcome.events.append(parse_record(record, storage, key_encoding, received_at))
        except (InvalidEvent, UnicodeDecodeError) as err:
            outcome.rejects.append(f"Records[{index}]: {err}")
    if not outcome.events:
        raise ParseError("; ".join(outcome.rejects))
    return outcome
