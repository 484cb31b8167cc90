"""Cross-cluster pipelines: name storages as another cluster sees them.

FDL files name storages from the point of view of the cluster a service lives on: ``minio`` is that
cluster's own MinIO, ``minio.<cluster-id>`` another cluster's (OSCAR's convention). A service of a remote
cluster R is indexed here with its inputs translated to local names, so a local event that it wants is found;
the event is then forwarded to R with its storage translated to R's names (and its id derived again, so it
equals the id R's own store notification of that object gets).
"""

from __future__ import annotations

from dataclasses import replace

from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.ids import created_object_id, identity_id
from oscar_stream.route.model import ServiceSpec

_DEFAULT = "minio.default"


def translate_storage(storage: str, source_cluster: str, target_cluster: str) -> str:
    """``storage`` as named on ``source_cluster`` -> the same storage as named on ``target_cluster``."""
    if source_cluster == target_cluster:
        return storage
    if storage == _DEFAULT:
        return f"minio.{source_cluster}"
    if storage == f"minio.{target_cluster}":
        return _DEFAULT
    return storage


def is_local(service: ServiceSpec, local_cluster: str | None) -> bool:
    """Whether this deployment runs ``service`` (without a cluster id of its own, it runs every service)."""
    return local_cluster is None or service.cluster in (None, local_cluster)


def service_key(service: ServiceSpec, local_cluster: str | None) -> str:
    """The name a deployment knows a service by: its own services by their name, another cluster's as
    ``name@cluster`` (the same name may run on several clusters: OSCAR's replicas)."""
    return service.name if is_local(service, local_cluster) else service.qualified


def localize(service: ServiceSpec, local_cluster: str) -> ServiceSpec:
    """A remote service as this cluster sees it: named ``name@cluster``, with its inputs named as this cluster
    names them (outputs are the remote's business)."""
    if is_local(service, local_cluster):
        return service
    assert service.cluster is not None
    inputs = tuple(replace(i, storage=translate_storage(i.storage, service.cluster, local_cluster))
                   for i in service.inputs)
    return replace(service, name=service.qualified, inputs=inputs)


def event_for_cluster(event: StorageEvent, local_cluster: str, remote_cluster: str) -> StorageEvent:
    storage = translate_storage(event.storage, local_cluster, remote_cluster)
    if event.type == CREATED:
        new_id = created_object_id(storage, event.bucket, event.key, event.version_id, event.etag, event.time)
    else:
        new_id = identity_id("forwarded", event.id, remote_cluster)
    return replace(event, storage=storage, id=new_id)
