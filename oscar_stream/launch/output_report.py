"""How the in-pod upload helper reports what it uploaded: JSON rows in the container's termination message,
which Kubernetes caps at 4 KiB; when they do not fit, the message says how many rows the container's log holds
(one ``output: <row>`` line per object)."""

from __future__ import annotations

import orjson

from oscar_stream.core.errors import InvalidEvent
from oscar_stream.core.results import StoredObject

REPORT_LIMIT = 4096
OUTPUT_LINE = "output: "


def output_row(obj: StoredObject) -> list[object]:
    return [obj.storage, obj.bucket, obj.key, obj.size, obj.etag, obj.version_id]


def output_report(objects: list[StoredObject]) -> str:
    """The rows when they fit the termination message; else how many rows the log holds."""
    rows = orjson.dumps([output_row(o) for o in objects]).decode()
    return rows if len(rows) <= REPORT_LIMIT else orjson.dumps({"in_log": len(objects)}).decode()


def _object(row: object) -> StoredObject:
    if not isinstance(row, list) or len(row) != 6:
        raise InvalidEvent(f"an output row must be a list of 6 fields, not {row!r:.200}")
    return StoredObject(*row)


def read_report(message: str) -> list[StoredObject] | int:
    """The objects a termination message lists, or how many objects the log lists instead."""
    try:
        parsed = orjson.loads(message)
    except orjson.JSONDecodeError as err:
        raise InvalidEvent(f"unreadable output report {message[:200]!r}: {err}") from None
    if isinstance(parsed, dict) and isinstance(parsed.get("in_log"), int):
        return int(parsed["in_log"])
    if not isinstance(parsed, list):
        raise InvalidEvent(f"an output report must be a list of rows, not {message[:200]!r}")
    return [_object(row) for row in parsed]


def read_log_rows(log: str, expected: int) -> list[StoredObject]:
    """The ``output:`` lines of the upload container's log; all ``expected`` of them, or an error."""
    try:
        rows = [_object(orjson.loads(line[len(OUTPUT_LINE):])) for line in log.splitlines()
                if line.startswith(OUTPUT_LINE)]
    except orjson.JSONDecodeError as err:
        raise InvalidEvent(f"an unreadable output line in the upload log: {err}") from None
    if len(rows) != expected:
        raise InvalidEvent(f"the upload log lists {len(rows)} outputs, its report said {expected}")
    return rows
