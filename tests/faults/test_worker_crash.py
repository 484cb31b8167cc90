"""kill -9 of workers of the local executor mid-stream, and one service's work spread over several workers.

Each test reports: inputs, results, lost (inputs without a result), executed twice (scripts that ran more
than once: those running when the worker died), duplicate results, and the times to recover."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from oscar_stream.config import Settings
from oscar_stream.core.ids import created_object_id, identity_id
from oscar_stream.core.results import StoredObject
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.route.files import load_routing_files
from oscar_stream.storage.s3 import S3Store
from oscar_stream.worker.publish import apply_services
from tests.support.faults import Worker, duplicates, notify, partition_of, until, upload_objects, wait_results
from tests.support.processes import process_gone
from tests.support.stack import write_config

pytestmark = pytest.mark.stack

SERVICE = """\
version: oscar-stream/v1
services:
  - name: copy
    image: alpine:3.22
    concurrency: {concurrency}{warm}
    script_inline: |
      started=$(date +%s.%N)
      echo "started $started $STORAGE_OBJECT_KEY" >> "$RUNS"
      sleep {sleep}
      echo "ended $started $(date +%s.%N) $STORAGE_OBJECT_KEY" >> "$RUNS"
      cp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"
    environment: {{variables: {{RUNS: "{runs}"}}}}
    input: [{{storage_provider: minio, path: {bucket}/in}}]
    output: [{{storage_provider: minio, path: {bucket}/out}}]
