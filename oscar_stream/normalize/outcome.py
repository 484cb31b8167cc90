"""What parsing one raw notification gives: events, rejected parts (each with a reason), or a non-event."""

from __future__ import annotations

from dataclasses import dataclass, field

from oscar_stream.core.errors import InvalidEvent
from oscar_stream.core.events import StorageEvent


class ParseError(InvalidEvent):
    """The payload (or one record of it) cannot become a canonical event; the message says why."""


@dataclass
class ParseOutcome:
    events: list[StorageEvent] = field(default_factory=list)
    rejects: list[str] = field(default_factory=list)
    ignored: str | None = None  # set for non-events such as a store's test message
