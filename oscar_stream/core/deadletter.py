"""Dead-letter records: the original bytes, where they came from and a reason a human can act on."""

from __future__ import annotations

import base64
from typing import Any, Literal

import orjson

from oscar_stream.core.records import Origin
from oscar_stream.core.times import now_rfc3339

Stage = Literal["ingest", "normalize", "route", "launch", "dcache"]

# Base64 of this much stays well inside one Kafka request (1 MiB). A longer payload is cut: the whole original
# stays in its own topic, at the origin the record names.
MAX_PAYLOAD_BYTES = 512 * 1024
MAX_REASON_CHARS = 2000

_KNOWN_REASONS = (
    "not json", "no 'records'", "'records' is empty", "expected a json object", "records[", "dcache reported",
    "dcache queue overflow", "unknown source", "invalid canonical event", "invalid invocation", "unknown service",
    "record too large", "internal error",
)


def deadletter_record(stage: Stage, source: str, reason: str, payload: bytes, origin: Origin | None = None) -> bytes:
    doc: dict[str, Any] = {
        "stage": stage,
        "source": source,
        "reason": reason[:MAX_REASON_CHARS],
        "payload_b64": base64.b64encode(payload[:MAX_PAYLOAD_BYTES]).decode(),
        "payload_bytes": len(payload),
        "payload_truncated": len(payload) > MAX_PAYLOAD_BYTES,
        "origin": None if origin is None else {"topic": origin.topic, "partition": origin.partition,
                                               "offset": origin.offset},
        "failed_at": now_rfc3339(),
    }
    return orjson.dumps(doc)


def reason_label(reason: str) -> str:
    """A short, bounded metric label for a reason (the first words before any detail)."""
    head = reason.split(":", 1)[0].strip().lower()
    for known in _KNOWN_REASONS:
        if head.startswith(known):
            return known.strip("'[").replace("'", "").replace(" ", "_")
    return "other"
