"""The live routing table of one worker: every record of the compacted services topic, read from the start by
every worker (no consumer group), so ``oscar-stream apply`` changes routing everywhere without a restart."""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson

from oscar_stream import metrics
from oscar_stream.config import KafkaSettings
from oscar_stream.health import Component
from oscar_stream.route.clusters import is_local, localize
from oscar_stream.route.index import RoutingIndex
from oscar_stream.route.model import ServiceSpec
from oscar_stream.worker.compacted_topic import CompactedFollower

log = logging.getLogger(__name__)


class ServicesTable:
    def __init__(self, kafka: KafkaSettings, topic: str, local_cluster: str | None = None) -> None:
        self.on_service: list[Callable[[ServiceSpec], None]] = []
        self._kafka = kafka
        self._topic = topic
        self._local_cluster = local_cluster
        self.index = RoutingIndex()
        self._indexed: dict[str, str] = {}  # record key -> the name the service is indexed under
        self._versions: dict[str, set[str]] = {}  # name -> every version applied so far
        self._follower = CompactedFollower(kafka, topic, self.apply)
        self.ready = self._follower.loaded

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
            self._versions.setdefault(service.name, set()).add(service.version)
            if self.is_local(service):
                self.index.put(service)
                for callback in self.on_service:
                    callback(service)
            else:
                service = localize(service, self._local_cluster or "")
                self.index.put(service)
            self._indexed[record_key] = service.name
        metrics.SERVICES_LOADED.set(len(self.index))

    def knows(self, name: str, version: str) -> bool:
        return version in self._versions.get(name, ())

    async def caught_up(self) -> None:
        """Until this table holds every service written before the call: a version it never saw was written by
        an ``apply`` (or an API call) that it has not read yet."""
        await self._follower.caught_up()

    async def run(self, health: Component | None = None) -> None:
        """Follow the topic forever; after a failure (Kafka away), read it again from the start."""
        await self._follower.run(health or Component("services"))
