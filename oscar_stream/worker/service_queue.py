"""One service's waiting invocations, taken in turn from each partition they came from.

Within a partition, invocations start in the order they were written; across partitions the queue takes one
from each in turn. So a partition a worker has just taken over (its invocations arrive behind everything the
worker had already read of its own partitions) starts its work with the next free slot, not after the rest."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class ServiceQueue(Generic[T]):
    def __init__(self) -> None:
        self._lanes: dict[int, deque[T]] = {}
        self._turn: deque[int] = deque()  # partitions with waiting items, the next one first
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def append(self, partition: int, item: T) -> None:
        lane = self._lanes.get(partition)
        if lane is None:
            lane = self._lanes[partition] = deque()
        if not lane:
            self._turn.append(partition)
        lane.append(item)
        self._size += 1

    def popleft(self) -> T:
        partition = self._turn.popleft()
        lane = self._lanes[partition]
        item = lane.popleft()
        if lane:
            self._turn.append(partition)
        self._size -= 1
        return item

    def drop(self, partitions: Iterable[int]) -> int:
        """Forget the items of ``partitions``; returns how many there were."""
        dropped = 0
        for partition in set(partitions):
            lane = self._lanes.pop(partition, None)
            if lane:
                dropped += len(lane)
                self._turn.remove(partition)
        self._size -= dropped
        return dropped
