"""Write many records at once: one Kafka record batch per partition, built directly, instead of one
``send()`` per record.

``AIOKafkaProducer.send`` costs ~35 µs per record here (a coroutine, a future and the partitioner for every
record); building the batches ourselves costs about half. The producer still does the rest — idempotent
sequence numbers, acks=all, retries — per batch.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from oscar_stream.core.errors import RecordTooLarge
from oscar_stream.core.records import OutRecord
from oscar_stream.kafka.partitioner import partition_for


def check_size(record: OutRecord, limit: int) -> None:
    """Raises :class:`RecordTooLarge` for a record no Kafka request of ``limit`` bytes can carry."""
    size = record.size
    if size > limit:
        raise RecordTooLarge(f"record too large: {size} bytes for {record.topic}, over the producer's "
                             f"max_request_size of {limit} bytes")


@dataclass(frozen=True, slots=True)
class Written:
    """What :meth:`BatchWriter.write` queued: one future per batch (done when Kafka acknowledged it) and, per
    record in input order, the index of its batch and its offset inside that batch."""

    deliveries: list[asyncio.Future[RecordMetadata]]
    places: list[tuple[int, int]]


class BatchWriter:
    def __init__(self, producer: AIOKafkaProducer, max_record_bytes: int) -> None:
        self._producer = producer
        self._max_record_bytes = max_record_bytes
        self._turns: dict[tuple[str, int], asyncio.Lock] = {}

    def check_size(self, record: OutRecord) -> None:
        check_size(record, self._max_record_bytes)

    async def write(self, records: Iterable[OutRecord]) -> Written:
        """Queue ``records`` for sending. Records with the same key keep their order, as with ``send()``."""
        partitions: dict[str, int] = {}
        open_batches: dict[tuple[str, int], tuple[Any, int]] = {}  # (topic, partition) -> builder, its slot
        deliveries: list[asyncio.Future[RecordMetadata] | None] = []  # per batch, once it is queued
        places: list[tuple[int, int]] = []
        for record in records:
            count = partitions.get(record.topic)
            if count is None:
                count = partitions[record.topic] = len(await self._producer.partitions_for(record.topic))
            self.check_size(record)
            partition = partition_for(record.key, count) if record.key is not None else random.randrange(count)
            where = (record.topic, partition)
            headers = list(record.headers)
            builder, slot = open_batches.get(where) or self._open(open_batches, deliveries, where)
            appended = builder.append(key=record.key, value=record.value, timestamp=None, headers=headers)
            if appended is None:  # full: a new batch takes the record; the full one can go now
                deliveries[slot] = await self._submit(builder, where)
                builder, slot = self._open(open_batches, deliveries, where)
                appended = builder.append(key=record.key, value=record.value, timestamp=None, headers=headers)
            places.append((slot, appended.offset))
        for where, (builder, slot) in open_batches.items():
            deliveries[slot] = await self._submit(builder, where)
        queued = [d for d in deliveries if d is not None]
        assert len(queued) == len(deliveries), "every batch is queued by now"  # so the slots in places hold
        return Written(queued, places)

    def _open(self, open_batches: dict[tuple[str, int], tuple[Any, int]],
              deliveries: list[asyncio.Future[RecordMetadata] | None], where: tuple[str, int]) -> tuple[Any, int]:
        opened = open_batches[where] = (self._producer.create_batch(), len(deliveries))
        deliveries.append(None)
        return opened

    async def _submit(self, builder: Any, where: tuple[str, int]) -> asyncio.Future[RecordMetadata]:
        builder.close()  # nothing else may append to it once it is queued (the producer's send() would)
        # aiokafka queues one such batch per partition, and a writer waiting for that slot has all the time it
        # waited so far taken off its timeout again at every wake-up: with dozens of writers on one partition
        # (results of jobs that end together) the last ones failed after ~1 s instead of the request timeout.
        # Writers of a partition take turns here instead, so each waits for one batch ahead of it at most.
        turn = self._turns.get(where) or self._turns.setdefault(where, asyncio.Lock())
        async with turn:
            future: asyncio.Future[RecordMetadata] = await self._producer.send_batch(builder, where[0],
                                                                                     partition=where[1])
        return future
