"""FDL files with what real OSCAR files contain (tests/data/fdl/oscar-features, written for these tests): every
one validates, says what will differ, and routes as OSCAR would route it."""

from __future__ import annotations

import pytest

from oscar_stream.config import Settings
from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.route.clusters import localize
from oscar_stream.route.files import LoadedTable, load_routing_files
from oscar_stream.route.index import RoutingIndex
from oscar_stream.worker.publish import AmbiguousServices, publication_keys
from tests.support.paths import FDL

FEATURES = FDL / "oscar-features"


def _load(name: str) -> LoadedTable:
    return load_routing_files([FEATURES / name])


def _warnings(loaded: LoadedTable) -> list[str]:
    return [str(n) for n in loaded.notes if n.level == "warning"]


def _event(path: str, storage: str = "minio.default") -> StorageEvent:
    bucket, _, key = path.partition("/")
    return StorageEvent(id="1" * 32, type=CREATED, time="2026-11-30T10:00:00.000Z", storage=storage, kind="s3",
                        bucket=bucket, key=key, action="s3:ObjectCreated:Put")


@pytest.mark.parametrize("name", sorted(p.name for p in FEATURES.glob("*.yaml")))
def test_every_file_validates(name: str) -> None:
    assert _load(name).table.services


def test_tabs_after_values_and_crlf_line_ends() -> None:
    loaded = _load("tabs-and-crlf.yaml")
    [service] = loaded.table.services
    assert (service.log_level, service.memory) == ("CRITICAL", "512Mi")
    assert loaded.origins["tabbed@campus"][1] == 4  # lines are still counted right


def test_new_service_fields_are_accepted_and_each_says_what_will_differ() -> None:
    loaded = _load("new-service-fields.yaml")
    [service] = loaded.table.services
    warnings = " | ".join(_warnings(loaded))
    for expected in ("'volume' is accepted but not implemented", "'kserve' is accepted but not implemented",
                     "'interlink_node_name' is accepted but not implemented: the job runs on this cluster",
                     "the input is downloaded anyway", "'vo' is accepted but not implemented",
                     "'isolation_level' is accepted but not implemented"):
        assert expected in warnings
    notes = [str(n) for n in loaded.notes if n.level == "note"]
    assert any("OSCAR ignores prefix/suffix on inputs" in n for n in notes)
    assert not any("allowed_users" in w for w in _warnings(loaded))  # empty: asks for nothing
    assert service.outputs[0].storage == "s3.archive"  # a provider declared inside the service body
    index = RoutingIndex([service])
    assert [i.service for i in index.route(_event("frames/in/cam-7.jpg"))] == ["inference"]
    assert index.route(_event("frames/in/other.jpg")) == []  # the prefix is honoured


def test_one_name_on_two_clusters_aws_functions_and_a_blank_cluster_endpoint() -> None:
    loaded = _load("replicas-and-clusters.yaml")
    assert sorted(s.qualified for s in loaded.table.services) == ["fish-counter@harbour", "fish-counter@offshore"]
    assert [c.endpoint for c in loaded.table.clusters] == [None]
    assert any("cluster 'offshore' has no endpoint yet" in w for w in _warnings(loaded))
    assert any("'replicas' is accepted but not implemented: jobs are not delegated" in w for w in _warnings(loaded))
    notes = [str(n) for n in loaded.notes]
    assert any("SCAR's functions (AWS Lambda) are not run by oscar-stream" in n for n in notes)
    assert any("clusters.offshore.memory: 'memory' is not known to oscar-stream; ignored" in n for n in notes)
    # Seen from the harbour cluster: its own copy takes its own store's events; the offshore copy watches the
    # offshore store (minio.offshore here), as OSCAR routes each cluster's notifications to its own services.
    harbour, offshore = loaded.table.services
    index = RoutingIndex([harbour, localize(offshore, "harbour")])
    assert [i.service for i in index.route(_event("cameras/in/a.jpg"))] == ["fish-counter"]
    assert [i.service for i in index.route(_event("cameras/in/a.jpg", "minio.offshore"))] == [
        "fish-counter@offshore"]


def test_an_input_on_rucio_never_triggers_and_says_so() -> None:
    loaded = _load("rucio-input.yaml")
    [service] = loaded.table.services
    assert service.inputs == ()
    assert any("this input never triggers the service" in w for w in _warnings(loaded))


def test_one_name_on_two_clusters_is_published_under_two_keys_once_the_cluster_is_known() -> None:
    services = _load("replicas-and-clusters.yaml").table.services
    with pytest.raises(AmbiguousServices, match="set cluster_id"):
        publication_keys(Settings(), services)
    keys = [key for key, _ in publication_keys(Settings(cluster_id="harbour"), services)]
    assert keys == ["fish-counter", "fish-counter@offshore"]
