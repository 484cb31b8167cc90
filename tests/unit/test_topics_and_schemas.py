"""Topic declarations load, and what the code produces matches each topic's declared JSON schema."""

from __future__ import annotations

import base64

import jsonschema
import orjson
import pytest

from oscar_stream.config import DcachePath, Settings, SourceSettings
from oscar_stream.core.deadletter import MAX_PAYLOAD_BYTES, deadletter_record
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.records import Origin
from oscar_stream.core.results import Result, StoredObject
from oscar_stream.kafka.clients import MAX_REQUEST_BYTES
from oscar_stream.kafka.topics_admin import desired_topics
from oscar_stream.normalize.s3_records import parse_s3_notification
from oscar_stream.route.model import InputSpec, ServiceSpec
from oscar_stream.topics import TopicFileError, load_topic_specs
from tests.support.paths import EVENTS, REPO


def _schema(name: str) -> dict[str, object]:
    schema = load_topic_specs(REPO / "topics")[name].schema_
    assert schema is not None
    return schema


def test_every_topic_is_declared_once_per_source() -> None:
    settings = Settings(sources=[
        SourceSettings(id="minio.default"),
        SourceSettings(id="webdav.dcache", kind="dcache", url="https://d:3880", subscriptions=[DcachePath(path="/d")]),
    ])
    names = sorted(desired_topics(settings))
    assert names == ["oscar.deadletter", "oscar.events", "oscar.invocations", "oscar.jobs", "oscar.raw.minio.default",
                     "oscar.raw.webdav.dcache", "oscar.results", "oscar.services", "oscar.warm"]
    assert desired_topics(settings)["oscar.services"].config["cleanup.policy"] == "compact"


def test_canonical_invocation_result_and_deadletter_records_match_their_schemas() -> None:
    [event] = parse_s3_notification((EVENTS / "minio-put.json").read_bytes(), "minio.default",
                                    received_at="2026-01-01T00:00:00.000Z").events
    jsonschema.validate(orjson.loads(event.to_json()), _schema("events"))
    service = ServiceSpec(name="s", image="i", script="x",
                                               inputs=(InputSpec("minio.default", "seismic"),))
    invocation = Invocation.of(service.name, service.version, event)
    jsonschema.validate(orjson.loads(invocation.to_json()), _schema("invocations"))
    result = Result(invocation.id, "s", event.id, "succeeded", "local",
                    outputs=[StoredObject("minio.default", "b", "k", 1, "e")])
    jsonschema.validate(orjson.loads(result.to_json()), _schema("results"))
    jsonschema.validate(orjson.loads(deadletter_record("normalize", "minio.default", "not JSON", b"\x00")),
                        _schema("deadletter"))


def test_a_broken_topic_file_names_the_file_and_field(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "bad.yaml").write_text("name: x\ndescription: d\npartitions: 0\nkey: k\n")
    with pytest.raises(TopicFileError, match=r"bad\.yaml: partitions: Input should be greater than or equal to 1"):
        load_topic_specs(folder)


def test_a_huge_unparseable_payload_still_fits_one_kafka_request_and_points_to_the_original() -> None:
    payload = b"\xff" * (2 * MAX_REQUEST_BYTES)
    value = deadletter_record("normalize", "minio.default", "not JSON", payload, Origin("oscar.raw.m", 3, 17))
    assert len(value) < MAX_REQUEST_BYTES
    record = orjson.loads(value)
    jsonschema.validate(record, _schema("deadletter"))
    assert record["payload_truncated"] is True and record["payload_bytes"] == len(payload)
    assert base64.b64decode(record["payload_b64"]) == payload[:MAX_PAYLOAD_BYTES]
    assert record["origin"] == {"topic": "oscar.raw.m", "partition": 3, "offset": 17}
    small = orjson.loads(deadletter_record("route", "oscar.events", "invalid canonical event: x", b"{}"))
    assert small["payload_truncated"] is False and base64.b64decode(small["payload_b64"]) == b"{}"
