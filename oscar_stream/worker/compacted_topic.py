"""Following a compacted topic (services, jobs) from its start, forever, without a consumer group: every reader
sees every record, so each process keeps its own copy of the table and any replica can answer from it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from oscar_stream.config import KafkaSettings
from oscar_stream.health import Component
from oscar_stream.kafka.clients import all_partitions, consumer
from oscar_stream.retry import Backoff
from oscar_stream.worker.supervision import run_supervised

log = logging.getLogger(__name__)
Apply = Callable[[bytes | None, bytes | None], None]


class CompactedFollower:
    """Apply every (key, value) of ``topic`` in order; ``loaded`` is set once what the topic held at the start
    has been applied. After a failure (Kafka away) the topic is read again from its start."""

    def __init__(self, kafka: KafkaSettings, topic: str, apply: Apply) -> None:
        self._kafka, self._topic, self._apply = kafka, topic, apply
        self._health = Component(topic)
        self.loaded = asyncio.Event()
        self._reader: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._applied: dict[TopicPartition, int] = {}  # the next offset to apply, per partition
        self._moved = asyncio.Event()

    async def run(self, health: Component) -> None:
        self._health = health
        await run_supervised(self._health.name, self._attempt, self._health, after_failure=f"reading {self._topic} "
                             "again")

    async def caught_up(self) -> None:
        """Wait until every record written to the topic before this call has been applied (read-your-writes for
        a record another process wrote just before telling us about it)."""
        while True:
            await self.loaded.wait()
            reader, partitions = self._reader, self._partitions
            if reader is None:
                await self._next_move()
                continue
            try:
                end = await reader.end_offsets(partitions)
            except Exception as err:  # the reader failed or was replaced meanwhile: ask the next one
                log.debug("%s: end offsets failed (%s); asking again", self._topic, err)
                await self._next_move()
                continue
            while reader is self._reader and not self._reached(end):
                await self._next_move()
            if reader is self._reader:
                return

    def _reached(self, end: dict[TopicPartition, int]) -> bool:
        return all(self._applied.get(tp, 0) >= offset for tp, offset in end.items())

    async def _next_move(self) -> None:
        await self._moved.wait()

    def _signal_move(self) -> None:
        self._moved.set()
        self._moved = asyncio.Event()

    async def _attempt(self, backoff: Backoff) -> None:
        timeout = self._kafka.delivery_timeout_s
        reader = consumer(self._kafka, group_id=None, enable_auto_commit=False)
        try:
            await asyncio.wait_for(reader.start(), timeout)
            partitions = await asyncio.wait_for(all_partitions(self._kafka, self._topic), timeout)
            reader.assign(partitions)
            await reader.seek_to_beginning(*partitions)
            end = await asyncio.wait_for(reader.end_offsets(partitions), timeout)
            self._applied = {tp: await reader.position(tp) for tp in partitions}
            self._reader, self._partitions = reader, partitions
            while True:
                self._health.beat()
                batch = await reader.getmany(timeout_ms=500)
                for tp, messages in batch.items():
                    for message in messages:
                        self._apply(message.key, message.value)
                    if messages:
                        self._applied[tp] = messages[-1].offset + 1
                # offsets also advance past what compaction removed and past transaction markers
                self._applied = {tp: max(self._applied[tp], await reader.position(tp)) for tp in partitions}
                self._signal_move()
                if self._health.state != "running" and self._reached(end):
                    self.loaded.set()
                    self._health.running()
                    backoff.reset()
        finally:
            if self._reader is reader:
                self._reader = None
            self._signal_move()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.stop(), timeout)
