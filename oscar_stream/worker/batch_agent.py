"""A batch stream agent on aiokafka, hosted by the faust worker: consume a batch, turn each record into output
records with a pure function, produce them all, wait until Kafka acknowledged every one (acks=all), and only
then commit the batch's offsets.

No record can stop it: whatever goes wrong while handling one record (a bug included) dead-letters that record
with the reason, and an output record too large for Kafka dead-letters its input. Only the infrastructure can
stop it, and only for a while: when Kafka refuses, does not answer within the delivery timeout, or a client
breaks, the agent drops its consumer and producer, waits, and starts over from the committed offsets (what was
produced meanwhile is recognised downstream by its deterministic ids).

The stateless, high-volume stages (normalize, route) use it because faust's per-event stream machinery tops
out far below what they need on a small machine (see benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError

from oscar_stream.config import KafkaSettings
from oscar_stream.core.errors import RecordTooLarge
from oscar_stream.core.records import OutRecord
from oscar_stream.health import Component
from oscar_stream.kafka.batch_writer import check_size
from oscar_stream.kafka.clients import MAX_RECORD_BYTES, group_member
from oscar_stream.kafka.resilient_producer import ResilientProducer
from oscar_stream.retry import Backoff
from oscar_stream.worker.supervision import run_supervised

log = logging.getLogger(__name__)
Message: TypeAlias = ConsumerRecord[bytes, bytes]
Handler = Callable[[Message], Sequence[OutRecord]]
DeadLetter = Callable[[Message, str], OutRecord]


class BatchAgent:
    def __init__(self, name: str, kafka: KafkaSettings, group_id: str, topics: Sequence[str], handle: Handler,
                 dead_letter: DeadLetter, health: Component, max_records: int = 2000,
                 instance_id: str | None = None) -> None:
        self.name = name
        self.group_id = group_id
        self._kafka = kafka
        self._topics = list(topics)
        self._handle = handle
        self._dead_letter = dead_letter
        self._health = health
        self._max_records = max_records
        self._instance_id = f"{instance_id}-{name}" if instance_id else None
        self._producer = ResilientProducer(kafka, f"{kafka.client_id}-{name}-producer")

    async def run(self) -> None:
        """Forever: a failure of the infrastructure restarts the loop after a backoff."""
        await run_supervised(self.name, self._run_once, self._health)

    async def _run_once(self, backoff: Backoff) -> None:
        timeout = self._kafka.delivery_timeout_s
        reader = group_member(self._kafka, self.group_id, self._instance_id, max_poll_records=self._max_records,
                              client_id=f"{self._kafka.client_id}-{self.name}")
        try:
            await asyncio.wait_for(reader.start(), timeout)
            joined = _Joined()
            reader.subscribe(self._topics, listener=joined)
            await self._producer.writer()
            while True:
                self._health.beat()
                batch = await reader.getmany(timeout_ms=200, max_records=self._max_records)
                if joined.is_set() and self._health.state != "running":
                    self._health.running()
                if not batch:
                    continue
                out = [record for messages in batch.values() for message in messages for record in self._safe(message)]
                await self._producer.write_all(out)
                await self._commit(reader, {tp: messages[-1].offset + 1 for tp, messages in batch.items() if messages})
                backoff.reset()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.stop(), timeout)
            await self._producer.stop()

    def _safe(self, message: Message) -> Sequence[OutRecord]:
        try:
            records = self._handle(message)
            for record in records:
                check_size(record, MAX_RECORD_BYTES)
            return records
        except RecordTooLarge as err:
            return [self._dead_letter(message, str(err))]
        except Exception as err:  # a bug must cost one record, not the stream
            log.exception("%s agent: handling %s[%d]@%d failed", self.name, message.topic, message.partition,
                          message.offset)
            return [self._dead_letter(message, f"internal error: {type(err).__name__}: {err}")]

    async def _commit(self, reader: AIOKafkaConsumer, offsets: dict[object, int]) -> None:
        try:
            await asyncio.wait_for(reader.commit(offsets), self._kafka.delivery_timeout_s)
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as err:
            # Partitions moved to another worker: it will see these records again (at least once).
            log.warning("%s agent: commit after a rebalance failed (%s); the batch will be redelivered",
                        self.name, err)


class _Joined(asyncio.Event, ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Set once the consumer has joined its group (with or without partitions: more workers than partitions
    is a valid deployment)."""

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.clear()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.set()
