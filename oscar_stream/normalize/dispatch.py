"""Choose the parser for a raw record from its source's kind, and read the raw record's metadata."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from oscar_stream.config import SourceSettings
from oscar_stream.core.errors import InvalidEvent
from oscar_stream.core.records import (
    H_DCACHE_CHANNEL,
    H_DCACHE_PATH,
    H_RECEIVED_AT,
    H_SSE_EVENT,
    H_SSE_ID,
)
from oscar_stream.core.times import normalize_time, now_rfc3339
from oscar_stream.normalize.dcache_events import SseContext, parse_dcache_message
from oscar_stream.normalize.outcome import ParseError, ParseOutcome
from oscar_stream.normalize.s3_records import parse_s3_notification


def received_at(headers: Mapping[str, str]) -> str:
    """When the gateway or watcher received the notification; now if the header is missing or is not a time
    (stores writing to Kafka directly set no header, and a header cannot be trusted to be well-formed)."""
    value = headers.get(H_RECEIVED_AT)
    if value:
        try:
            return normalize_time(value, H_RECEIVED_AT)
        except InvalidEvent:
            pass
    return now_rfc3339()


def parse_raw(payload: bytes, source: SourceSettings, headers: Mapping[str, str]) -> ParseOutcome:
    received = received_at(headers)
    if source.kind == "dcache":
        sse = SseContext(
            event=headers.get(H_SSE_EVENT, "inotify"),
            sse_id=headers.get(H_SSE_ID),
            channel=headers.get(H_DCACHE_CHANNEL, ""),
            path=headers.get(H_DCACHE_PATH),
        )
        return parse_dcache_message(payload, sse, source.id, received)
    return parse_s3_notification(payload, source.id, source.key_encoding, received)


def decode_headers(raw: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw or ():
        try:
            out[name] = value.decode()
        except UnicodeDecodeError as err:
            raise ParseError(f"header {name!r} is not UTF-8") from err
    return out