"""


async def _setup(config: dict[str, Any], tmp_path: Path, count: int, concurrency: int, sleep: float,
                 warm: bool = False) -> tuple[Settings, list[Any], Path]:
    settings = write_config(config, tmp_path / "oscar-stream.yaml")
    await apply_topics(settings)
    bucket = settings.kafka.topic_prefix
    runs = tmp_path / "runs.log"
    table = tmp_path / "table.yaml"
    replicas = f"\n    warm: {{max_replicas: {concurrency}, concurrency: 1}}" if warm else ""
    table.write_text(SERVICE.format(concurrency=concurrency, sleep=sleep, runs=runs, bucket=bucket, warm=replicas))
    await apply_services(settings, load_routing_files([table]).table.services)
    store = S3Store(settings.storages[0])
    try:
        objects = await upload_objects(store, bucket, "in", count, tmp_path)
    finally:
        await store.close()
    return settings, objects, runs


def _runs(log: Path) -> tuple[Counter[str], list[tuple[float, float]]]:
    """How often each key's script started, and the (start, end) of every script that ran to its end (a
    script killed with its worker has no end)."""
    started: Counter[str] = Counter()
    intervals = []
    for line in log.read_text().splitlines() if log.exists() else []:
        kind, rest = line.split(" ", 1)
        if kind == "started":
            started[rest.split(" ", 1)[1]] += 1
        else:
            begin, end, _ = rest.split(" ", 2)
            intervals.append((float(begin), float(end)))
    return started, intervals


def _peak(runs: tuple[Counter[str], list[tuple[float, float]]]) -> int:
    """Most scripts running at one moment (of those that ran to their end)."""
    edges = sorted([(start, 1) for start, _ in runs[1]] + [(end, -1) for _, end in runs[1]])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def _ran_twice(runs: tuple[Counter[str], list[tuple[float, float]]]) -> int:
    """Keys whose script started more than once."""
    return sum(1 for n in runs[0].values() if n > 1)


@pytest.mark.parametrize("executor", ["local", "warm"])
async def test_a_killed_worker_is_restarted_and_nothing_is_lost_or_published_twice(
        config: dict[str, Any], tmp_path: Path, figures: dict[str, Any], executor: str) -> None:
    """Jobs of the local executor, or the same service's events on warm replicas (killed with their worker)."""
    count, concurrency = 300, 8
    settings, objects, runs_log = await _setup(config, tmp_path, count, concurrency, 0.1, warm=executor == "warm")
    worker = Worker(config, tmp_path, "w1", instance_id="faults-w1")
    worker.start()
    try:
        await worker.wait_ready()
        await notify(settings, objects)
        before = {r["invocation_id"] for r in await wait_results(settings, count // 3)}
        killed = worker.kill()
        restarted = worker.start()
        ready_s = await worker.wait_ready()
        while True:  # the first invocation finished by the restarted worker
            found = await wait_results(settings, len(before) + 1, timeout_s=60)
            if {r["invocation_id"] for r in found} - before:
                break
        resumed_s = time.monotonic() - killed
        found = await wait_results(settings, count)
    finally:
        worker.stop()
    runs = _runs(runs_log)
    distinct = {r["invocation_id"] for r in found}
    figures.update({"inputs": count, "results": len(found), "lost": count - len(distinct),
                    "executed twice": _ran_twice(runs), "duplicate results": duplicates(found),
                    "restart -> ready (s)": ready_s, "kill -> work resumes (s)": resumed_s,
                    "kill -> restart (s)": restarted - killed, "concurrency limit": concurrency,
                    "peak scripts at once": _peak(runs)})
    assert len(distinct) == count and all(r["status"] == "succeeded" for r in found)
    assert {r["executor"] for r in found} == {executor}
    assert duplicates(found) == 0
    assert _ran_twice(runs) <= concurrency  # only those running at the kill
    assert ready_s < 15 and resumed_s < 15


async def test_two_workers_share_one_service_and_the_survivor_takes_over(
        config: dict[str, Any], tmp_path: Path, figures: dict[str, Any]) -> None:
    count, concurrency = 240, 4
    settings, objects, runs_log = await _setup(config, tmp_path, count, concurrency, 0.3)
    partition_by_key = {o.key: _partition(o) for o in objects}
    workers = [Worker(config, tmp_path, f"w{i}", instance_id=f"faults-2w{i}") for i in (1, 2)]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            await worker.wait_ready()
        await until(lambda: _owned(workers, [3, 3]), what="three partitions each")
        await notify(settings, objects)
        half = await wait_results(settings, count // 2)
        by_worker = Counter(next(w.name for w in workers if r["job"].startswith(w.runs_dir)) for r in half)
        victim, survivor = workers
        victims = {partition_of(r["invocation_id"]) for r in half if r["job"].startswith(victim.runs_dir)}
        killed, killed_at = victim.kill(), time.time()
        await until(lambda: _owned([survivor], [6]), what="the survivor owns every partition")
        taken_over_s = time.monotonic() - killed
        await until(lambda: _started_after(runs_log, killed_at, victims, partition_by_key) > 0,
                    what="the victim's work started again")
        found = await wait_results(settings, count)
    finally:
        for worker in workers:
            worker.stop()
    runs = _runs(runs_log)
    resumed_s = _started_after(runs_log, killed_at, victims, partition_by_key) - killed_at
    distinct = {r["invocation_id"] for r in found}
    split = by_worker["w1"] / max(1, sum(by_worker.values()))
    figures.update({"inputs": count, "results": len(found), "lost": count - len(distinct),
                    "executed twice": _ran_twice(runs), "duplicate results": duplicates(found),
                    "share of w1 before the kill": round(split, 3), "concurrency limit": concurrency,
                    "peak scripts at once (2 workers)": _peak(runs),
                    "kill -> survivor owns the partitions (s)": taken_over_s,
                    "kill -> survivor starts the victim's work (s)": resumed_s})
    assert len(distinct) == count and duplicates(found) == 0
    assert 0.4 <= split <= 0.6
    assert _peak(runs) <= concurrency
    assert _ran_twice(runs) <= concurrency
    assert resumed_s < 10


def _partition(stored: StoredObject) -> int:
    """The invocations partition of the service's invocation for ``stored`` (as route computes it)."""
    event_id = created_object_id(stored.storage, stored.bucket, stored.key, None, stored.etag, None)
    return partition_of(identity_id("invocation", "copy", event_id))


async def _owned(workers: list[Worker], expected: list[int]) -> bool:
    return [await w.metric("oscar_stream_partitions_owned", stage="launch") for w in workers] == expected


def _started_after(log: Path, moment: float, partitions: set[int], partition_by_key: dict[str, int]) -> float:
    """The first time after ``moment`` a script of an invocation on ``partitions`` started (0: none yet)."""
    times = [float(line.split(" ")[1]) for line in log.read_text().splitlines()
             if line.startswith("started ") and float(line.split(" ")[1]) > moment
             and partition_by_key.get(line.split(" ", 2)[2]) in partitions]
    return min(times, default=0.0)


async def test_three_workers_share_one_service_within_its_limit(
        config: dict[str, Any], tmp_path: Path, figures: dict[str, Any]) -> None:
    count, concurrency = 180, 6
    settings, objects, runs_log = await _setup(config, tmp_path, count, concurrency, 0.3)
    workers = [Worker(config, tmp_path, f"w{i}", instance_id=f"faults-3w{i}") for i in (1, 2, 3)]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            await worker.wait_ready()
        await until(lambda: _owned(workers, [2, 2, 2]), what="two partitions each")
        await notify(settings, objects)
        half = await wait_results(settings, count // 2)  # every worker still has work: the split is the rates'
        found = await wait_results(settings, count)
    finally:
        for worker in workers:
            worker.stop()
    by_worker = Counter(next(w.name for w in workers if r["job"].startswith(w.runs_dir)) for r in half)
    shares = {name: round(n / len(half), 3) for name, n in sorted(by_worker.items())}
    runs = _runs(runs_log)
    figures.update({"inputs": count, "results": len(found), "shares at half-way": shares,
                    "concurrency limit": concurrency,
                    "peak scripts at once (3 workers)": _peak(runs)})
    assert len({r["invocation_id"] for r in found}) == count and duplicates(found) == 0
    assert all(0.27 <= share <= 0.4 for share in shares.values()) and len(shares) == 3
    assert _peak(runs) <= concurrency


STARTS_A_CHILD = """\
version: oscar-stream/v1
services:
  - name: lingers
    image: alpine:3.22
    concurrency: 2{warm}
    script_inline: |
      sleep 300 &
      echo "$$ $!" >> "$PIDS"
      wait
    environment: {{variables: {{PIDS: "{pids}"}}}}
    input: [{{storage_provider: minio, path: {bucket}/in}}]
"""


@pytest.mark.parametrize("executor", ["local", "warm"])
async def test_a_killed_workers_scripts_die_with_it_with_what_they_started(
        config: dict[str, Any], tmp_path: Path, executor: str) -> None:
    """As a pod's processes die with it: a script left running would race the partition's new owner."""
    settings = write_config(config, tmp_path / "oscar-stream.yaml")
    await apply_topics(settings)
    bucket, pids_file = settings.kafka.topic_prefix, tmp_path / "pids"
    table = tmp_path / "table.yaml"
    warm = "\n    warm: {max_replicas: 2, concurrency: 1}" if executor == "warm" else ""
    table.write_text(STARTS_A_CHILD.format(warm=warm, pids=pids_file, bucket=bucket))
    await apply_services(settings, load_routing_files([table]).table.services)
    store = S3Store(settings.storages[0])
    try:
        objects = await upload_objects(store, bucket, "in", 2, tmp_path)
    finally:
        await store.close()
    worker = Worker(config, tmp_path, "w1")
    worker.start()
    try:
        await worker.wait_ready()
        await notify(settings, objects)
        await until(lambda: pids_file.exists() and len(pids_file.read_text().split()) == 4,
                    what="both scripts running")
        pids = [int(p) for p in pids_file.read_text().split()]
        assert not any(process_gone(pid) for pid in pids)
        worker.kill()
        await until(lambda: all(process_gone(pid) for pid in pids), timeout_s=10,
                    what="the scripts and their children gone")
    finally:
        worker.stop()
        for pid in [int(p) for p in pids_file.read_text().split()] if pids_file.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
