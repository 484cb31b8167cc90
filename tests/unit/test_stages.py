"""The pure stages, called directly: one raw record -> events or dead-letters (never an exception), one event
-> invocations keyed by id, the gateway's partition key, and bounded dead-letter reason labels."""

from __future__ import annotations

import base64

import orjson
import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st

from oscar_stream.config import SourceSettings
from oscar_stream.core.deadletter import reason_label
from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.records import H_RECEIVED_AT, Origin
from oscar_stream.ingest.gateway import media_type_of, partition_key
from oscar_stream.normalize.records import normalize_record
from oscar_stream.route.index import RoutingIndex
from oscar_stream.route.model import InputSpec, ServiceSpec
from oscar_stream.route.records import route_record
from oscar_stream.topics import TopicNames
from tests.support.paths import EVENTS

NAMES = TopicNames("t")
SOURCES = {"minio.default": SourceSettings(id="minio.default")}
ORIGIN = Origin("t.raw.minio.default", 2, 41)
PUT = (EVENTS / "minio-put.json").read_bytes()


def _notification(key: str, time: str = "2026-10-02T03:14:15.926Z") -> bytes:
    return orjson.dumps({"Records": [{"eventName": "s3:ObjectCreated:Put", "eventTime": time,
                                      "s3": {"bucket": {"name": "seismic"}, "object": {"key": key, "eTag": "e"}}}]})


def test_a_notification_becomes_an_event_keyed_by_its_object() -> None:
    out = normalize_record(NAMES, SOURCES, ORIGIN, PUT, [(H_RECEIVED_AT, b"2026-10-02T03:14:16.000Z")])
    [record] = out.records
    assert record.topic == "t.events" and record.key == b"minio.default/seismic/stations/ANMO/2026-10-02.mseed"
    assert out.events[0].received_at == "2026-10-02T03:14:16.000Z" and out.dead == [] and not out.ignored


@pytest.mark.parametrize(("payload", "reason"), [
    (_notification("a" * 5000), "bytes long; the limit is 1024"),
    (_notification("in/x", time="0001-01-01T00:00:00+05:00"), "not an ISO 8601 time"),
    (_notification("in/../x"), "'..' path segment"),
    (b"\x00\x01", "not JSON"),
])
def test_what_no_stage_could_handle_is_dead_lettered_with_the_reason_and_the_bytes(payload: bytes, reason: str
                                                                                  ) -> None:
    out = normalize_record(NAMES, SOURCES, ORIGIN, payload, None)
    [record] = out.records
    assert record.topic == "t.deadletter" and out.events == []
    [text] = out.dead
    assert reason in text
    doc = orjson.loads(record.value or b"")
    assert base64.b64decode(doc["payload_b64"]) == payload
    assert doc["origin"] == {"topic": ORIGIN.topic, "partition": 2, "offset": 41}


def test_a_received_at_header_that_is_not_a_time_is_replaced_not_trusted() -> None:
    out = normalize_record(NAMES, SOURCES, ORIGIN, PUT, [(H_RECEIVED_AT, b"0001-01-01T00:00:00+05:00")])
    assert out.events[0].received_at is not None and out.events[0].received_at.startswith("20")


def test_unknown_source_and_test_messages() -> None:
    unknown = normalize_record(NAMES, SOURCES, Origin("t.raw.minio.other", 0, 0), PUT, None)
    assert unknown.dead and unknown.dead[0].startswith("unknown source")
    ignored = normalize_record(NAMES, SOURCES, ORIGIN, (EVENTS / "aws-s3-testevent.json").read_bytes(), None)
    assert ignored.ignored and ignored.records == []


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=40)), max_size=4))
def test_normalize_never_raises_and_never_drops_a_record(payload: bytes, headers: list[tuple[str, bytes]]) -> None:
    out = normalize_record(NAMES, SOURCES, ORIGIN, payload, headers)
    assert out.records or out.ignored  # an event, a dead-letter, or a message that is not an event


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.sampled_from(["2026-10-02T03:14:15Z", "", "x", "9999-12-31T23:59:59-01:00"]))
def test_normalize_of_mutated_notifications(key: str, time: str) -> None:
    out = normalize_record(NAMES, SOURCES, ORIGIN, _notification(key, time), None)
    assert len(out.records) == 1 and len(out.events) + len(out.dead) == 1


INDEX = RoutingIndex([ServiceSpec(name=f"s{i}", image="i", script="s", inputs=(InputSpec("minio.default", "seismic"),))
                      for i in range(3)])


def test_route_keys_invocations_by_their_id_so_one_service_spreads_over_partitions() -> None:
    event = StorageEvent(id="a" * 32, type=CREATED, time="2026-10-02T03:14:15.926Z", storage="minio.default",
                         kind="s3", bucket="seismic", key="in/x", action="s3:ObjectCreated:Put")
    routed = route_record(NAMES, INDEX, Origin("t.events", 0, 0), event.to_json())
    assert routed.event == event and routed.dead is None
    values = [orjson.loads(r.value or b"") for r in routed.records]
    assert [v["service"] for v in values] == ["s0", "s1", "s2"]
    assert [r.key for r in routed.records] == [v["id"].encode() for v in values]
    assert len({r.key for r in routed.records}) == 3


def test_route_dead_letters_an_event_it_cannot_read() -> None:
    routed = route_record(NAMES, INDEX, Origin("t.events", 1, 7), b'{"specversion": "0.3"}')
    [record] = routed.records
    assert record.topic == "t.deadletter" and routed.dead is not None and "specversion" in routed.dead


def test_gateway_partition_key() -> None:
    assert partition_key(PUT) == b"seismic/stations/ANMO/2026-10-02.mseed"  # MinIO's top-level Key
    assert partition_key(_notification("in%2Fx")) == b"seismic/in%2Fx"
    assert partition_key(b"not json") is None and partition_key(b"[1]") is None
    assert partition_key(orjson.dumps({"Key": "b/" + "k" * 600_000})) is None  # too long to be a real object


@pytest.mark.parametrize("header", [
    "application/json", "Application/JSON; charset=utf-8", " text/plain ;charset=us-ascii", "multipart/form-data; "
    "boundary=x", "application/cloudevents+json", "text/json;", "application/x-www-form-urlencoded",
])
def test_gateway_media_type_is_what_aiohttp_parses(header: str) -> None:
    request = make_mocked_request("POST", "/webhook/s", headers={"Content-Type": header})
    assert media_type_of(header) == request.content_type


@pytest.mark.parametrize(("reason", "label"), [
    ("not JSON: unexpected character", "not_json"),
    ("Records[0]: eventName is missing", "records"),
    ("record too large: 2000000 bytes", "record_too_large"),
    ("internal error: KeyError: 'x'", "internal_error"),
    ("invalid invocation: invocation 'id' must be 32 hexadecimal digits", "invalid_invocation"),
    ("something nobody expected", "other"),
])
def test_reason_labels_are_a_small_fixed_set(reason: str, label: str) -> None:
    assert reason_label(reason) == label
