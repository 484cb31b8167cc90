"""What the stream agents share: settings, topic names, the producer, the routing table and the executor."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field

import faust
from aiokafka.structs import RecordMetadata

from oscar_stream import metrics
from oscar_stream.config import Settings
from oscar_stream.kafka.batch_agent import BatchAgent
from oscar_stream.kafka.out_record import OutRecord
from oscar_stream.kafka.topics_admin import desired_topics
from oscar_stream.launch.executor import Executor, Limiter, ResultSink
from oscar_stream.launch.results import Result, output_events
from oscar_stream.normalize.records import CLOUDEVENTS_HEADERS
from oscar_stream.route.services_table import ServicesTable
from oscar_stream.topics import TopicNames


@dataclass
class WorkerContext:
    """What the agents share: settings, topic names, the producer, the routing table, the executor."""

    settings: Settings
    app: faust.App
    names: TopicNames
    services: ServicesTable
    limiter: Limiter = field(default_factory=Limiter)
    executor: Executor | None = None
    healthy: bool = True
    needs_services: bool = True
    launches: bool = False
    batch_agents: list[BatchAgent] = field(default_factory=list)

    def add_batch_agent(self, agent: BatchAgent, after: asyncio.Event | None = None) -> BatchAgent:
        """Run ``agent`` for the life of the worker (after ``after`` is set); a crash stops the worker, so
        its unacknowledged records are redelivered after the restart."""
        self.batch_agents.append(agent)

        @self.app.task
        async def run_agent() -> None:
            if after is not None:
                await after.wait()
            try:
                await agent.run()
            except Exception as err:
                self.healthy = False
                await self.app.crash(err)
                raise

        return agent

    @property
    def consumer_groups(self) -> list[str]:
        return [self.settings.app_id, *(a.group_id for a in self.batch_agents)]

    def partitions(self, topic: str) -> int:
        """The declared partition count of one of the system's topics (tables must match their source)."""
        return desired_topics(self.settings)[topic].partitions

    async def send(self, record: OutRecord) -> Awaitable[RecordMetadata]:
        """Hand a record to the producer; the returned future resolves once Kafka acknowledged it."""
        future: Awaitable[RecordMetadata] = await self.app.producer.send(
            record.topic, record.key, record.value, None, None, list(record.headers) or None
        )
        return future

    async def send_all(self, records: Iterable[OutRecord]) -> None:
        pending = [await self.send(r) for r in records]
        if pending:
            await asyncio.gather(*pending)

    def result_sink(self) -> ResultSink:
        async def publish(result: Result) -> None:
            records = [OutRecord(self.names.results, result.service.encode(), result.to_json())]
            records += [
                OutRecord(self.names.events, e.partition_key, e.to_json(), CLOUDEVENTS_HEADERS)
                for e in output_events(result)
            ]
            await self.send_all(records)
            if result.outputs:
                metrics.OUTPUTS_PUBLISHED.labels(result.service).inc(len(result.outputs))

        return publish
