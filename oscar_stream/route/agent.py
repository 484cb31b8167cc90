"""The route agent: canonical events -> one invocation per matching service."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import ConsumerRecord

from oscar_stream.deadletter import Origin
from oscar_stream.kafka.batch_agent import BatchAgent, agent_group
from oscar_stream.kafka.out_record import OutRecord
from oscar_stream.route.records import route_record
from oscar_stream.worker_context import WorkerContext


def register_route(ctx: WorkerContext) -> BatchAgent:
    names = ctx.names

    def handle(message: ConsumerRecord[bytes, bytes]) -> Sequence[OutRecord]:
        origin = Origin(message.topic, message.partition, message.offset)
        return route_record(names, ctx.services.index, origin, message.value)

    return ctx.add_batch_agent(BatchAgent("route", ctx.settings.kafka, agent_group(ctx.settings.app_id, "route"),
                                          [names.events], handle, ctx.settings.worker.batch_size),
                               after=ctx.services.ready)  # never route with a half-loaded table
