"""S3-format notifications (MinIO, AWS, versitygw) -> canonical events, on every sample of tests/data/events."""

from __future__ import annotations

import orjson
import pytest

from oscar_stream.core.events import CREATED, REMOVED, StorageEvent
from oscar_stream.normalize.outcome import ParseError
from oscar_stream.normalize.s3_records import parse_s3_notification
from tests.support.paths import EVENTS

EXPECTED = {
    # file: (encoding, type, bucket, decoded key)
    "minio-put.json": ("url", CREATED, "seismic", "stations/ANMO/2026-10-02.mseed"),
    "minio-put-encoded-key.json": ("url", CREATED, "herbarium", "scans/box 12/Quercus ilex+001 señal.tif"),
    "minio-delete.json": ("url", REMOVED, "seismic", "stations/ANMO/2026-10-02.mseed"),
    "minio-multipart.json": ("url", CREATED, "cryo-em", "movies/grid-4/stack_0007.tiff"),
    "aws-s3-put.json": ("url", CREATED, "ocean-floats", "profiles/float 4903/cycle_101.nc"),
    "versitygw-put.json": ("raw", CREATED, "microscopy", "in/cell-01.png"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_decodes_to_expected_object(name: str) -> None:
    encoding, kind, bucket, key = EXPECTED[name]
    outcome = parse_s3_notification((EVENTS / name).read_bytes(), "minio.default", encoding)  # type: ignore[arg-type]
    assert outcome.rejects == [] and outcome.ignored is None
    [event] = outcome.events
    assert (event.type, event.bucket, event.key) == (kind, bucket, key)
    assert event.path == f"{bucket}/{key}"
    assert event.partition_key == f"minio.default/{bucket}/{key}".encode()


def test_minio_put_fields() -> None:
    [event] = parse_s3_notification((EVENTS / "minio-put.json").read_bytes(), "minio.default").events
    assert event.size == 524288
    assert event.etag == "0c8f3e1a7d2b4c6e9f1a3b5d7e9c2a4f"
    assert event.sequencer == "1879AB01CE0F1A2B"
    assert event.principal == "station-sync"
    assert event.content_type == "application/vnd.fdsn.mseed"
    assert event.action == "s3:ObjectCreated:Put"
    assert event.time == "2026-10-02T03:14:15.926Z"


def test_version_id_and_plus_decoding() -> None:
    [event] = parse_s3_notification((EVENTS / "minio-put-encoded-key.json").read_bytes(), "minio.default").events
    assert event.version_id == "b81c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
    assert "ilex+001" in event.key and "box 12" in event.key  # '+' is a space, '%2B' a plus


def test_delete_has_no_size_or_etag() -> None:
    [event] = parse_s3_notification((EVENTS / "minio-delete.json").read_bytes(), "minio.default").events
    assert event.type == REMOVED and event.size is None and event.etag is None


def test_multipart_size_and_etag() -> None:
    [event] = parse_s3_notification((EVENTS / "minio-multipart.json").read_bytes(), "minio.default").events
    assert event.size == 3 * 1024**3
    assert event.etag == "4b9e0d2c7a1f3e5d8c6b4a2f0e1d3c5b-384"
    assert event.action == "s3:ObjectCreated:CompleteMultipartUpload"


def test_aws_event_name_gets_prefix_and_versitygw_quirks() -> None:
    [aws] = parse_s3_notification((EVENTS / "aws-s3-put.json").read_bytes(), "s3.aws").events
    assert aws.action == "s3:ObjectCreated:Put" and aws.principal == "AWS:AIDAFLOATSYNCEXAMPLE"
    [vgw] = parse_s3_notification((EVENTS / "versitygw-put.json").read_bytes(), "minio.default", "raw").events
    assert vgw.etag == "8d777f385d3dfec8815d20f7496026dc"  # quotes removed
    assert vgw.principal == "labuser"  # capitalised PrincipalId
    assert vgw.version_id is None


@pytest.mark.parametrize(("arn", "key"), [("arn:aws:s3:::/microscopy/in/cell-01.png", "in/cell-01.png"),
                                          ("arn:aws:s3:::microscopy/in/cell-01.png", "in/cell-01.png"),
                                          ("arn:aws:s3:::/microscopy/cell-01.png", "cell-01.png")])
def test_versitygw_names_from_a_reused_buffer_give_way_to_its_arn(arn: str, key: str) -> None:
    doc = orjson.loads((EVENTS / "versitygw-put.json").read_bytes())
    bucket = doc["Records"][0]["s3"]["bucket"]
    bucket["arn"] = arn
    bucket["name"] = "oscar-stre"  # what versitygw 1.8 sent for a bucket "bench-warm" under concurrent uploads
    doc["Records"][0]["s3"]["object"]["key"] = "x" * len(key) if "/" not in key else key
    [event] = parse_s3_notification(orjson.dumps(doc), "minio.default", "raw").events
    assert (event.bucket, event.key) == ("microscopy", key)


def test_a_bucket_arn_without_a_path_changes_nothing() -> None:
    [event] = parse_s3_notification((EVENTS / "minio-put.json").read_bytes(), "minio.default").events
    assert (event.bucket, event.key) == ("seismic", "stations/ANMO/2026-10-02.mseed")


def test_test_event_is_a_non_event() -> None:
    outcome = parse_s3_notification((EVENTS / "aws-s3-testevent.json").read_bytes(), "s3.aws")
    assert outcome.events == [] and outcome.rejects == []
    assert outcome.ignored is not None and "TestEvent" in outcome.ignored


@pytest.mark.parametrize(("name", "reason"), [
    ("binary.bin", "not JSON"),
    ("truncated.json", "not JSON"),
    ("top-level-array.json", "expected a JSON object"),
    ("empty-records.json", "'Records' is empty"),
    ("wrong-types.json", "s3.bucket.name must be a string, got int"),
])
def test_malformed_samples_raise_typed_error_with_reason(name: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_s3_notification((EVENTS / "malformed" / name).read_bytes(), "minio.default")


def _record(key: str) -> dict[str, object]:
    return {"eventName": "s3:ObjectCreated:Put", "eventTime": "2026-01-01T00:00:00Z",
            "s3": {"bucket": {"name": "bkt"}, "object": {"key": key, "eTag": "e1"}}}


def test_several_records_give_several_events_and_bad_ones_are_rejected_alone() -> None:
    payload = orjson.dumps({"Records": [_record("a"), {"eventName": 3}, _record("c")]})
    outcome = parse_s3_notification(payload, "minio.default")
    assert [e.key for e in outcome.events] == ["a", "c"]
    assert len(outcome.rejects) == 1 and outcome.rejects[0].startswith("Records[1]: eventName must be a string")


def test_identity_is_stable_and_ignores_delivery_details() -> None:
    first = parse_s3_notification((EVENTS / "minio-put.json").read_bytes(), "minio.default", received_at="A")
    again = parse_s3_notification((EVENTS / "minio-put.json").read_bytes(), "minio.default", received_at="B")
    assert first.events[0].id == again.events[0].id
    other_store = parse_s3_notification((EVENTS / "minio-put.json").read_bytes(), "minio.other")
    assert other_store.events[0].id != first.events[0].id


def test_created_identity_ignores_sequencer_but_not_content() -> None:
    a = dict(_record("k"))
    b = orjson.loads(orjson.dumps(a))
    b["s3"]["object"]["sequencer"] = "FF"
    c = orjson.loads(orjson.dumps(a))
    c["s3"]["object"]["eTag"] = "e2"
    ids = [parse_s3_notification(orjson.dumps({"Records": [r]}), "m.x").events[0].id for r in (a, b, c)]
    assert ids[0] == ids[1] != ids[2]


def test_missing_event_time_falls_back_to_receive_time_but_bad_time_is_rejected() -> None:
    record = _record("k")
    del record["eventTime"]
    [event] = parse_s3_notification(orjson.dumps({"Records": [record]}), "m.x",
                                    received_at="2026-02-02T00:00:00.000Z").events
    assert event.time == "2026-02-02T00:00:00.000Z"
    record["eventTime"] = "yesterday"
    with pytest.raises(ParseError, match="not an ISO 8601 time"):
        parse_s3_notification(orjson.dumps({"Records": [record]}), "m.x")


def test_invalid_percent_escape_is_rejected() -> None:
    with pytest.raises(ParseError, match="Records\\[0\\]"):
        parse_s3_notification(orjson.dumps({"Records": [_record("bad%FFkey")]}), "m.x")


def test_cloudevent_round_trip() -> None:
    [event] = parse_s3_notification((EVENTS / "minio-put-encoded-key.json").read_bytes(), "minio.default",
                                    received_at="2026-09-14T17:46:00.000Z").events
    envelope = orjson.loads(event.to_json())
    assert envelope["specversion"] == "1.0"
    assert envelope["source"] == "/oscar-stream/storage/minio.default"
    assert envelope["subject"] == "herbarium/scans/box 12/Quercus ilex+001 señal.tif"
    assert StorageEvent.from_json(event.to_json()) == event
