"""The normalize agent: raw topics -> canonical events (or dead-letters)."""

from __future__ import annotations

from typing import Any

from oscar_stream import metrics
from oscar_stream.deadletter import Origin
from oscar_stream.kafka.faust_topics import byte_topic
from oscar_stream.normalize.records import normalize_record
from oscar_stream.worker_context import WorkerContext


def register_normalize(ctx: WorkerContext) -> None:
    settings, names = ctx.settings, ctx.names
    sources = {s.id: s for s in settings.sources}
    if not sources:
        raise ValueError("the normalize role needs at least one entry in 'sources' in the configuration")
    raw = byte_topic(ctx.app, *(names.raw(s) for s in sources))

    @ctx.app.agent(raw, name="oscar-normalize")
    async def normalize(stream: Any) -> None:
        async for batch in stream.take_events(settings.worker.batch_size, within=settings.worker.batch_window_s):
            records = []
            for event in batch:
                message = event.message
                origin = Origin(message.topic, message.partition, message.offset)
                metrics.EVENTS_RECEIVED.labels(names.source_of_raw(message.topic) or message.topic, "kafka").inc()
                records += normalize_record(names, sources, origin, message.value, message.headers)
            # Faust acks the batch (and later commits) only after this returns: after Kafka has every record.
            await ctx.send_all(records)
