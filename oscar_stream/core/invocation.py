"""One (service, event) that must run. Its id depends only on the service name and the event id, so every copy
of the same invocation (a redelivery, the store's notification and the job's own output event) has one id."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from oscar_stream.core.errors import InvalidEvent
from oscar_stream.core.events import StorageEvent
from oscar_stream.core.ids import identity_id

_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Invocation:
    id: str
    service: str
    service_version: str
    event: StorageEvent

    @classmethod
    def of(cls, service: str, version: str, event: StorageEvent) -> Invocation:
        return cls(id=identity_id("invocation", service, event.id), service=service, service_version=version,
                   event=event)

    def to_json(self) -> bytes:
        return orjson.dumps({"id": self.id, "service": self.service, "service_version": self.service_version,
                             "event": self.event.to_cloudevent()})

    @classmethod
    def from_json(cls, payload: bytes) -> Invocation:
        """Raises :class:`InvalidEvent` (only) for anything that is not a well-formed invocation."""
        try:
            doc: Any = orjson.loads(payload)
        except orjson.JSONDecodeError as err:
            raise InvalidEvent(f"invocation is not JSON: {err}") from err
        if not isinstance(doc, dict):
            raise InvalidEvent("an invocation must be a JSON object")
        invocation_id, service, version = doc.get("id"), doc.get("service"), doc.get("service_version")
        if not isinstance(invocation_id, str) or not _ID.match(invocation_id):
            raise InvalidEvent("invocation 'id' must be 32 hexadecimal digits")
        if not isinstance(service, str) or not service or len(service) > 253:
            raise InvalidEvent("invocation 'service' must be a non-empty name")
        if not isinstance(version, str):
            raise InvalidEvent("invocation 'service_version' must be a string")
        return cls(id=invocation_id, service=service, service_version=version,
                   event=StorageEvent.from_cloudevent(doc.get("event")))
