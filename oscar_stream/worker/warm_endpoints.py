"""The warm topic: where each worker serves its warm replicas. Workers renew their record; gateways follow the
topic and forward ``POST /run/<service>`` to a worker whose record is fresh."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass

import orjson

from oscar_stream.config import KafkaSettings
from oscar_stream.core.records import OutRecord
from oscar_stream.health import Component
from oscar_stream.kafka.resilient_producer import ResilientProducer
from oscar_stream.worker.compacted_topic import CompactedFollower

log = logging.getLogger(__name__)
RENEW_S = 10.0
STALE_AFTER_S = 3 * RENEW_S


@dataclass(frozen=True)
class WarmEndpoint:
    worker: str
    url: str
    token: str
    renewed_at: float

    def to_json(self) -> bytes:
        return orjson.dumps({"worker": self.worker, "url": self.url, "token": self.token,
                             "renewed_at": self.renewed_at})


class WarmEndpoints:
    """The fresh endpoints, taken in turn."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.by_worker: dict[str, WarmEndpoint] = {}
        self._follower = CompactedFollower(kafka, topic, self.apply)
        self.ready = self._follower.loaded
        self._turn = itertools.count()

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        worker = (key or b"").decode(errors="replace")
        if value is None:
            self.by_worker.pop(worker, None)
            return
        try:
            raw = orjson.loads(value)
            self.by_worker[worker] = WarmEndpoint(str(raw["worker"]), str(raw["url"]), str(raw["token"]),
                                                  float(raw["renewed_at"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            log.error("ignoring an unreadable warm endpoint of worker %r: %s", worker, err)

    def in_turn(self) -> list[WarmEndpoint]:
        """Every fresh endpoint, starting with a different one on each call."""
        now = time.time()
        fresh = sorted((e for e in self.by_worker.values() if now - e.renewed_at < STALE_AFTER_S),
                       key=lambda e: e.worker)
        if not fresh:
            return []
        start = next(self._turn) % len(fresh)
        return fresh[start:] + fresh[:start]

    async def run(self, health: Component) -> None:
        await self._follower.run(health)


async def advertise(producer: ResilientProducer, topic: str, worker: str, url: str, token: str) -> None:
    """Write this worker's endpoint every RENEW_S until cancelled, then its tombstone."""
    try:
        while True:
            record = WarmEndpoint(worker, url, token, time.time())
            try:
                await producer.write_all([OutRecord(topic, worker.encode(), record.to_json())])
            except Exception as err:  # Kafka away: the next renewal tries again
                log.warning("could not advertise the warm endpoint %s: %s", url, err)
            await asyncio.sleep(RENEW_S)
    finally:
        try:
            await asyncio.shield(producer.write_all([OutRecord(topic, worker.encode(), None)]))
        except Exception as err:
            log.warning("could not withdraw the warm endpoint %s: %s", url, err)
