"""dCache storage events (frontend SSE channel, ``inotify`` and ``SYSTEM`` messages)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from oscar_stream.core.events import CREATED, REMOVED, EventType, StorageEvent, check_key
from oscar_stream.core.ids import identity_id
from oscar_stream.normalize.outcome import ParseError, ParseOutcome

# A file is complete when it is closed after writing, or moved into the watched folder. IN_CREATE is not
# enough: the job would read a half-written file.
_TRIGGERS: dict[str, EventType] = {
    "IN_CLOSE_WRITE": CREATED,
    "IN_MOVED_TO": CREATED,
    "IN_DELETE": REMOVED,
    "IN_MOVED_FROM": REMOVED,
}
LOSS_TYPES = frozenset({"EVENT_LOSS"})


class EventLoss(ParseError):
    """dCache says events were dropped (SYSTEM EVENT_LOSS or an IN_Q_OVERFLOW mask)."""


@dataclass(frozen=True)
class SseContext:
    """What the watcher knows about one SSE message beyond its data: its id, kind and subscription."""

    event: str  # "inotify" or "SYSTEM"
    sse_id: str | None
    channel: str
    path: str | None  # the folder subscribed by the message's subscription


def _mask(event: dict[str, Any]) -> list[str]:
    mask = event.get("mask")
    if not isinstance(mask, list) or not all(isinstance(m, str) for m in mask):
        raise ParseError("event.mask must be a list of flag names")
    return mask


def parse_dcache_message(
    payload: bytes, sse: SseContext, storage: str, received_at: str
) -> ParseOutcome:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        raise ParseError(f"dCache SSE data is not JSON: {err}") from err
    if not isinstance(doc, dict):
        raise ParseError("dCache SSE data must be a JSON object")
    if sse.event == "SYSTEM":
        kind = doc.get("type")
        if kind in LOSS_TYPES:
            raise EventLoss(f"dCache reported {kind} on channel {sse.channel}: events were dropped by the server")
        return ParseOutcome(ignored=f"dCache SYSTEM message {kind!r}")
    if sse.event != "inotify":
        return ParseOutcome(ignored=f"dCache message of kind {sse.event!r}")
    event = doc.get("event")
    if not isinstance(event, dict):
        raise ParseError("dCache inotify message without an 'event' object")
    mask = _mask(event)
    if "IN_Q_OVERFLOW" in mask:
        raise EventLoss(f"dCache queue overflow (IN_Q_OVERFLOW) on channel {sse.channel}: events were dropped")
    if "IN_ISDIR" in mask:
        return ParseOutcome(ignored=f"directory event {mask}")
    trigger = next((flag for flag in mask if flag in _TRIGGERS), None)
    if trigger is None:
        return ParseOutcome(ignored=f"{'/'.join(mask)} does not mean a complete file")
    name = event.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        raise ParseError(f"event.name must be a file name, got {name!r}")
    if not sse.path:
        raise ParseError(f"unknown subscription {doc.get('subscription')!r}: no watched path for it")
    path = check_key(f"{sse.path.rstrip('/')}/{name}", "dCache path")
    return ParseOutcome(events=[StorageEvent(
        id=identity_id("dcache", storage, path, sse.channel, sse.sse_id),
        type=_TRIGGERS[trigger],
        time=received_at,
        storage=storage,
        kind="dcache",
        bucket=None,
        key=path,
        action=trigger,
        sequencer=sse.sse_id,
        received_at=received_at,
    )])
