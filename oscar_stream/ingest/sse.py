"""An incremental Server-Sent Events parser (the HTML standard's event-stream format)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SseMessage:
    event: str
    data: str
    id: str | None
    retry_ms: int | None = None


class SseParser:
    """Feed bytes as they arrive; complete messages come out. ``last_id`` persists across messages."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._retry: int | None = None
        self.last_id: str | None = None

    def feed(self, chunk: bytes) -> Iterator[SseMessage]:
        self._buffer += chunk
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return
            end, skip = cut
            line = self._buffer[:end].decode("utf-8", errors="replace")
            self._buffer = self._buffer[end + skip:]
            message = self._line(line)
            if message is not None:
                yield message

    def _line(self, line: str) -> SseMessage | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SseMessage | None:
        data, event, retry = self._data, self._event, self._retry
        self._data, self._event, self._retry = [], "", None
        if not data:
            return None
        return SseMessage(event=event or "message", data="\n".join(data), id=self.last_id, retry_ms=retry)


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """(index of the line end, its length): CRLF, LF or CR. A trailing CR may still be followed by LF."""
    lf, cr = buffer.find(b"\n"), buffer.find(b"\r")
    if cr == -1 or (lf != -1 and lf < cr):
        return (lf, 1) if lf != -1 else None
    if cr + 1 == len(buffer):
        return None
    return cr, 2 if buffer[cr + 1] == 0x0A else 1
