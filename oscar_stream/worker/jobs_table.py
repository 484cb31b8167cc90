"""Every job of a deployment, as the launch stage reported it on the jobs topic (see core/jobs.py): what
``GET /system/logs/<service>`` lists, on any gateway replica."""

from __future__ import annotations

import logging

from oscar_stream.config import KafkaSettings
from oscar_stream.core.errors import InvalidEvent
from oscar_stream.core.jobs import JobRecord
from oscar_stream.health import Component
from oscar_stream.worker.compacted_topic import CompactedFollower

log = logging.getLogger(__name__)


class JobsTable:
    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self._kafka = kafka
        self._topic = topic
        self.by_service: dict[str, dict[str, JobRecord]] = {}
        self._service_of: dict[str, str] = {}  # job name -> service
        self._follower = CompactedFollower(kafka, topic, self.apply)
        self.ready = self._follower.loaded

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        job = (key or b"").decode(errors="replace")
        if value is None:
            service = self._service_of.pop(job, None)
            if service is not None:
                self.by_service.get(service, {}).pop(job, None)
            return
        try:
            record = JobRecord.from_json(value)
        except InvalidEvent as err:
            log.error("ignoring an unreadable record of job %r on %s: %s", job, self._topic, err)
            return
        self._service_of[record.job] = record.service
        self.by_service.setdefault(record.service, {})[record.job] = record

    def jobs(self, service: str) -> dict[str, JobRecord]:
        return self.by_service.get(service, {})

    async def run(self, health: Component) -> None:
        await self._follower.run(health)
