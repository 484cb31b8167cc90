"""One raw Kafka record -> the records to produce (canonical events and dead-letters), and what happened, for
the caller to count. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from oscar_stream.config import SourceSettings
from oscar_stream.core.deadletter import deadletter_record
from oscar_stream.core.errors import InvalidEvent
from oscar_stream.core.events import StorageEvent
from oscar_stream.core.records import CLOUDEVENTS_HEADERS, Origin, OutRecord
from oscar_stream.normalize.dcache_events import EventLoss
from oscar_stream.normalize.dispatch import decode_headers, parse_raw
from oscar_stream.topics import TopicNames


@dataclass
class Normalized:
    source: str
    records: list[OutRecord] = field(default_factory=list)
    events: list[StorageEvent] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)  # reasons, one per dead-letter record
    ignored: bool = False
    lost: bool = False  # dCache said events were dropped


def normalize_record(
    names: TopicNames,
    sources: Mapping[str, SourceSettings],
    origin: Origin,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] | None,
) -> Normalized:
    source_id = names.source_of_raw(origin.topic) or origin.topic
    payload = value or b""
    out = Normalized(source_id)

    def dead(reason: str) -> None:
        out.dead.append(reason)
        out.records.append(OutRecord(names.deadletter, source_id.encode(),
                                     deadletter_record("normalize", source_id, reason, payload, origin)))

    source = sources.get(source_id)
    if source is None:
        dead(f"unknown source: no source {source_id!r} is configured for topic {origin.topic}")
        return out
    try:
        outcome = parse_raw(payload, source, decode_headers(headers))
    except EventLoss as err:
        out.lost = True
        dead(str(err))
        return out
    except InvalidEvent as err:
        dead(str(err))
        return out
    out.ignored = outcome.ignored is not None
    for reject in outcome.rejects:
        dead(reject)
    out.events = outcome.events
    out.records += [OutRecord(names.events, e.partition_key, e.to_json(), CLOUDEVENTS_HEADERS) for e in outcome.events]
    return out
