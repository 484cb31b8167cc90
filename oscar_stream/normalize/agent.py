"""The normalize agent: raw topics -> canonical events (or dead-letters)."""

from __future__ import annotations

from typing import Any

from oscar_stream import metrics
from oscar_stream.deadletter import Origin
from oscar_stream.kafka.faust_topics import byte_topic
from oscar_stream.kafka.pipelined import pipelined
from oscar_stream.normalize.records import normalize_record
from oscar_stream.worker_context import WorkerContext


def register_normalize(ctx: WorkerContext) -> None:
    names = ctx.names
    sources = {s.id: s for s in ctx.settings.sources}
    if not sources:
        raise ValueError("the normalize role needs at least one entry in 'sources' in the configuration")
    raw = byte_topic(ctx.app, *(names.raw(s) for s in sources))

    async def handle(event: Any) -> list[Any]:
        message = event.message
        origin = Origin(message.topic, message.partition, message.offset)
        metrics.EVENTS_RECEIVED.labels(names.source_of_raw(message.topic) or message.topic, "kafka").inc()
        return [await ctx.send(r) for r in normalize_record(names, sources, origin, message.value, message.headers)]

    @ctx.app.agent(raw, name="oscar-normalize")
    async def normalize(stream: Any) -> None:
        await pipelined(ctx.app, stream, handle, ctx.settings.worker.max_in_flight)
