"""Writing each job's state to the jobs topic (core/jobs.py) as the launch stage moves it along: queued, running,
ended. The records of one job are written in order, by one task, in batches; they serve OSCAR's API only, so a
job never waits for them (and while Kafka is away they wait in memory)."""

from __future__ import annotations

import asyncio
import logging

from oscar_stream.core.jobs import JobRecord, JobStatus, job_name
from oscar_stream.core.records import OutRecord
from oscar_stream.core.results import Result
from oscar_stream.core.times import now_rfc3339
from oscar_stream.kafka.resilient_producer import ResilientProducer
from oscar_stream.retry import Backoff

log = logging.getLogger(__name__)


class JobJournal:
    def __init__(self, producer: ResilientProducer, topic: str, enabled: bool = True) -> None:
        self._producer = producer
        self._topic = topic
        self.enabled = enabled  # off while OSCAR's API is off: nobody reads the jobs topic then
        self._queue: list[OutRecord] = []
        self._created: dict[str, str] = {}  # job -> its creation time, while it is not ended
        self._wake = asyncio.Event()

    def _write(self, record: JobRecord) -> None:
        if not self.enabled:
            return
        self._queue.append(OutRecord(self._topic, record.job.encode(), record.to_json()))
        self._wake.set()

    def update(self, service: str, invocation_id: str, executor: str, status: JobStatus,
               creation_time: str | None = None, start_time: str | None = None) -> None:
        if not self.enabled:
            return
        job = job_name(service, invocation_id)
        created = self._created.setdefault(job, creation_time or now_rfc3339())
        self._write(JobRecord(job, service, invocation_id, status, executor, created,
                              start_time=start_time if status == "Running" else None))

    def ended(self, result: Result) -> JobRecord:
        job = job_name(result.service, result.invocation_id)
        created = self._created.pop(job, None) or result.started_at or result.finished_at or now_rfc3339()
        record = JobRecord(job, result.service, result.invocation_id,
                           "Succeeded" if result.status == "succeeded" else "Failed", result.executor, created,
                           start_time=result.started_at, finish_time=result.finished_at, reason=result.reason,
                           logs=result.log)
        self._write(record)
        return record

    def forget(self, service: str, invocation_id: str) -> None:
        """The job moved to another worker (its partition did): that worker writes its states from now on."""
        self._created.pop(job_name(service, invocation_id), None)

    async def run(self) -> None:
        backoff = Backoff(0.5, 10.0)
        while True:
            await self._wake.wait()
            self._wake.clear()
            taken, self._queue = self._queue, []
            try:
                await self._producer.write_all(taken)
                backoff.reset()
            except Exception as err:
                self._queue = taken + self._queue
                log.warning("writing %d job records failed (%s: %s); trying again", len(taken), type(err).__name__,
                            err)
                await backoff.wait()
                self._wake.set()
