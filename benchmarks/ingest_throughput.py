"""Ingest throughput on the local stack, all in one run on the same broker:

* baseline: a raw aiokafka consume -> produce passthrough (``send()`` per record, aiokafka's default partitioner,
  acks=all, idempotent, commit after the acks), in its own process — what a Kafka stage with oscar-stream's
  guarantees costs when written the obvious way;
* passthrough with oscar-stream's writer (one record batch per partition, native murmur2): for reference, the same
  loop with the Kafka plumbing the agents use, so the cost of normalization itself can be read off too;
* normalize: ``oscar-stream worker --roles normalize`` turning MinIO notifications into canonical events;
* gateway + normalize: HTTP POSTs from wrk (64 connections) to ``oscar-stream gateway``, then the worker.

Passthrough and normalize drain a backlog: all records are in the raw topic before the stage starts, and the
rate runs from the first to the last output record's timestamp (the load generator is not measured).
Gateway + normalize runs live: records accepted / (time from wrk's start to the last canonical event seen).

    .venv/bin/python -m benchmarks.ingest_throughput [--records 20000] [--gateway-seconds 8] [--repeats 3]

The gateway load comes from wrk (Debian package ``wrk``): a load generator in Python would compete with the
gateway for the same two cores and measure itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic

from benchmarks.common import (
    Process,
    bars_with_runs,
    bench_settings,
    count_until,
    write_results,
    wrk_posts,
)
from oscar_stream.cli.context import quiet_kafka_client
from oscar_stream.config import Settings, load_settings
from oscar_stream.core.records import OutRecord
from oscar_stream.kafka.batch_writer import BatchWriter
from oscar_stream.kafka.clients import MAX_REQUEST_BYTES, admin, connection_options, consumer, reliable_producer
from oscar_stream.kafka.topics_admin import apply_topics, desired_topics
from oscar_stream.observe.cpu import machine_busy_seconds, process_cpu_seconds
from oscar_stream.stack.process import free_port
from oscar_stream.stack.stack import DEFAULT_COMPONENTS, Stack
from oscar_stream.topics import TopicNames
from tests.support.stack import ensure_stack


def notification(index: int) -> bytes:
    key = f"raw%2Fnight-{index // 1000:04d}%2Fframe-{index:07d}.fits"
    return orjson.dumps({
        "EventName": "s3:ObjectCreated:Put",
        "Key": f"telescope/raw/night-{index // 1000:04d}/frame-{index:07d}.fits",
        "Records": [{
            "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "", "eventName": "s3:ObjectCreated:Put",
            "eventTime": "2026-04-12T22:31:07.418Z", "userIdentity": {"principalId": "uploader"},
            "requestParameters": {"principalId": "uploader", "region": "", "sourceIPAddress": "10.42.0.17"},
            "responseElements": {"x-amz-request-id": f"18A3F0C2{index:08X}"},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "Config",
                   "bucket": {"name": "telescope", "arn": "arn:aws:s3:::telescope"},
                   "object": {"key": key, "size": 16803840 + index, "eTag": f"{index:032x}",
                              "contentType": "application/fits", "sequencer": f"{index:016X}"}},
            "source": {"host": "10.42.0.17", "port": "", "userAgent": "MinIO (linux; amd64)"},
        }],
    })


async def passthrough(config: Path, source: str, target: str, batched: bool) -> None:
    """The baseline, run as its own process: consume a batch, produce it, wait for the acks, commit."""
    settings = load_settings(config)
    reader = consumer(settings.kafka, source, group_id=f"{settings.app_id}-passthrough", max_poll_records=2000)
    if batched:
        writer = reliable_producer(settings.kafka)
    else:
        writer = AIOKafkaProducer(**connection_options(settings.kafka), acks="all", enable_idempotence=True,
                                  linger_ms=5)
    batches = BatchWriter(writer, MAX_REQUEST_BYTES)
    await reader.start()
    await writer.start()
    while True:
        batch = await reader.getmany(timeout_ms=100)
        if batched:
            written = await batches.write(OutRecord(target, m.value, m.key, tuple(m.headers))
                                          for messages in batch.values() for m in messages)
            pending = written.deliveries
        else:
            pending = [await writer.send(target, m.value, key=m.key, headers=list(m.headers))
                       for messages in batch.values() for m in messages]
        if pending:
            await asyncio.gather(*pending)
            await reader.commit()


async def produce_all(settings: Settings, topic: str, payloads: list[bytes]) -> None:
    producer = reliable_producer(settings.kafka)
    await producer.start()
    try:
        pending = [await producer.send(topic, p, key=p[40:80]) for p in payloads]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _passthrough_rate(stack: Stack, work: Path, payloads: list[bytes], batched: bool) -> float:
    """The stage drains a backlog: every input is in Kafka before it starts, so the load generator (in this
    process, on the same cores) is not part of what is measured. The rate runs from the first to the last
    output record's timestamp."""
    settings, config = bench_settings(stack, work)
    names = TopicNames(settings.kafka.topic_prefix)
    await apply_topics(settings)
    target = f"{settings.kafka.topic_prefix}.bench.passthrough"
    admin_client = admin(settings.kafka)
    await admin_client.start()
    try:  # as many partitions as the events topic, so both stages spread their output alike
        await admin_client.create_topics([NewTopic(target, desired_topics(settings)[names.events].partitions, 1)])
    finally:
        await admin_client.close()
    await produce_all(settings, names.raw("minio.default"), payloads)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.ingest_throughput", "--passthrough", str(config),
        names.raw("minio.default"), target, *(["--batched"] if batched else []))
    try:
        arrival = await count_until(settings, target, len(payloads))
    finally:
        proc.terminate()
        await proc.wait()
    return arrival.rate(len(payloads))


