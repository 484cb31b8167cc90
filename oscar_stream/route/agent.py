"""The route agent: canonical events -> one invocation per matching service."""

from __future__ import annotations

from typing import Any

from oscar_stream.deadletter import Origin
from oscar_stream.kafka.faust_topics import byte_topic
from oscar_stream.route.records import route_record
from oscar_stream.worker_context import WorkerContext


def register_route(ctx: WorkerContext) -> None:
    settings, names = ctx.settings, ctx.names

    @ctx.app.agent(byte_topic(ctx.app, names.events), name="oscar-route")
    async def route(stream: Any) -> None:
        await ctx.services.ready.wait()  # never route with a half-loaded table
        async for batch in stream.take_events(settings.worker.batch_size, within=settings.worker.batch_window_s):
            records = []
            for event in batch:
                message = event.message
                origin = Origin(message.topic, message.partition, message.offset)
                records += route_record(names, ctx.services.index, origin, message.value)
            await ctx.send_all(records)
