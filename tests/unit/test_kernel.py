"""The kernel: times that cannot break a stage, the limits on what an event may carry, and invocations that
fail to parse with one kind of error only."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oscar_stream.core.errors import InvalidEvent, OscarStreamError
from oscar_stream.core.events import CREATED, MAX_KEY_BYTES, StorageEvent, check_bucket, check_key
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.times import age_seconds, normalize_time, now_rfc3339, parse_time, rfc3339, rfc3339_millis

EVENT = StorageEvent(id="f" * 32, type=CREATED, time="2026-10-02T03:14:15.926Z", storage="minio.default",
                     kind="s3", bucket="seismic", key="stations/ANMO/day.mseed", action="s3:ObjectCreated:Put")


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "yesterday", "",
                                  "2026-13-01T00:00:00Z", "2026-01-01T25:00:00Z"])
def test_times_outside_utc_or_not_times_are_invalid_events(text: str) -> None:
    with pytest.raises(InvalidEvent, match="not an ISO 8601 time"):
        normalize_time(text, "eventTime")


def test_times_are_written_in_one_form() -> None:
    assert normalize_time("2026-10-02T05:14:15.9+02:00") == "2026-10-02T03:14:15.900Z"
    assert normalize_time("2026-10-02T03:14:15") == "2026-10-02T03:14:15.000Z"  # naive: UTC
    assert normalize_time("2026-10-02T03:14:15.926Z") == "2026-10-02T03:14:15.926Z"
    assert parse_time("2026-10-02T03:14:15Z").tzinfo is not None
    assert age_seconds("not a time") == 0.0


@given(st.integers(0, 253402300799999))
def test_milliseconds_are_written_exactly(millis: int) -> None:
    exact = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    assert rfc3339_millis(millis) == rfc3339(exact)


def test_the_current_time_is_current_and_moves() -> None:
    first = parse_time(now_rfc3339())
    assert abs((first - datetime.now(UTC)).total_seconds()) < 1
    time.sleep(0.003)
    assert parse_time(now_rfc3339()) > first


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_time_parsing_raises_only_invalid_event(text: str) -> None:
    with contextlib.suppress(InvalidEvent):
        normalize_time(text)


@pytest.mark.parametrize(("key", "reason"), [
    ("", "is empty"),
    ("a" * (MAX_KEY_BYTES + 1), f"the limit is {MAX_KEY_BYTES}"),
    ("ñ" * (MAX_KEY_BYTES // 2 + 1), "bytes long"),  # the limit is on UTF-8 bytes, as in S3
    ("in/../etc/passwd", "'..' path segment"),
    ("in/./x", "'..' path segment"),
    ("in/..", "'..' path segment"),
    ("in/bad\x00name", "control characters"),
    ("in/bad\nname", "control characters"),
])
def test_object_keys_that_a_stage_or_a_job_could_not_handle(key: str, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        check_key(key)


def test_ordinary_keys_pass() -> None:
    for key in ("a", "in/box 12/Quercus ilex+001 señal.tif", "a//b", "..hidden/file..", "a" * MAX_KEY_BYTES):
        assert check_key(key) == key


@pytest.mark.parametrize("bucket", ["ab", "UPPER", "-start", "end-", "a" * 64, "has space", "dots/slash"])
def test_bucket_names_outside_s3_rules(bucket: str) -> None:
    with pytest.raises(InvalidEvent, match="not a valid S3 bucket name"):
        check_bucket(bucket)


def test_canonical_events_from_kafka_are_checked_field_by_field() -> None:
    envelope = orjson.loads(EVENT.to_json())
    assert StorageEvent.from_cloudevent(envelope) == EVENT
    for path, value, reason in [
        (("data", "key"), "x/../y", "'..' path segment"),
        (("data", "bucket"), "NO", "bucket name"),
        (("data", "storage"), "nodot", "storage id"),
        (("time",), "0001-01-01T00:00:00+01:00", "not an ISO 8601 time"),
        (("data", "size"), -1, "data.size"),
        (("data", "etag"), "e" * 2000, "the limit is 1024"),
        (("id",), "", "'id' must be"),
    ]:
        broken = orjson.loads(EVENT.to_json())
        target = broken
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        with pytest.raises(InvalidEvent, match=reason):
            StorageEvent.from_cloudevent(broken)


def test_invocations_fail_with_invalid_event_only() -> None:
    good = Invocation.of("pick", "v1", EVENT)
    assert Invocation.from_json(good.to_json()) == good
    for payload in (b"", b"[]", b"{}", b'{"id": "x"}', b'{"id": "' + b"a" * 32 + b'", "service": 3}',
                    orjson.dumps({**orjson.loads(good.to_json()), "event": None}), b"\xff\xfe"):
        with pytest.raises(InvalidEvent):
            Invocation.from_json(payload)
    assert issubclass(InvalidEvent, OscarStreamError)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12))
def test_any_json_is_an_invocation_or_an_invalid_event(document: object) -> None:
    with contextlib.suppress(InvalidEvent):
        Invocation.from_json(orjson.dumps(document))
