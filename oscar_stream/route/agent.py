"""The route agent: canonical events -> one invocation per matching service."""

from __future__ import annotations

from typing import Any

from oscar_stream.deadletter import Origin
from oscar_stream.kafka.faust_topics import byte_topic
from oscar_stream.kafka.pipelined import pipelined
from oscar_stream.route.records import route_record
from oscar_stream.worker_context import WorkerContext


def register_route(ctx: WorkerContext) -> None:
    names = ctx.names

    async def handle(event: Any) -> list[Any]:
        message = event.message
        origin = Origin(message.topic, message.partition, message.offset)
        return [await ctx.send(r) for r in route_record(names, ctx.services.index, origin, message.value)]

    @ctx.app.agent(byte_topic(ctx.app, names.events), name="oscar-route")
    async def route(stream: Any) -> None:
        await ctx.services.ready.wait()  # never route with a half-loaded table
        await pipelined(ctx.app, stream, handle, ctx.settings.worker.max_in_flight)
