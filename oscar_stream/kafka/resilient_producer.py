"""A producer that is rebuilt after a failed or overdue delivery.

aiokafka's idempotent producer can stay broken after a broker restart (every batch refused with
OutOfOrderSequenceNumber until the process restarts), and a delivery can wait forever on a connection that
will not come back. So every write here has a deadline, and any failure throws the producer away: the next
write starts a fresh one (a new producer id, new connections). A record whose delivery failed may still have
been written; everything downstream recognises such copies by their deterministic ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from oscar_stream.config import KafkaSettings
from oscar_stream.core.records import OutRecord
from oscar_stream.kafka.batch_writer import BatchWriter
from oscar_stream.kafka.clients import MAX_RECORD_BYTES, reliable_producer

log = logging.getLogger(__name__)


class ResilientProducer:
    def __init__(self, kafka: KafkaSettings, client_id: str) -> None:
        self._kafka = kafka
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._writer: BatchWriter | None = None
        self._lock = asyncio.Lock()
        self.failed = False  # the last write failed and no producer has started since

    @property
    def timeout_s(self) -> float:
        return self._kafka.delivery_timeout_s

    @property
    def ready(self) -> bool:
        return self._writer is not None and not self.failed

    async def writer(self) -> BatchWriter:
        """The current producer's writer, starting a producer first if there is none (raises if Kafka cannot
        be reached within the delivery timeout)."""
        async with self._lock:
            if self._writer is None:
                producer = reliable_producer(self._kafka, client_id=self._client_id)
                try:
                    await asyncio.wait_for(producer.start(), self.timeout_s)
                except BaseException:
                    await _close(producer, self.timeout_s)
                    raise
                self._producer, self._writer = producer, BatchWriter(producer, MAX_RECORD_BYTES)
                self.failed = False
            return self._writer

    async def write_all(self, records: Iterable[OutRecord]) -> None:
        """Write ``records`` and wait until Kafka acknowledged every one (acks=all)."""
        records = list(records)
        if not records:
            return
        writer = await self.writer()
        try:
            written = await writer.write(records)
            await asyncio.wait_for(asyncio.gather(*written.deliveries), self.timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            await self.discard(writer)
            raise

    async def discard(self, writer: BatchWriter | None = None) -> None:
        """Throw the producer away after a failure (only if ``writer`` is still the current one)."""
        async with self._lock:
            if self._writer is None or (writer is not None and writer is not self._writer):
                return
            producer, self._producer, self._writer = self._producer, None, None
            self.failed = True
        log.warning("Kafka producer %s failed a delivery; it is replaced by a new one", self._client_id)
        if producer is not None:
            await _abort(producer, self.timeout_s)

    async def stop(self) -> None:
        async with self._lock:
            producer, self._producer, self._writer = self._producer, None, None
        if producer is not None:
            await _close(producer, self.timeout_s)


async def _close(producer: AIOKafkaProducer, timeout_s: float) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), timeout_s)


async def _abort(producer: AIOKafkaProducer, timeout_s: float) -> None:
    """Close without flushing: what it still holds fails at once instead of being written whenever the broker
    comes back — after its callers were told it failed, which would only make copies. (``stop()`` flushes;
    aiokafka has no public way to drop pending batches, hence the private attributes of the pinned version.)"""
    with contextlib.suppress(Exception):
        producer._message_accumulator.fail_all(KafkaConnectionError("the producer was discarded after a failure"))
        producer._closed = True
        if producer._sender is not None:
            await asyncio.wait_for(producer._sender.close(), timeout_s)
        await asyncio.wait_for(producer.client.close(), timeout_s)
