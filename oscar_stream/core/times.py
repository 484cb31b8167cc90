"""Times as oscar-stream writes them (RFC 3339, UTC, milliseconds) and reads them (any ISO 8601, validated)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from oscar_stream.core.errors import InvalidEvent


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC with milliseconds; a naive time is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rfc3339_seconds(moment: datetime) -> str:
    """``moment`` in UTC to the second (as Kubernetes and OSCAR write times)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def rfc3339_millis(millis: int) -> str:
    """Milliseconds since the epoch in oscar-stream's form (no float on the way: 0.341 s stays .341)."""
    seconds, rest = divmod(millis, 1000)
    return rfc3339(datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest * 1000))


_last_now: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """The current time in oscar-stream's form; formatted once per millisecond (a gateway stamps every request
    with it, ~10 per millisecond under load, and formatting costs a few microseconds)."""
    global _last_now
    millis = time.time_ns() // 1_000_000
    if millis != _last_now[0]:
        _last_now = (millis, rfc3339_millis(millis))
    return _last_now[1]


def parse_time(text: str, where: str = "time") -> datetime:
    """An aware datetime from ISO 8601 text (naive = UTC). Raises :class:`InvalidEvent` for text that is not a
    time or a time that cannot be expressed in UTC (year 1 with a positive offset, year 9999 with a negative)."""
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError, TypeError) as err:
        raise InvalidEvent(f"{where} {text!r} is not an ISO 8601 time in the range of years 1-9999 UTC") from err


def normalize_time(text: str, where: str = "time") -> str:
    """``text`` validated and rewritten as oscar-stream's RFC 3339 form."""
    moment = parse_time(text, where)
    if len(text) == 24 and text[-1] == "Z" and text[19] == ".":
        return text  # already in that form (the common case on the hot path): no need to format it again
    return rfc3339(moment)


def age_seconds(moment: str) -> float:
    """Seconds since an RFC 3339 time (0 if it cannot be read or lies in the future)."""
    try:
        then = parse_time(moment)
    except InvalidEvent:
        return 0.0
    return max(0.0, (datetime.now(UTC) - then).total_seconds())
