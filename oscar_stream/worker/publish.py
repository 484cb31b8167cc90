"""``oscar-stream apply`` / ``services``: publish service definitions to the compacted services topic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import orjson

from oscar_stream.config import Settings
from oscar_stream.kafka.clients import reliable_producer
from oscar_stream.route.model import ServiceSpec
from oscar_stream.topics import TopicNames
from oscar_stream.worker.services_table import ServicesTable


async def current_services(settings: Settings, timeout_s: float = 30.0) -> dict[str, ServiceSpec]:
    """Every service currently in the services topic (all clusters)."""
    names = TopicNames(settings.kafka.topic_prefix)
    table = ServicesTable(settings.kafka, names.services, local_cluster=None)
    reader = asyncio.ensure_future(table.run())
    try:
        await asyncio.wait_for(table.ready.wait(), timeout_s)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    return {s.name: s for s in table.index.services()}


async def apply_services(settings: Settings, services: Iterable[ServiceSpec]) -> list[tuple[str, str]]:
    """Publish each service; returns (name, created|updated|unchanged)."""
    names = TopicNames(settings.kafka.topic_prefix)
    existing = await current_services(settings)
    producer = reliable_producer(settings.kafka)
    await producer.start()
    report = []
    try:
        pending = []
        for service in services:
            old = existing.get(service.name)
            if old is not None and old.version == service.version:
                report.append((service.name, "unchanged"))
                continue
            record = orjson.dumps(service.to_record())
            pending.append(await producer.send(names.services, record, key=service.name.encode()))
            report.append((service.name, "created" if old is None else "updated"))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return report


async def delete_service(settings: Settings, name: str) -> bool:
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
