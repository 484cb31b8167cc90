"""One canonical event -> invocation records (or a dead-letter). Pure.

Invocations are keyed by their id, so one service's invocations spread over every partition (and so over
every worker), while the copies of one invocation land on one partition, in order."""

from __future__ import annotations

from dataclasses import dataclass, field

from oscar_stream.core.deadletter import deadletter_record
from oscar_stream.core.errors import InvalidEvent
from oscar_stream.core.events import StorageEvent
from oscar_stream.core.records import Origin, OutRecord
from oscar_stream.route.index import RoutingIndex
from oscar_stream.topics import TopicNames


@dataclass
class Routed:
    records: list[OutRecord] = field(default_factory=list)
    event: StorageEvent | None = None
    dead: str | None = None  # the reason, if the record was dead-lettered


def route_record(names: TopicNames, index: RoutingIndex, origin: Origin, value: bytes | None) -> Routed:
    try:
        event = StorageEvent.from_json(value or b"")
    except InvalidEvent as err:
        reason = f"invalid canonical event: {err}"
        return Routed([OutRecord(names.deadletter, b"route",
                                 deadletter_record("route", origin.topic, reason, value or b"", origin))], dead=reason)
    return Routed([OutRecord(names.invocations, invocation.id.encode(), invocation.to_json())
                   for invocation in index.route(event)], event)
