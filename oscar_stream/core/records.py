"""What a stage hands to the Kafka edge: records to write, and where a consumed record came from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone (deletes the key from a compacted topic)
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def size(self) -> int:
        """Bytes Kafka counts against its request limit (value, key and headers; framing aside)."""
        size = len(self.value or b"") + len(self.key or b"")
        for name, value in self.headers:  # a loop, not sum() of a generator: half the cost, on every write
            size += len(name) + len(value)
        return size


@dataclass(frozen=True, slots=True)
class Origin:
    topic: str
    partition: int
    offset: int


# Headers the gateway and the dCache watcher put on raw records (stores writing to Kafka directly add none).
H_SOURCE = "oscar-source"
H_RECEIVED_AT = "oscar-received-at"
H_TRANSPORT = "oscar-transport"
H_SSE_EVENT = "oscar-sse-event"
H_SSE_ID = "oscar-sse-id"
H_DCACHE_CHANNEL = "oscar-dcache-channel"
H_DCACHE_PATH = "oscar-dcache-path"
CLOUDEVENTS_HEADERS = (("content-type", b"application/cloudevents+json"),)
