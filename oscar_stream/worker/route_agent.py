"""The route agent: canonical events -> one invocation per matching service, counted."""

from __future__ import annotations

from collections.abc import Sequence

from oscar_stream import metrics
from oscar_stream.core.deadletter import deadletter_record, reason_label
from oscar_stream.core.records import Origin, OutRecord
from oscar_stream.route.records import route_record
from oscar_stream.topics import agent_group
from oscar_stream.worker.batch_agent import BatchAgent, Message
from oscar_stream.worker.context import WorkerContext


def route_agent(ctx: WorkerContext) -> BatchAgent:
    names = ctx.names

    def handle(message: Message) -> Sequence[OutRecord]:
        routed = route_record(names, ctx.services.index, Origin(message.topic, message.partition, message.offset),
                              message.value)
        if routed.dead is not None:
            metrics.count(metrics.DEADLETTERED, "route", reason_label(routed.dead))
        elif routed.event is not None:
            # Invocations are counted per service by the launch stage: here, a labelled counter per service
            # would touch one more object of each of thousands of services per event.
            metrics.count(metrics.EVENTS_ROUTED if routed.records else metrics.EVENTS_UNMATCHED, routed.event.storage)
        return routed.records

    def dead_letter(message: Message, reason: str) -> OutRecord:
        metrics.count(metrics.DEADLETTERED, "route", reason_label(reason))
        return OutRecord(names.deadletter, b"route",
                         deadletter_record("route", message.topic, reason, message.value or b"",
                                           Origin(message.topic, message.partition, message.offset)))

    return BatchAgent("route", ctx.settings.kafka, agent_group(ctx.settings.app_id, "route"), [names.events],
                      handle, dead_letter, ctx.health.component("route"), ctx.settings.worker.batch_size,
                      ctx.settings.worker.instance_id)
