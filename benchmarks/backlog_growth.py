"""How the cost grows with the work: a backlog of raw MinIO notifications, 10x larger each time (10k, 100k,
1M by default), drained by one ``worker --roles normalize``. For each size: events/s (between the first and
the last event's timestamp), the worker's peak RSS while draining, and its CPU per event (from the moment it is
ready: a small backlog may be partly drained before, so its CPU per event reads low).

    .venv/bin/python -m benchmarks.backlog_growth [--sizes 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Process, bench_settings, process_rss_mb, write_results
from benchmarks.ingest_throughput import notification
from oscar_stream.cli.context import quiet_kafka_client
from oscar_stream.config import Settings
from oscar_stream.kafka.clients import all_partitions, consumer, reliable_producer
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.observe.cpu import process_cpu_seconds
from oscar_stream.stack.stack import DEFAULT_COMPONENTS, Stack
from oscar_stream.topics import TopicNames
from tests.support.stack import ISSUED_PREFIXES, delete_topics_of, ensure_stack

CHUNK = 20_000


async def _fill(settings: Settings, topic: str, count: int) -> None:
    """``count`` distinct notifications, written in chunks (a million at once would sit in memory)."""
    producer = reliable_producer(settings.kafka)
    await producer.start()
    try:
        for start in range(0, count, CHUNK):
            pending = []
            for index in range(start, min(start + CHUNK, count)):
                payload = notification(index)
                pending.append(await producer.send(topic, payload, key=payload[40:80]))
            await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _held(settings: Settings, topic: str) -> int:
    reader = consumer(settings.kafka, group_id=None)
    await reader.start()
    try:
        return sum((await reader.end_offsets(await all_partitions(settings.kafka, topic))).values())
    finally:
        await reader.stop()


async def _span(settings: Settings, topic: str) -> float:
    """Seconds between the first and the last record of ``topic`` (their timestamps, set by the worker)."""
    reader = consumer(settings.kafka, group_id=None)
    await reader.start()
    try:
        partitions = await all_partitions(settings.kafka, topic)
        reader.assign(partitions)
        ends = await reader.end_offsets(partitions)
        stamps: list[int] = []
        for tp in partitions:
            for offset in {0, ends[tp] - 1} if ends[tp] else set():
                reader.seek(tp, offset)
                record = await reader.getone(tp)
                stamps.append(int(record.timestamp))
        return (max(stamps) - min(stamps)) / 1000
    finally:
        await reader.stop()



async def _drain(stack: Stack, work: Path, count: int) -> dict[str, float]:
    settings, config = bench_settings(stack, work)
    names = TopicNames(settings.kafka.topic_prefix)
    await apply_topics(settings)
    filled = time.monotonic()
    await _fill(settings, names.raw("minio.default"), count)
    filled = time.monotonic() - filled
    worker = Process(config, "worker", "--roles", "normalize", log=work / "worker.log")
    try:
        await asyncio.to_thread(worker.wait_http, f"http://127.0.0.1:{settings.metrics.port}/readyz")
        cpu, peak = process_cpu_seconds(worker.proc.pid), 0.0
        while await _held(settings, names.events) < count:
            peak = max(peak, process_rss_mb(worker.proc.pid))
            await asyncio.sleep(0.2)
        cpu = process_cpu_seconds(worker.proc.pid) - cpu
        peak = max(peak, process_rss_mb(worker.proc.pid))
    finally:
        worker.stop()
    seconds = await _span(settings, names.events)
    await delete_topics_of(settings.kafka.bootstrap_servers, [settings.kafka.topic_prefix])
    return {"notifications": count, "fill_seconds": filled, "drain_seconds": seconds,
            "events_per_second": count / seconds, "worker_peak_rss_mb": peak,
            "worker_cpu_us_per_event": cpu / count * 1e6}


async def measure(stack: Stack, sizes: list[int]) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="oscar-bench-backlog-"))
    rows = []
    for size in sizes:
        rows.append(await _drain(stack, work / str(size), size))
        row = rows[-1]
        print(f"{size:>9} notifications: {row['events_per_second']:8.0f} events/s, drained in "
              f"{row['drain_seconds']:.1f}s, worker peak RSS {row['worker_peak_rss_mb']:.0f} MB, "
              f"{row['worker_cpu_us_per_event']:.0f} µs CPU/event", flush=True)
    await delete_topics_of(stack.settings.kafka.bootstrap_servers, ISSUED_PREFIXES)
    return {"sizes": sizes, "rows": rows}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    sizes = [r["notifications"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(sizes, [r["events_per_second"] for r in rows], marker="o", color="#2b7bba")
    left.set_xscale("log")
    left.set_ylim(0)
    left.set_xlabel("notifications in the backlog")
    left.set_ylabel("events per second (normalize)")
    right.plot(sizes, [r["worker_peak_rss_mb"] for r in rows], marker="o", color="#e07b39")
    right.set_xscale("log")
    right.set_ylim(0)
    right.set_xlabel("notifications in the backlog")
    right.set_ylabel("worker peak RSS (MB)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    quiet_kafka_client()
    stack = ensure_stack(DEFAULT_COMPONENTS)  # before the event loop: starting Kafka applies the topics
    result = asyncio.run(measure(stack, args.sizes))
    path = write_results("backlog_growth", result)
    plot(result, path.with_suffix(".png"))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
