"""One canonical event -> invocation records (or a dead-letter). Pure apart from counting metrics."""

from __future__ import annotations

from oscar_stream import metrics
from oscar_stream.deadletter import Origin, deadletter_record, reason_label
from oscar_stream.kafka.out_record import OutRecord
from oscar_stream.normalize.canonical import InvalidEvent, StorageEvent
from oscar_stream.route.index import RoutingIndex
from oscar_stream.topics import TopicNames


def route_record(names: TopicNames, index: RoutingIndex, origin: Origin, value: bytes | None) -> list[OutRecord]:
    try:
        event = StorageEvent.from_json(value or b"")
    except InvalidEvent as err:
        reason = f"invalid canonical event: {err}"
        metrics.DEADLETTERED.labels("route", reason_label(reason)).inc()
        return [OutRecord(names.deadletter, b"route",
                          deadletter_record("route", origin.topic, reason, value or b"", origin))]
    invocations = index.route(event)
    if not invocations:
        metrics.count(metrics.EVENTS_UNMATCHED, event.storage)
        return []
    metrics.count(metrics.EVENTS_ROUTED, event.storage)
    # Invocations are counted per service by the launch stage: here, a labelled counter per service would
    # touch one more object of each of thousands of services per event (measured: ~1 µs of ~20 at 10k).
    return [OutRecord(names.invocations, invocation.service.encode(), invocation.to_json())
            for invocation in invocations]
