"""A worker's share of a service's concurrency limit.

The limit holds across every worker of a deployment without any coordination between them: it is split over
the partitions of the invocations topic (each worker owns some of them), as evenly as integers allow. The
slots left over after an even split go to consecutive partitions, starting at one chosen by the service's
name: consumer-group assignors hand out partitions by their number modulo the number of workers (0, 2, 4 and
1, 3, 5 for two), so every worker gets its fair part of them. A worker's share is the sum over its partitions.
The shares add up to the limit exactly, except that a worker that owns partitions always gets at least one
slot (otherwise the invocations on its partitions would never run): then the limit can be exceeded, by at
most the number of workers minus the limit.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable


def partition_quota(limit: int, partition: int, partitions: int, service: str) -> int:
    rank = (partition - zlib.crc32(service.encode())) % partitions
    return limit // partitions + (1 if rank < limit % partitions else 0)


def worker_share(limit: int, owned: Iterable[int], partitions: int, service: str) -> int:
    owned = list(owned)
    if not owned:
        return 0
    return max(1, sum(partition_quota(limit, p, partitions, service) for p in owned))
