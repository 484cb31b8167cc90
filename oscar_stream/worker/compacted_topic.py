"""Following a compacted topic (services, jobs) from its start, forever, without a consumer group: every reader
sees every record, so each process keeps its own copy of the table and any replica can answer from it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from oscar_stream.config import KafkaSettings
from oscar_stream.health import Component
from oscar_stream.kafka.clients import all_partitions, consumer
from oscar_stream.retry import Backoff
from oscar_stream.worker.supervision import run_supervised

log = logging.getLogger(__name__)
Apply = Callable[[bytes | None, bytes | None], None]


async def follow_compacted(kafka: KafkaSettings, topic: str, apply: Apply, health: Component,
                           loaded: asyncio.Event) -> None:
    """Apply every (key, value) of ``topic`` in order; ``loaded`` is set once what the topic held at the start
    has been applied. After a failure (Kafka away) the topic is read again from its start."""

    async def attempt(backoff: Backoff) -> None:
        timeout = kafka.delivery_timeout_s
        reader = consumer(kafka, group_id=None, enable_auto_commit=False)
        try:
            await asyncio.wait_for(reader.start(), timeout)
            partitions = await asyncio.wait_for(all_partitions(kafka, topic), timeout)
            reader.assign(partitions)
            await reader.seek_to_beginning(*partitions)
            end = await asyncio.wait_for(reader.end_offsets(partitions), timeout)
            while True:
                health.beat()
                batch = await reader.getmany(timeout_ms=500)
                for messages in batch.values():
                    for message in messages:
                        apply(message.key, message.value)
                if health.state != "running":
                    positions = {tp: await reader.position(tp) for tp in partitions}
                    if all(positions[tp] >= end[tp] for tp in partitions):
                        loaded.set()
                        health.running()
                        backoff.reset()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.stop(), timeout)

    await run_supervised(health.name, attempt, health, after_failure=f"reading {topic} again")
