"""The live routing table of one worker: every record of the compacted services topic, read from the start by
every worker (no consumer group), so ``oscar-stream apply`` changes routing everywhere without a restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import orjson

from oscar_stream import metrics
from oscar_stream.config import KafkaSettings
from oscar_stream.health import Component
from oscar_stream.route.clusters import is_local, localize
from oscar_stream.route.index import RoutingIndex
from oscar_stream.route.model import ServiceSpec
from oscar_stream.worker.compacted_topic import follow_compacted

log = logging.getLogger(__name__)


class ServicesTable:
    def __init__(self, kafka: KafkaSettings, topic: str, local_cluster: str | None = None) -> None:
        self.on_service: list[Callable[[ServiceSpec], None]] = []
        self._kafka = kafka
        self._topic = topic
        self._local_cluster = local_cluster
        self.index = RoutingIndex()
        self._indexed: dict[str, str] = {}  # record key -> the name the service is indexed under
        self.ready = asyncio.Event()

    def is_local(self, service: ServiceSpec) -> bool:
        return is_local(service, self._local_cluster)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        record_key = (key or b"").decode(errors="replace")
        if value is None:
            self.index.remove(self._indexed.pop(record_key, record_key))
        else:
            try:
                service = ServiceSpec.from_record(orjson.loads(value))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                log.error("ignoring an unreadable record for service %r on %s: %s", record_key, self._topic, err)
                return
            if self.is_local(service):
                self.index.put(service)
                for callback in self.on_service:
                    callback(service)
            else:
                service = localize(service, self._local_cluster or "")
                self.index.put(service)
            self._indexed[record_key] = service.name
        metrics.SERVICES_LOADED.set(len(self.index))

    async def run(self, health: Component | None = None) -> None:
        """Follow the topic forever; after a failure (Kafka away), read it again from the start."""
        await follow_compacted(self._kafka, self._topic, self.apply, health or Component("services"), self.ready)
