"""Which offset of a partition may be committed when records finish out of order.

The launch agent works on many invocations of one partition at once (different services, different speeds);
an offset may only be committed once every record before it is finished, or a crash would skip the unfinished
ones."""

from __future__ import annotations

from collections import deque


class OffsetTracker:
    def __init__(self) -> None:
        self._open: deque[int] = deque()  # consumed offsets, oldest first, until finished in order
        self._finished: set[int] = set()
        self._next: int | None = None  # the offset to commit: everything before it is finished

    def consumed(self, offset: int) -> None:
        if not self._open and self._next is None:
            self._next = offset
        self._open.append(offset)

    def finished(self, offset: int) -> None:
        self._finished.add(offset)
        while self._open and self._open[0] in self._finished:
            done = self._open.popleft()
            self._finished.discard(done)
            self._next = done + 1

    @property
    def commit_position(self) -> int | None:
        """The offset to commit (the first unfinished one, or one past the last consumed), None before any."""
        if self._open:
            return self._open[0]
        return self._next

    @property
    def unfinished(self) -> int:
        return len(self._open)
