"""The launch agent's bookkeeping: which offset may be committed when invocations finish out of order, and a
worker's share of a service's concurrency limit."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from oscar_stream.launch.quota import partition_quota, worker_share
from oscar_stream.worker.offsets import OffsetTracker
from oscar_stream.worker.service_queue import ServiceQueue


def test_commit_position_waits_for_the_oldest_unfinished_offset() -> None:
    tracker = OffsetTracker()
    assert tracker.commit_position is None
    for offset in (10, 11, 12):
        tracker.consumed(offset)
    assert tracker.commit_position == 10
    tracker.finished(12)
    tracker.finished(11)
    assert tracker.commit_position == 10 and tracker.unfinished == 3
    tracker.finished(10)
    assert tracker.commit_position == 13 and tracker.unfinished == 0


@settings(max_examples=200, deadline=None)
@given(st.permutations(list(range(30))), st.integers(min_value=0, max_value=30))
def test_commit_position_never_passes_an_unfinished_offset(order: list[int], done: int) -> None:
    tracker = OffsetTracker()
    for offset in range(100, 130):
        tracker.consumed(offset)
    finished = {100 + i for i in order[:done]}
    for offset in finished:
        tracker.finished(offset)
    expected = next((o for o in range(100, 130) if o not in finished), 130)
    assert tracker.commit_position == expected


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=200), st.integers(min_value=1, max_value=24), st.text(min_size=1))
def test_partition_quotas_add_up_to_the_limit(limit: int, partitions: int, service: str) -> None:
    assert sum(partition_quota(limit, p, partitions, service) for p in range(partitions)) == limit


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=100), st.integers(min_value=1, max_value=4), st.text(min_size=1))
def test_shares_of_workers_splitting_partitions_round_robin(limit: int, workers: int, service: str) -> None:
    """What consumer-group assignors hand out (partition p to worker p mod n): every worker gets at least one
    slot; the shares add up to the limit, plus one for each worker whose partitions carry no slot of it; when
    the workers own equally many partitions and there are enough slots, no two differ by more than one."""
    partitions = 6
    owned = [[p for p in range(partitions) if p % workers == w] for w in range(workers)]
    quotas = [sum(partition_quota(limit, p, partitions, service) for p in o) for o in owned]
    shares = [worker_share(limit, o, partitions, service) for o in owned]
    assert min(shares) >= 1
    assert sum(shares) == limit + quotas.count(0)
    if limit >= workers and partitions % workers == 0:
        assert quotas.count(0) == 0 and max(shares) - min(shares) <= 1


def test_a_worker_without_partitions_runs_nothing_and_one_with_partitions_at_least_one() -> None:
    assert worker_share(5, [], 6, "s") == 0
    assert worker_share(1, [0], 6, "s") + worker_share(1, [1, 2, 3, 4, 5], 6, "s") == 2  # the one overshoot


def test_a_service_queue_takes_partitions_in_turn_and_keeps_order_within_one() -> None:
    queue: ServiceQueue[str] = ServiceQueue()
    for item in ("a1", "a2", "a3"):
        queue.append(0, item)
    queue.append(1, "b1")
    assert [queue.popleft() for _ in range(3)] == ["a1", "b1", "a2"]
    queue.append(2, "c1")
    queue.append(1, "b2")
    assert len(queue) == 3 and queue.drop([1, 5]) == 1
    assert [queue.popleft() for _ in range(len(queue))] == ["a3", "c1"] and not queue
