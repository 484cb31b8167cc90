"""``oscar-stream apply`` / ``services``: publish service definitions to the compacted services topic."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace

import orjson

from oscar_stream.config import Settings
from oscar_stream.core.errors import OscarStreamError
from oscar_stream.core.ids import random_nonce
from oscar_stream.kafka.clients import all_partitions, consumer, reliable_producer
from oscar_stream.route.clusters import service_key
from oscar_stream.route.model import ServiceSpec
from oscar_stream.topics import TopicNames


class AmbiguousServices(OscarStreamError):
    pass


async def current_services(settings: Settings, timeout_s: float = 30.0) -> dict[str, ServiceSpec]:
    """Every service currently in the services topic (all clusters), by the key it is published under."""
    topic = TopicNames(settings.kafka.topic_prefix).services
    reader = consumer(settings.kafka, group_id=None, enable_auto_commit=False)
    await asyncio.wait_for(reader.start(), timeout_s)
    records: dict[str, ServiceSpec] = {}
    try:
        partitions = await asyncio.wait_for(all_partitions(settings.kafka, topic), timeout_s)
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        ends = await reader.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        deadline = asyncio.get_running_loop().time() + timeout_s
        while remaining:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout_s}s")
            for tp, messages in (await reader.getmany(*remaining, timeout_ms=500)).items():
                for message in messages:
                    key = (message.key or b"").decode(errors="replace")
                    service = _parse(message.value) if message.value is not None else None
                    if service is None:
                        records.pop(key, None)
                    else:
                        records[key] = service
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await reader.stop()
    return records


def _parse(value: bytes) -> ServiceSpec | None:
    try:
        return ServiceSpec.from_record(orjson.loads(value))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def publication_keys(settings: Settings, services: Iterable[ServiceSpec]) -> list[tuple[str, ServiceSpec]]:
    """The key each service is published under (see route/clusters.py); refuses two services that would get
    the same key (the same name on two clusters, when the deployment does not know which cluster it is)."""
    keyed: dict[str, ServiceSpec] = {}
    for service in services:
        key = service_key(service, settings.cluster_id)
        if key in keyed:
            clusters = sorted(c or "(none)" for c in (keyed[key].cluster, service.cluster))
            raise AmbiguousServices(
                f"service {service.name!r} is declared for clusters {', '.join(clusters)}; set cluster_id in the "
                "configuration to the cluster this deployment is, so that it runs its own and forwards to the other")
        keyed[key] = service
    return list(keyed.items())


async def apply_services(settings: Settings, services: Iterable[ServiceSpec]) -> list[tuple[str, str]]:
    """Publish each service; returns (key, created|updated|unchanged)."""
    names = TopicNames(settings.kafka.topic_prefix)
    keyed = publication_keys(settings, services)
    existing = await current_services(settings)
    producer = reliable_producer(settings.kafka)
    await producer.start()
    report = []
    try:
        pending = []
        for key, service in keyed:
            old = existing.get(key)
            # the token's nonce is kept across updates (the service keeps its token), new for a new service
            service = replace(service, token_nonce=old.token_nonce if old and old.token_nonce else random_nonce())
            if old is not None and old.version == service.version:
                report.append((key, "unchanged"))
                continue
            record = orjson.dumps(service.to_record())
            pending.append(await producer.send(names.services, record, key=key.encode()))
            report.append((key, "created" if old is None else "updated"))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return report


async def delete_service(settings: Settings, name: str) -> bool:
    """Delete the service published under ``name`` (``name@cluster`` for another cluster's)."""
    names = TopicNames(settings.kafka.topic_prefix)
    if name not in await current_services(settings):
        return False
    producer = reliable_producer(settings.kafka)
    await producer.start()
    try:
        await producer.send_and_wait(names.services, None, key=name.encode())
    finally:
        await producer.stop()
    return True
