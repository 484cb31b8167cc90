"""Storage names across clusters (OSCAR's convention: minio.<cluster-id> is that cluster's own MinIO)."""

from __future__ import annotations

from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.ids import created_object_id
from oscar_stream.route.clusters import event_for_cluster, localize, translate_storage
from oscar_stream.route.index import RoutingIndex
from oscar_stream.route.model import InputSpec, ServiceSpec


def test_translate_storage_both_ways() -> None:
    assert translate_storage("minio.default", "edge", "cloud") == "minio.edge"
    assert translate_storage("minio.cloud", "edge", "cloud") == "minio.default"
    assert translate_storage("minio.other", "edge", "cloud") == "minio.other"
    assert translate_storage("webdav.dcache", "edge", "cloud") == "webdav.dcache"
    assert translate_storage("minio.default", "edge", "edge") == "minio.default"


def test_remote_service_is_indexed_under_local_names() -> None:
    detector = ServiceSpec(name="detector", image="i", script="s", cluster="cloud",
                           inputs=(InputSpec("minio.default", "inference/in"),))
    index = RoutingIndex([localize(detector, "edge")])
    on_cloud_storage = StorageEvent("0" * 32, CREATED, "t", "minio.cloud", "s3", "inference", "in/x.jpg", "put")
    on_edge_storage = StorageEvent("0" * 32, CREATED, "t", "minio.default", "s3", "inference", "in/x.jpg", "put")
    assert [i.service for i in index.route(on_cloud_storage)] == ["detector@cloud"]  # named where it runs
    assert index.route(on_edge_storage) == []
    assert localize(detector, "cloud") is detector


def test_forwarded_event_gets_the_id_the_remote_store_would_give() -> None:
    local = StorageEvent(created_object_id("minio.cloud", "inference", "in/x.jpg", None, "e", None), CREATED, "t",
                         "minio.cloud", "s3", "inference", "in/x.jpg", "put", etag="e")
    remote = event_for_cluster(local, "edge", "cloud")
    assert remote.storage == "minio.default"
    assert remote.id == created_object_id("minio.default", "inference", "in/x.jpg", None, "e", None)
