"""The normalize agent: raw topics -> canonical events (or dead-letters)."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import ConsumerRecord

from oscar_stream import metrics
from oscar_stream.deadletter import Origin
from oscar_stream.kafka.batch_agent import BatchAgent, agent_group
from oscar_stream.kafka.out_record import OutRecord
from oscar_stream.normalize.records import normalize_record
from oscar_stream.worker_context import WorkerContext


def register_normalize(ctx: WorkerContext) -> BatchAgent:
    names = ctx.names
    sources = {s.id: s for s in ctx.settings.sources}
    if not sources:
        raise ValueError("the normalize role needs at least one entry in 'sources' in the configuration")

    def handle(message: ConsumerRecord[bytes, bytes]) -> Sequence[OutRecord]:
        origin = Origin(message.topic, message.partition, message.offset)
        metrics.count(metrics.EVENTS_RECEIVED, names.source_of_raw(message.topic) or message.topic, "kafka")
        return normalize_record(names, sources, origin, message.value, message.headers)

    group = agent_group(ctx.settings.app_id, "normalize")
    return ctx.add_batch_agent(BatchAgent("normalize", ctx.settings.kafka, group, [names.raw(s) for s in sources],
                                          handle, ctx.settings.worker.batch_size))
