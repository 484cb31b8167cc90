"""Choose the parser for a raw record from its source's kind, and carry the raw record's metadata."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from oscar_stream.config import SourceSettings
from oscar_stream.normalize.canonical import now_rfc3339
from oscar_stream.normalize.dcache_events import SseContext, parse_dcache_message
from oscar_stream.normalize.outcome import ParseError, ParseOutcome
from oscar_stream.normalize.s3_records import parse_s3_notification

# Headers the gateway and the dCache watcher put on raw records (stores writing to Kafka directly add none).
H_SOURCE = "oscar-source"
H_RECEIVED_AT = "oscar-received-at"
H_TRANSPORT = "oscar-transport"
H_SSE_EVENT = "oscar-sse-event"
H_SSE_ID = "oscar-sse-id"
H_DCACHE_CHANNEL = "oscar-dcache-channel"
H_DCACHE_PATH = "oscar-dcache-path"


def parse_raw(payload: bytes, source: SourceSettings, headers: Mapping[str, str]) -> ParseOutcome:
    received_at = headers.get(H_RECEIVED_AT) or now_rfc3339()
    if source.kind == "dcache":
        sse = SseContext(
            event=headers.get(H_SSE_EVENT, "inotify"),
            sse_id=headers.get(H_SSE_ID),
            channel=headers.get(H_DCACHE_CHANNEL, ""),
            path=headers.get(H_DCACHE_PATH),
        )
        return parse_dcache_message(payload, sse, source.id, received_at)
    return parse_s3_notification(payload, source.id, source.key_encoding, received_at)


def decode_headers(raw: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw or ():
        try:
            out[name] = value.decode()
        except UnicodeDecodeError as err:
            raise ParseError(f"header {name!r} is not UTF-8") from err
    return out
