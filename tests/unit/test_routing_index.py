"""The routing index: fixture events reach exactly the expected services; the trie agrees with a full scan;
invocation ids are deterministic."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oscar_stream.core.events import CREATED, REMOVED, StorageEvent
from oscar_stream.core.invocation import Invocation
from oscar_stream.ingest.sse import SseParser
from oscar_stream.normalize.dcache_events import SseContext, parse_dcache_message
from oscar_stream.normalize.outcome import ParseError
from oscar_stream.normalize.s3_records import parse_s3_notification
from oscar_stream.route.files import load_routing_files
from oscar_stream.route.index import RoutingIndex
from oscar_stream.route.model import InputSpec, ServiceSpec
from tests.support.paths import EVENTS, FDL

TABLE = """\
version: oscar-stream/v1
services:
  - {name: waveforms, image: i, script_inline: "true",
     input: [{storage_provider: minio, path: seismic/stations, suffix: [.mseed]}]}
  - {name: waveform-cleanup, image: i, script_inline: "true",
     input: [{storage_provider: minio, path: seismic, events: [removed]}]}
  - {name: scans, image: i, script_inline: "true",
     input: [{storage_provider: minio, path: herbarium/scans, glob: ["*/*.tif"]}]}
  - {name: movies, image: i, script_inline: "true",
     input: [{storage_provider: minio, path: cryo-em/movies, prefix: [grid-]}]}
  - {name: movies-other-prefix, image: i, script_inline: "true",
     input: [{storage_provider: minio, path: cryo-em/movies, prefix: [atlas-]}]}
  - {name: floats, image: i, script_inline: "true",
     input: [{storage_provider: s3.aws, path: ocean-floats}]}
  - {name: cells, image: i, script_inline: "true",
     input: [{storage_provider: minio, path: microscopy/in, suffix: [.png, .jpg]}]}
storage_providers:
  s3: {aws: {region: us-west-2}}
"""

EXPECTED = {
    ("minio-put.json", "minio.default", "url"): ["waveforms"],
    ("minio-delete.json", "minio.default", "url"): ["waveform-cleanup"],
    ("minio-put-encoded-key.json", "minio.default", "url"): ["scans"],
    ("minio-multipart.json", "minio.default", "url"): ["movies"],
    ("aws-s3-put.json", "s3.aws", "url"): ["floats"],
    ("aws-s3-put.json", "minio.default", "url"): [],  # same bucket name on another store: no match
    ("versitygw-put.json", "minio.default", "raw"): ["cells"],
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
    assert [name for e in events for name in _names(index, e)] == EXPECTED[(sample, storage, encoding)]


def test_dcache_stream_routes_complete_files_to_shot_summary() -> None:
    index = RoutingIndex(load_routing_files([FDL / "dcache-input.yaml"]).table.services)
    routed = []
    for message in SseParser().feed((EVENTS / "dcache-stream.txt").read_bytes() + b"\n\n"):
        try:
            outcome = parse_dcache_message(message.data.encode(), SseContext(
                message.event, message.id, "c", "/pnfs/facility/xfel/raw"), "webdav.dcache", "t")
        except ParseError:
            continue
        routed += [(e.key.rsplit("/", 1)[-1], [i.service for i in index.route(e)]) for e in outcome.events]
    assert routed == [("shot-0815.h5", ["shot-summary"]), ("shot-0816.h5.part", []), ("shot-0816.h5", ["shot-summary"])]


def test_two_stage_chain_routes_outputs_to_the_second_stage() -> None:
    index = RoutingIndex(load_routing_files([FDL / "two-stage.yaml"]).table.services)
    raw = _event("seismic/waveforms/ANMO.mseed")
    picks = _event("seismic/picks/ANMO.picks")
    assert _names(index, raw) == ["pick"]
    assert _names(index, picks) == ["locate"]
    assert _names(index, _event("seismic/waveforms/ANMO.txt")) == []


def test_invocation_id_depends_on_service_and_event_only() -> None:
    service = ServiceSpec(name="a", image="i", script="s", inputs=(InputSpec("m.d", "b"),))
    changed = ServiceSpec(name="a", image="i2", script="s", inputs=(InputSpec("m.d", "b"),))
    event = _event("bkt/x")
    first = Invocation.of(service.name, service.version, event)
    assert first.id == Invocation.of(changed.name, changed.version, event).id
    assert first.service_version != Invocation.of(changed.name, changed.version, event).service_version
    assert first.id != Invocation.of("b", service.version, event).id
    assert Invocation.from_json(first.to_json()) == first


def test_put_replaces_and_remove_forgets() -> None:
    index = RoutingIndex([ServiceSpec(name="a", image="i", script="s",
                                      inputs=(InputSpec("minio.default", "b/x"),))])
    index.put(ServiceSpec(name="a", image="i", script="s", inputs=(InputSpec("minio.default", "b/y"),)))
    assert _names(index, _event("b/x/f")) == [] and _names(index, _event("b/y/f")) == ["a"]
    assert index.remove("a") and not index.remove("a")
    assert _names(index, _event("b/y/f")) == [] and len(index) == 0


def _names(index: RoutingIndex, event: StorageEvent) -> list[str]:
    return [invocation.service for invocation in index.route(event)]


def _event(path: str, storage: str = "minio.default", kind: str = CREATED) -> StorageEvent:
    bucket, _, key = path.partition("/")
    return StorageEvent(id="0" * 32, type=kind, time="2026-01-01T00:00:00.000Z",  # type: ignore[arg-type]
                        storage=storage, kind="s3", bucket=bucket, key=key, action="s3:ObjectCreated:Put")


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
    assert set(_names(RoutingIndex(services), event)) == _scan(services, event)

