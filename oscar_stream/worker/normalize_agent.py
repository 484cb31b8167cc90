"""The normalize agent: raw topics -> canonical events (or dead-letters), counted."""

from __future__ import annotations

from collections.abc import Sequence

from oscar_stream import metrics
from oscar_stream.core.deadletter import deadletter_record, reason_label
from oscar_stream.core.records import Origin, OutRecord
from oscar_stream.normalize.records import normalize_record
from oscar_stream.topics import agent_group
from oscar_stream.worker.batch_agent import BatchAgent, Message
from oscar_stream.worker.context import WorkerContext


def normalize_agent(ctx: WorkerContext) -> BatchAgent:
    names = ctx.names
    sources = {s.id: s for s in ctx.settings.sources}
    if not sources:
        raise ValueError("the normalize role needs at least one entry in 'sources' in the configuration")

    def handle(message: Message) -> Sequence[OutRecord]:
        origin = Origin(message.topic, message.partition, message.offset)
        source = names.source_of_raw(message.topic) or message.topic
        metrics.count(metrics.EVENTS_RECEIVED, source, "kafka")
        result = normalize_record(names, sources, origin, message.value, message.headers)
        for event in result.events:
            metrics.count(metrics.EVENTS_NORMALIZED, result.source, event.type.rsplit(".", 1)[-1])
        for reason in result.dead:
            metrics.count(metrics.DEADLETTERED, "normalize", reason_label(reason))
        if result.ignored:
            metrics.count(metrics.EVENTS_IGNORED, result.source)
        if result.lost:
            metrics.count(metrics.DCACHE_EVENTS_LOST, result.source)
        return result.records

    def dead_letter(message: Message, reason: str) -> OutRecord:
        metrics.count(metrics.DEADLETTERED, "normalize", reason_label(reason))
        source = names.source_of_raw(message.topic) or message.topic
        origin = Origin(message.topic, message.partition, message.offset)
        return OutRecord(names.deadletter, source.encode(),
                         deadletter_record("normalize", source, reason, message.value or b"", origin))

    return BatchAgent("normalize", ctx.settings.kafka, agent_group(ctx.settings.app_id, "normalize"),
                      [names.raw(s) for s in sources], handle, dead_letter, ctx.health.component("normalize"),
                      ctx.settings.worker.batch_size, ctx.settings.worker.instance_id)
