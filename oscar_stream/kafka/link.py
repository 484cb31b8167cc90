"""The gateway's way to Kafka: one producer (rebuilt after a failed delivery), the writer that batches the
records of concurrent requests, and whether Kafka can be reached now."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka.errors import KafkaError

from oscar_stream.core.errors import OscarStreamError
from oscar_stream.core.records import OutRecord
from oscar_stream.kafka.coalescing_writer import CoalescingWriter, Placement
from oscar_stream.kafka.probe import KafkaProbe
from oscar_stream.kafka.resilient_producer import ResilientProducer
from oscar_stream.retry import Backoff

log = logging.getLogger(__name__)


class KafkaUnavailable(OscarStreamError):
    """Kafka did not acknowledge in time (or refused); the caller answers 503."""


class KafkaLink:
    def __init__(self, producer: ResilientProducer, probe: KafkaProbe, timeout_s: float) -> None:
        self.producer = producer
        self.probe = probe
        self.timeout_s = timeout_s
        self.writer = CoalescingWriter(producer, timeout_s)

    @property
    def ready(self) -> bool:
        return self.probe.reachable and self.producer.ready

    async def write(self, records: Iterable[OutRecord]) -> list[Placement]:
        """Write ``records`` and wait for Kafka's acknowledgement of every one (their partitions and offsets).

        Raises :class:`RecordTooLarge` at once for a record that cannot fit, and :class:`KafkaUnavailable` when
        Kafka is away or does not acknowledge within the timeout. Only a record already sent may still be
        written after that; a retry by the caller then makes a copy, which has the same ids as the first and so
        leads to one invocation downstream."""
        if not self.ready:
            raise KafkaUnavailable("Kafka is unavailable")
        pending = self.writer.write_all(list(records))  # all or nothing is queued
        try:
            return [await placement for placement in pending]  # the writer fails them after timeout_s
        except TimeoutError as err:
            _abandon(pending)
            await self.overdue()
            raise KafkaUnavailable(f"Kafka did not acknowledge in {self.timeout_s:.0f}s") from err
        except (KafkaError, ConnectionError) as err:
            _abandon(pending)
            raise KafkaUnavailable(f"Kafka refused the write: {err!r}") from err
        except asyncio.CancelledError:  # the client went away
            _abandon(pending)
            raise

    async def keep_connected(self) -> None:
        """Start a producer whenever there is none (at start, and after one failed a delivery), so that
        readiness comes back by itself once Kafka is reachable again."""
        backoff = Backoff(0.5, 10.0)
        while True:
            if self.producer.ready:
                backoff.reset()
                await asyncio.sleep(0.5)
                continue
            try:
                await self.producer.writer()
                log.info("Kafka reachable: the gateway accepts writes")
            except Exception as err:
                log.warning("Kafka not reachable (%s: %s); the gateway answers 503 meanwhile",
                            type(err).__name__, err)
                await backoff.wait()

    async def overdue(self) -> None:
        """A write not acknowledged in time: the producer may hold it (and everything behind it) for as long
        as the broker is away; drop it, so that nothing answered 503 is written later by it."""
        await self.producer.discard()


def _abandon(pending: list[asyncio.Future[Placement]]) -> None:
    """Nobody waits for these any more: cancel those still open, and take the error of those that failed (else
    asyncio logs each as an exception never retrieved)."""
    for placement in pending:
        if not placement.done():
            placement.cancel()
        elif not placement.cancelled():
            placement.exception()
