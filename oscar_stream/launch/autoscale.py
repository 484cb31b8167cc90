"""How many warm replicas a service should have, from the work itself: requests running and waiting."""

from __future__ import annotations

import math
from collections.abc import Sequence

from oscar_stream.route.model import WarmSpec


def wanted_replicas(spec: WarmSpec, running: int, waiting: int) -> int:
    """Enough replicas for everything running and waiting, within the service's bounds."""
    return min(spec.max_replicas, max(spec.min_replicas, math.ceil((running + waiting) / spec.concurrency)))


def replicas_to_start(spec: WarmSpec, replicas: int, starting: int, running: int, waiting: int) -> int:
    return max(0, wanted_replicas(spec, running, waiting) - replicas - starting)


def replicas_to_stop(spec: WarmSpec, idle_for: Sequence[float | None], running: int, waiting: int) -> list[int]:
    """Indexes of replicas to stop: idle ones (``idle_for`` None means busy) idle longer than ``spec.idle_s``,
    longest idle first, while more replicas remain than the work and ``min_replicas`` want."""
    keep = wanted_replicas(spec, running, waiting)
    candidates = sorted((i for i, idle in enumerate(idle_for) if idle is not None and idle >= spec.idle_s),
                        key=lambda i: -(idle_for[i] or 0.0))
    return candidates[:max(0, len(idle_for) - keep)]
