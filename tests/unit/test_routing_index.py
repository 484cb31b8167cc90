"""The routing index: fixture events reach exactly the expected services; the trie agrees with a full scan;
invocation ids are deterministic."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oscar_stream.ingest.sse import SseParser
from oscar_stream.normalize.canonical import CREATED, REMOVED, StorageEvent
from oscar_stream.normalize.dcache_events import SseContext, parse_dcache_message
from oscar_stream.normalize.outcome import ParseError
from oscar_stream.normalize.s3_records import parse_s3_notification
from oscar_stream.route.files import load_routing_files
from oscar_stream.route.index import RoutingIndex
from oscar_stream.route.model import InputSpec, Invocation, ServiceSpec
from tests.support.paths import EVENTS, FDL

TABLE = """\
version: oscar-stream/v1
services:
  - {name: frames, image: i, script_inline: "true",
     input: [{storage_provider: minio, path: telescope/raw, suffix: [.fits]}]}
  - {name: frame-cleanup, image: i, script_inline: "true",
     input: [{storage_provider: minio, path: telescope, events: [removed]}]}
  - {name: csv-stats, image: i, script_inline: "true",
     input: [{storage_provider: minio, path: field-data/in, glob: ["*/*.csv"]}]}
  - {name: reads, image: i, script_inline: "true",
     input: [{storage_provider: minio, path: genomes/incoming, prefix: [sample-]}]}
  - {name: reads-other-prefix, image: i, script_inline: "true",
     input: [{storage_provider: minio, path: genomes/incoming, prefix: [control-]}]}
  - {name: climate, image: i, script_inline: "true",
     input: [{storage_provider: s3.aws, path: climate-runs}]}
  - {name: images, image: i, script_inline: "true",
     input: [{storage_provider: minio, path: images/in, suffix: [.png, .jpg]}]}
storage_providers:
  s3: {aws: {region: eu-west-1}}
"""

EXPECTED = {
    ("minio-put.json", "minio.default", "url"): ["frames"],
    ("minio-delete.json", "minio.default", "url"): ["frame-cleanup"],
    ("minio-put-encoded-key.json", "minio.default", "url"): ["csv-stats"],
    ("minio-multipart.json", "minio.default", "url"): ["reads"],
    ("aws-s3-put.json", "s3.aws", "url"): ["climate"],
    ("aws-s3-put.json", "minio.default", "url"): [],  # same bucket name on another store: no match
    ("versitygw-put.json", "minio.default", "raw"): ["images"],
}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> RoutingIndex:
    file = tmp_path_factory.mktemp("table") / "table.yaml"
    file.write_text(TABLE)
    return RoutingIndex(load_routing_files([file]).table.services)


@pytest.mark.parametrize(("sample", "storage", "encoding"), sorted(EXPECTED))
def test_fixture_events_route_to_expected_services(index: RoutingIndex, sample: str, storage: str,
                                                   encoding: str) -> None:
    events = parse_s3_notification((EVENTS / sample).read_bytes(), storage, encoding).events  # type: ignore[arg-type]
    assert [s.name for e in events for s in index.match(e)] == EXPECTED[(sample, storage, encoding)]


def test_dcache_stream_routes_to_hdf5_summary() -> None:
    index = RoutingIndex(load_routing_files([FDL / "dcache-input.yaml"]).table.services)
    routed = []
    for message in SseParser().feed((EVENTS / "dcache-stream.txt").read_bytes() + b"\n\n"):
        try:
            outcome = parse_dcache_message(message.data.encode(), SseContext(
                message.event, message.id, "c", "/data/beamline-7/incoming"), "webdav.dcache", "t")
        except ParseError:
            continue
        routed += [(e.key.rsplit("/", 1)[-1], [i.service for i in index.route(e)]) for e in outcome.events]
    assert routed == [("run-2231.h5", ["hdf5-summary"]), ("run-2232.h5", ["hdf5-summary"])]


def test_two_stage_chain_routes_outputs_to_the_second_stage() -> None:
    index = RoutingIndex(load_routing_files([FDL / "two-stage.yaml"]).table.services)
    raw = _event("survey/raw/m31.fits")
    detection = _event("survey/detections/m31.tsv")
    assert [s.name for s in index.match(raw)] == ["detect"]
    assert [s.name for s in index.match(detection)] == ["thumbnail"]
    assert index.match(_event("survey/raw/m31.txt")) == []


def test_invocation_id_depends_on_service_and_event_only() -> None:
    service = ServiceSpec(name="a", image="i", script="s", inputs=(InputSpec("m.d", "b"),))
    changed = ServiceSpec(name="a", image="i2", script="s", inputs=(InputSpec("m.d", "b"),))
    event = _event("b/x")
    first = Invocation.create(service, event)
    assert first.id == Invocation.create(changed, event).id
    assert first.service_version != Invocation.create(changed, event).service_version
    assert first.id != Invocation.create(ServiceSpec(name="b", image="i", script="s"), event).id
    assert Invocation.from_json(first.to_json()) == first


def test_put_replaces_and_remove_forgets() -> None:
    index = RoutingIndex([ServiceSpec(name="a", image="i", script="s",
                                      inputs=(InputSpec("minio.default", "b/x"),))])
    index.put(ServiceSpec(name="a", image="i", script="s", inputs=(InputSpec("minio.default", "b/y"),)))
    assert index.match(_event("b/x/f")) == [] and [s.name for s in index.match(_event("b/y/f"))] == ["a"]
    assert index.remove("a") and not index.remove("a")
    assert index.match(_event("b/y/f")) == [] and len(index) == 0


def _event(path: str, storage: str = "minio.default", kind: str = CREATED) -> StorageEvent:
    bucket, _, key = path.partition("/")
    return StorageEvent(id="0" * 32, type=kind, time="t", storage=storage, kind="s3", bucket=bucket,  # type: ignore[arg-type]
                        key=key, action="s3:ObjectCreated:Put")


segments = st.sampled_from(["a", "b", "c", "raw", "x.fits"])
inputs = st.builds(
    lambda storage, parts, prefixes, suffixes, removed: InputSpec(
        storage, "/".join(parts), tuple(prefixes), tuple(suffixes),
        events=frozenset({CREATED, REMOVED} if removed else {CREATED})),
    st.sampled_from(["m.d", "s3.x"]), st.lists(segments, min_size=1, max_size=3),
    st.lists(st.sampled_from(["a", "x", "r"]), max_size=2), st.lists(st.sampled_from([".fits", "c", "b"]), max_size=2),
    st.booleans(),
)


def _scan(services: list[ServiceSpec], event: StorageEvent) -> set[str]:
    """The obvious reference: look at every input of every service."""
    found = set()
    for service in services:
        for inp in service.inputs:
            prefix = inp.path + "/"
            if inp.storage == event.storage and event.path.startswith(prefix) and inp.matches(event):
                found.add(service.name)
    return found


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(inputs, min_size=1, max_size=2), max_size=8),
       st.sampled_from(["m.d", "s3.x"]), st.lists(segments, min_size=2, max_size=5), st.booleans())
def test_index_agrees_with_a_full_scan(specs: list[list[InputSpec]], storage: str, parts: list[str],
                                       removed: bool) -> None:
    services = [ServiceSpec(name=f"s{i}", image="i", script="s", inputs=tuple(ins)) for i, ins in enumerate(specs)]
    event = _event("/".join(parts), storage, REMOVED if removed else CREATED)
    assert {s.name for s in RoutingIndex(services).match(event)} == _scan(services, event)

