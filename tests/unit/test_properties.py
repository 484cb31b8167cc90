"""Property tests: arbitrary bytes and arbitrary JSON never raise anything but the typed parse error."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oscar_stream.core.events import StorageEvent
from oscar_stream.normalize.dcache_events import SseContext, parse_dcache_message
from oscar_stream.normalize.outcome import ParseError
from oscar_stream.normalize.s3_records import KeyEncoding, parse_s3_notification

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
field_names = st.sampled_from(["Records", "eventName", "eventTime", "s3", "bucket", "object", "name", "key",
                               "size", "eTag", "versionId", "sequencer", "userIdentity", "principalId", "Event"])
s3_like = st.recursive(
    st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=12) | st.just("s3:ObjectCreated:Put")
    | st.just("2026-01-01T00:00:00Z"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(field_names, inner, max_size=6),
    max_leaves=30,
)


def _parse_all(payload: bytes) -> None:
    encodings: tuple[KeyEncoding, ...] = ("url", "raw")
    for encoding in encodings:
        try:
            outcome = parse_s3_notification(payload, "minio.default", encoding)
        except ParseError:
            continue
        for event in outcome.events:
            assert StorageEvent.from_json(event.to_json()) == event
    with contextlib.suppress(ParseError):
        parse_dcache_message(payload, SseContext("inotify", "1", "c", "/d"), "webdav.d", "2026-01-01T00:00:00Z")


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(payload: bytes) -> None:
    _parse_all(payload)


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    _parse_all(orjson.dumps(value))


@settings(max_examples=500)
@given(s3_like)
def test_s3_shaped_json(value: Any) -> None:
    _parse_all(orjson.dumps({"Records": [value]} if not isinstance(value, dict) else value))


def test_integers_beyond_64_bits_are_rejected_with_a_reason() -> None:
    payload = (b'{"Records":[{"eventName":"s3:ObjectCreated:Put","eventTime":"2026-01-01T00:00:00Z",'
               b'"s3":{"bucket":{"name":"bkt"},"object":{"key":"k","size":1' + b"0" * 30 + b"}}}]}")
    with pytest.raises(ParseError, match=r"s3\.object\.size must be a non-negative integer"):
        parse_s3_notification(payload, "minio.default")
