"""Publishing results: one per invocation id, retried until Kafka has it.

A result goes to the results topic keyed by its invocation id (so it lands on the partition number of its
invocation: see ledger.py), together with one event per output object on the events topic (which chains the
next stage). Publishing does not give up while Kafka is away: the result of a finished job is never dropped,
and the job is never run again because its result could not be written for a while.
"""

from __future__ import annotations

import asyncio
import logging

from oscar_stream import metrics
from oscar_stream.core.records import CLOUDEVENTS_HEADERS, OutRecord
from oscar_stream.core.results import Result, output_events
from oscar_stream.health import Component
from oscar_stream.kafka.partitioner import partition_for
from oscar_stream.kafka.resilient_producer import ResilientProducer
from oscar_stream.retry import Backoff
from oscar_stream.topics import TopicNames
from oscar_stream.worker.job_journal import JobJournal
from oscar_stream.worker.ledger import ResultLedger

log = logging.getLogger(__name__)


class ResultPublisher:
    def __init__(self, producer: ResilientProducer, names: TopicNames, ledger: ResultLedger, partitions: int,
                 health: Component, journal: JobJournal) -> None:
        self._producer = producer
        self._journal = journal
        self._names = names
        self._ledger = ledger
        self.partitions = partitions
        self._health = health

    def partition_of(self, invocation_id: str) -> int:
        return partition_for(invocation_id.encode(), self.partitions)

    def published(self, invocation_id: str) -> bool:
        return self._ledger.has(self.partition_of(invocation_id), invocation_id)

    async def __call__(self, result: Result) -> None:
        partition = self.partition_of(result.invocation_id)
        if self._ledger.has(partition, result.invocation_id):
            metrics.count(metrics.RESULTS_DUPLICATE, result.service)
            return
        records = [OutRecord(self._names.results, result.invocation_id.encode(), result.to_json())]
        records += [OutRecord(self._names.events, e.partition_key, e.to_json(), CLOUDEVENTS_HEADERS)
                    for e in output_events(result)]
        backoff = Backoff(0.5, 10.0)
        while True:
            try:
                await self._producer.write_all(records)
                break
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._health.recovering(f"publishing results: {type(err).__name__}: {err}")
                log.warning("publishing the result of %s failed (%s: %s); trying again", result.invocation_id,
                            type(err).__name__, err)
                await backoff.wait()
        self._ledger.add(partition, result.invocation_id)
        self._journal.ended(result)
        if result.outputs:
            metrics.OUTPUTS_PUBLISHED.labels(result.service).inc(len(result.outputs))