async def _normalize_rate(stack: Stack, work: Path, payloads: list[bytes]) -> float:
    settings, config = bench_settings(stack, work)
    names = TopicNames(settings.kafka.topic_prefix)
    await apply_topics(settings)
    await produce_all(settings, names.raw("minio.default"), payloads)
    worker = Process(config, "worker", "--roles", "normalize", log=work / "worker.log")
    try:
        arrival = await count_until(settings, names.events, len(payloads))
    finally:
        worker.stop()
    return arrival.rate(len(payloads))


async def _gateway_rate(stack: Stack, work: Path, seconds: float) -> tuple[float, int, dict[str, float]]:
    """wrk (C, 64 connections) posts distinct notifications for ``seconds``; the rate counts only what came out
    of the worker as canonical events. Also returns the CPU time per event (µs) of the gateway, the worker and
    everything else on the machine (wrk, the broker, this process) over the same interval."""
    port = free_port()
    settings, config = bench_settings(stack, work, gateway={"port": port})
    names = TopicNames(settings.kafka.topic_prefix)
    await apply_topics(settings)
    worker = Process(config, "worker", "--roles", "normalize", log=work / "worker.log")
    gateway = Process(config, "gateway", log=work / "gateway.log")
    try:
        await asyncio.to_thread(worker.wait_http, f"http://127.0.0.1:{settings.metrics.port}/readyz")
        await asyncio.to_thread(gateway.wait_http, f"http://127.0.0.1:{port}/readyz")
        token = settings.sources[0].token.get_secret_value()  # type: ignore[union-attr]
        cpu_before = (process_cpu_seconds(gateway.proc.pid), process_cpu_seconds(worker.proc.pid),
                      machine_busy_seconds())
        started = time.monotonic()
        accepted = await wrk_posts(f"http://127.0.0.1:{port}/webhook/minio.default",
                                   notification(0).replace(b"frame-0000000", b"frame-FRAMEID"), f"Bearer {token}",
                                   seconds, work)
        finished = (await count_until(settings, names.events, accepted)).seen_at
        gateway_s, worker_s, machine_s = (after - before for after, before in zip(
            (process_cpu_seconds(gateway.proc.pid), process_cpu_seconds(worker.proc.pid), machine_busy_seconds()),
            cpu_before, strict=True))
    finally:
        worker.stop()
        gateway.stop()
    cpu = {"gateway": gateway_s, "worker (normalize)": worker_s, "wrk, broker, rest": machine_s - gateway_s - worker_s}
    return accepted / (finished - started), accepted, {name: seconds * 1e6 / accepted for name, seconds in cpu.items()}


async def measure(stack: Stack, records: int, seconds: float, repeats: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="oscar-bench-"))
    payloads = [notification(i) for i in range(records)]
    runs: dict[str, list[float]] = {"passthrough": [], "passthrough, batched": [], "normalize": [],
                                    "gateway+normalize": []}
    posted: list[int] = []
    cpu_us: list[dict[str, float]] = []
    for round_ in range(repeats):  # interleaved, so drift on the machine hits every scenario alike
        runs["passthrough"].append(await _passthrough_rate(stack, work / f"p{round_}", payloads, batched=False))
        runs["passthrough, batched"].append(await _passthrough_rate(stack, work / f"b{round_}", payloads,
                                                                    batched=True))
        runs["normalize"].append(await _normalize_rate(stack, work / f"n{round_}", payloads))
        rate, accepted, cpu = await _gateway_rate(stack, work / f"g{round_}", seconds)
        runs["gateway+normalize"].append(rate)
        cpu_us.append(cpu)
        posted.append(accepted)
        print(f"round {round_ + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in runs.items()),
              flush=True)
    rates = {name: statistics.median(values) for name, values in runs.items()}
    cpu_median = {name: statistics.median(run[name] for run in cpu_us) for name in cpu_us[0]}
    return {"records": records, "gateway_seconds": seconds, "gateway_posts": posted, "repeats": repeats, "runs": runs,
            "events_per_second_median": rates,
            "ratio_to_passthrough": {name: rate / rates["passthrough"] for name, rate in rates.items()},
            "gateway_cpu_us_per_event": cpu_us, "gateway_cpu_us_per_event_median": cpu_median,
            "cpus": os.cpu_count()}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs: dict[str, list[float]] = result["runs"]
    fig, ax = plt.subplots(figsize=(7, 4))
    rates, ratios = result["events_per_second_median"], result["ratio_to_passthrough"]
    bars_with_runs(ax, runs, {n: f"{rates[n]:.0f}/s\n{ratios[n]:.2f}x" for n in runs},
                   "events per second (median; dots = runs)")
    ax.set_title("Ingest throughput on the local stack (one broker, 2 cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--gateway-seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--passthrough", nargs=3, metavar=("CONFIG", "SOURCE", "TARGET"), help=argparse.SUPPRESS)
    parser.add_argument("--batched", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    quiet_kafka_client()
    if args.passthrough:
        asyncio.run(passthrough(Path(args.passthrough[0]), args.passthrough[1], args.passthrough[2], args.batched))
        return
    stack = ensure_stack(DEFAULT_COMPONENTS)  # before the event loop: starting Kafka applies the topics
    result = asyncio.run(measure(stack, args.records, args.gateway_seconds, args.repeats))
    path = write_results("ingest_throughput", result)
    plot(result, path.with_suffix(".png"))
    for name, rate in result["events_per_second_median"].items():
        print(f"{name:<20} {rate:10.0f} events/s   ratio {result['ratio_to_passthrough'][name]:.2f}")
    cpu = result["gateway_cpu_us_per_event_median"]
    print("gateway+normalize CPU per event (µs): " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
          + f"; total {sum(cpu.values()):.0f}")
    print(f"written to {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
