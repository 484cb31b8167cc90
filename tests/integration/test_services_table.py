"""A worker's services table on the real broker: a service written by another process just before we are told
about it (an API call, then an invocation of it) is there once ``caught_up`` returns, every time."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from oscar_stream.config import Settings
from oscar_stream.health import Component
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.route.model import InputSpec, ServiceSpec
from oscar_stream.topics import TopicNames
from oscar_stream.worker.publish import apply_services
from oscar_stream.worker.services_table import ServicesTable

pytestmark = pytest.mark.stack


def _service(version: int) -> ServiceSpec:
    return ServiceSpec(name="grayify", image="busybox", script=f"#!/bin/sh\necho {version}\n",
                       inputs=(InputSpec("minio.default", "grayify/in"),))


def _script(table: ServicesTable) -> str | None:
    current = table.index.get("grayify")
    return current.script if current is not None else None


async def test_every_change_written_before_caught_up_is_applied_when_it_returns(settings: Settings) -> None:
    await apply_topics(settings)
    table = ServicesTable(settings.kafka, TopicNames(settings.kafka.topic_prefix).services)
    health = Component("services")
    follower = asyncio.ensure_future(table.run(health))
    try:
        await asyncio.wait_for(table.ready.wait(), 30)
        assert health.state == "running"
        misses_without_waiting = 0
        for version in range(30):
            service = _service(version)
            await apply_services(settings, [service])
            misses_without_waiting += _script(table) != service.script
            await asyncio.wait_for(table.caught_up(), 10)
            assert _script(table) == service.script
        # the race exists: right after the write, the table usually has not read it yet
        assert misses_without_waiting > 0
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
