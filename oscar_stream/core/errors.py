"""One root for every error oscar-stream raises on purpose; each message says what is wrong and what to do."""

from __future__ import annotations


class OscarStreamError(Exception):
    """Root of oscar-stream's own errors."""


class InvalidEvent(OscarStreamError, ValueError):
    """A notification, canonical event, invocation or result that cannot be used; the message says why."""


class RecordTooLarge(OscarStreamError, ValueError):
    """A record that no Kafka request can carry."""
