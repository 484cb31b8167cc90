"""One raw Kafka record -> the records to produce (canonical events and dead-letters). Pure: the agent only
does the I/O around it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from oscar_stream import metrics
from oscar_stream.config import SourceSettings
from oscar_stream.deadletter import Origin, deadletter_record, reason_label
from oscar_stream.kafka.out_record import OutRecord
from oscar_stream.normalize.dcache_events import EventLoss
from oscar_stream.normalize.dispatch import decode_headers, parse_raw
from oscar_stream.normalize.outcome import ParseError
from oscar_stream.topics import TopicNames

CLOUDEVENTS_HEADERS = (("content-type", b"application/cloudevents+json"),)


def normalize_record(
    names: TopicNames,
    sources: Mapping[str, SourceSettings],
    origin: Origin,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] | None,
) -> list[OutRecord]:
    source_id = names.source_of_raw(origin.topic) or origin.topic
    payload = value or b""

    def dead(reason: str) -> OutRecord:
        metrics.DEADLETTERED.labels("normalize", reason_label(reason)).inc()
        return OutRecord(names.deadletter, source_id.encode(),
                         deadletter_record("normalize", source_id, reason, payload, origin))

    source = sources.get(source_id)
    if source is None:
        return [dead(f"unknown source: no source {source_id!r} is configured for topic {origin.topic}")]
    try:
        outcome = parse_raw(payload, source, decode_headers(headers))
    except EventLoss as err:
        metrics.DCACHE_EVENTS_LOST.labels(source_id).inc()
        return [dead(str(err))]
    except ParseError as err:
        return [dead(str(err))]
    if outcome.ignored:
        metrics.EVENTS_IGNORED.labels(source_id).inc()
    out = [dead(reject) for reject in outcome.rejects]
    for event in outcome.events:
        metrics.count(metrics.EVENTS_NORMALIZED, source_id, event.type.rsplit(".", 1)[-1])
        out.append(OutRecord(names.events, event.partition_key, event.to_json(), CLOUDEVENTS_HEADERS))
    return out
