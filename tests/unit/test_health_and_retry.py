"""What /readyz and /healthz are computed from, and the one retry helper."""

from __future__ import annotations

import time

import pytest

from oscar_stream.health import Health
from oscar_stream.retry import Backoff, retrying


def test_ready_only_when_every_part_runs_and_steps() -> None:
    health = Health(stall_timeout_s=10)
    assert not health.report()["ready"]  # nothing has started yet
    agent, table = health.component("route"), health.component("services")
    agent.running()
    assert not health.report()["ready"]  # the routing table is still loading
    table.running()
    assert health.report()["ready"] and health.report()["alive"]
    agent.recovering("KafkaConnectionError: Unable to bootstrap")
    report = health.report()
    assert not report["ready"] and report["alive"]
    assert report["components"]["route"]["detail"].startswith("KafkaConnectionError")


def test_a_part_that_stops_stepping_is_unready_then_dead() -> None:
    health = Health(stall_timeout_s=10)
    part = health.component("launch")
    part.running()
    part.last_step = time.monotonic() - 11
    assert not health.report()["ready"] and health.report()["alive"]
    part.last_step = time.monotonic() - 21
    assert not health.report()["alive"]
    part.beat()
    assert health.report()["ready"]


def test_backoff_grows_is_capped_and_jittered() -> None:
    backoff = Backoff(base_s=1.0, cap_s=8.0)
    delays = [backoff.next_delay() for _ in range(8)]
    assert all(0.5 * min(8.0, 2.0**n) <= d <= min(8.0, 2.0**n) for n, d in enumerate(delays))
    backoff.reset()
    assert backoff.next_delay() <= 1.0
    assert backoff.delay(hint_s=3.0) == 3.0


async def test_retrying_retries_what_it_may_and_gives_up_after_the_attempts() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("away")
        return "ok"

    assert await retrying(flaky, what="t", retryable=lambda e: isinstance(e, ConnectionError),
                          backoff=Backoff(0.001, 0.002)) == "ok"
    assert len(calls) == 3

    async def refused() -> str:
        calls.append(1)
        raise PermissionError("no")

    calls.clear()
    with pytest.raises(PermissionError):
        await retrying(refused, what="t", retryable=lambda e: isinstance(e, ConnectionError))
    assert len(calls) == 1

    async def away() -> str:
        calls.append(1)
        raise ConnectionError("away")

    calls.clear()
    with pytest.raises(ConnectionError):
        await retrying(away, what="t", retryable=lambda e: True, attempts=4, backoff=Backoff(0.001, 0.002))
    assert len(calls) == 4
