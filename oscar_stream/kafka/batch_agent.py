"""A batch stream agent on aiokafka, hosted by the faust worker: consume a batch, turn each record into output
records with a pure function, produce them all, wait until Kafka acknowledged every one (acks=all), and only
then commit the batch's offsets.

The stateless, high-volume stages (normalize, route) use it because faust's per-event stream machinery tops
out far below what they need on a small machine (see benchmarks/README.md: a faust agent that does nothing
but iterate handled ~3.5k events/s here, against ~10.7k/s for a plain aiokafka consume->produce loop). The
launch stage, where faust's changelog-backed table matters and each event costs a job, stays a faust agent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from aiokafka import ConsumerRecord
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError

from oscar_stream.config import KafkaSettings
from oscar_stream.kafka.batch_writer import BatchWriter
from oscar_stream.kafka.clients import MAX_REQUEST_BYTES, consumer, reliable_producer
from oscar_stream.kafka.out_record import OutRecord

log = logging.getLogger(__name__)
Handler = Callable[[ConsumerRecord[bytes, bytes]], Sequence[OutRecord]]


BATCH_AGENTS = ("normalize", "route")


def agent_group(app_id: str, agent: str) -> str:
    """The consumer group of one batch agent of a deployment (the launch agent uses ``app_id`` itself)."""
    return f"{app_id}-{agent}"


class BatchAgent:
    def __init__(self, name: str, kafka: KafkaSettings, group_id: str, topics: Sequence[str], handle: Handler,
                 max_records: int = 2000) -> None:
        self.name = name
        self.group_id = group_id
        self._kafka = kafka
        self._topics = list(topics)
        self._handle = handle
        self._max_records = max_records
        self.joined = asyncio.Event()

    async def run(self) -> None:
        reader = consumer(self._kafka, *self._topics, group_id=self.group_id, max_poll_records=self._max_records,
                          client_id=f"{self._kafka.client_id}-{self.name}")
        writer = reliable_producer(self._kafka, client_id=f"{self._kafka.client_id}-{self.name}-producer")
        await writer.start()
        await reader.start()
        batches = BatchWriter(writer, MAX_REQUEST_BYTES)
        try:
            while True:
                batch = await reader.getmany(timeout_ms=200, max_records=self._max_records)
                self.joined.set()
                if not batch:
                    continue
                handle = self._handle
                out = [record for messages in batch.values() for message in messages for record in handle(message)]
                await asyncio.gather(*(await batches.write(out)).deliveries)  # raises if Kafka refused one
                offsets = {tp: messages[-1].offset + 1 for tp, messages in batch.items() if messages}
                try:
                    await reader.commit(offsets)
                except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as err:
                    # Partitions moved to another worker: it will see these records again (at least once).
                    log.warning("%s: commit after a rebalance failed (%s); the batch will be redelivered",
                                self.name, err)
        finally:
            await reader.stop()
            await writer.stop()
