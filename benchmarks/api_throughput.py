"""OSCAR's API on the gateway, in one run on the local stack:

* ``POST /job/<svc>`` requests/s, each answered 201 only once its invocation is on Kafka (acks=all), with
  (a) a MinIO notification as body — what OSCAR's MinIO webhooks send — and (b) a base64 payload, which the
  gateway first stores in the API's bucket (one S3 PUT per request), against
* the baselines: the webhook path of the same gateway (``POST /webhook/<source>``: the notification's bytes to
  the raw topic), same wrk command, same run; and for the payload, S3 PUTs alone of the same body from this
  process (the gateway's S3 client, 64 at once), since the store's speed bounds that path;
* ``GET /system/logs/<svc>`` latency with 10,000 jobs of the service listed (first page; 200 requests one after
  the other), and the gateway's memory.

    .venv/bin/python -m benchmarks.api_throughput [--seconds 8] [--repeats 3] [--jobs 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from benchmarks.common import Process, bars_with_runs, bench_settings, process_rss_mb, write_results, wrk_posts
from oscar_stream.cli.context import quiet_kafka_client
from oscar_stream.core.jobs import JobRecord
from oscar_stream.demo.data import percentile
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.stack.process import free_port
from oscar_stream.stack.stack import Stack
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from tests.support.kafka_io import produce_records
from tests.support.stack import ensure_stack

AUTH = {"Authorization": "Basic " + base64.b64encode(b"oscar:bench-password").decode()}
SERVICE = "bench-api"
NOTIFICATION = orjson.dumps({"EventName": "s3:ObjectCreated:Put", "Records": [{
    "eventVersion": "2.0", "eventSource": "minio:s3", "eventTime": "2026-11-30T10:00:00.000Z",
    "eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": "bench-api"},
                                                "object": {"key": "in%2Fframe-FRAMEID.dat", "eTag": "e"}}}]})



async def _service_token(http: aiohttp.ClientSession, url: str) -> str:
    spec = {"name": SERVICE, "image": "alpine", "script": "true",
            "input": [{"storage_provider": "minio", "path": "bench-api/in"}]}
    async with http.post(f"{url}/system/services", data=orjson.dumps(spec), headers=AUTH) as created:
        assert created.status in (201, 409), await created.text()
    async with http.get(f"{url}/system/services/{SERVICE}", headers=AUTH) as answer:
        token: str = (await answer.json())["token"]
        return token


async def _listing_latency(http: aiohttp.ClientSession, url: str, settings: Any, jobs: int) -> list[float]:
    records = [JobRecord(f"{SERVICE}-{i:023x}", SERVICE, f"{i:032x}", "Succeeded", "local",
                         f"2026-11-30T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
                         finish_time="2026-11-30T23:59:59.000Z") for i in range(jobs)]
    topic = TopicNames(settings.kafka.topic_prefix).jobs
    for start in range(0, jobs, 2000):
        await produce_records(settings, topic, [(r.job.encode(), r.to_json(), []) for r in records[start:start + 2000]])
    while True:  # the gateway has read them all
        async with http.get(f"{url}/system/logs/{SERVICE}", headers=AUTH) as answer:
            if (await answer.json()).get("remaining_jobs", 0) + 70 >= jobs:
                break
        await asyncio.sleep(0.5)
    latencies = []
    for _ in range(200):
        started = time.perf_counter()
        async with http.get(f"{url}/system/logs/{SERVICE}", headers=AUTH) as answer:
            await answer.read()
            assert answer.status == 200
        latencies.append(time.perf_counter() - started)
    return latencies


async def _s3_puts(settings: Any, body: bytes, seconds: float) -> float:
    """PUTs/s of ``body`` straight to the API's bucket, 64 at once, for ``seconds``."""
    store = S3Store(settings.api_storage())
    done = 0
    deadline = time.monotonic() + seconds

    async def one(lane: int) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await store.put_bytes(body, settings.api.bucket, f"bench/{lane}-{done}")
            done += 1

    try:
        await store.ensure_bucket(settings.api.bucket)
        await asyncio.gather(*(one(lane) for lane in range(64)))
    finally:
        await store.close()
    return done / seconds


async def measure(stack: Stack, seconds: float, repeats: int, jobs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="oscar-bench-") as tmp:
        work = Path(tmp)
        port = free_port()
        settings, config = bench_settings(stack, work, gateway={"port": port},
                                          api={"username": "oscar", "password": "bench-password",
                                               "token_secret": "bench-secret"})
        await apply_topics(settings)
        gateway = Process(config, "gateway", log=work / "gateway.log")
        url = f"http://127.0.0.1:{port}"
        runs: dict[str, list[float]] = {"webhook": [], "job, notification": [], "job, payload": [],
                                        "S3 PUT alone": []}
        try:
            await asyncio.to_thread(gateway.wait_http, f"{url}/readyz")
            async with aiohttp.ClientSession() as http:
                token = await _service_token(http, url)
                source_token = settings.sources[0].token.get_secret_value()  # type: ignore[union-attr]
                scenarios = {
                    "webhook": (f"{url}/webhook/minio.default", NOTIFICATION, f"Bearer {source_token}"),
                    "job, notification": (f"{url}/job/{SERVICE}", NOTIFICATION, f"Bearer {token}"),
                    "job, payload": (f"{url}/job/{SERVICE}", b"cGF5bG9hZCBGUkFNRUlE", f"Bearer {token}"),
                }
                for round_ in range(repeats):  # interleaved, so drift hits every scenario alike
                    for name, (target, body, authorization) in scenarios.items():
                        answered = await wrk_posts(target, body, authorization, seconds, work)
                        runs[name].append(answered / seconds)
                    runs["S3 PUT alone"].append(await _s3_puts(settings, b"payload FRAMEID", seconds))
                    print(f"round {round_ + 1}/{repeats}: " + ", ".join(f"{n} {r[-1]:.0f}/s" for n, r in runs.items()),
                          flush=True)
                latencies = await _listing_latency(http, url, settings, jobs)
                rss = process_rss_mb(gateway.proc.pid)
        finally:
            gateway.stop()
    medians = {name: statistics.median(r) for name, r in runs.items()}
    return {
        "seconds": seconds, "repeats": repeats, "requests_per_second": runs, "median": medians,
        "ratio_to_webhook": {name: m / medians["webhook"] for name, m in medians.items()},
        "payload_ratio_to_s3_puts": medians["job, payload"] / medians["S3 PUT alone"],
        "listing": {"jobs": jobs, "requests": len(latencies), "p50_ms": percentile(latencies, 0.5) * 1000,
                    "p99_ms": percentile(latencies, 0.99) * 1000, "gateway_rss_mb": rss},
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs: dict[str, list[float]] = result["requests_per_second"]
    medians, ratios = result["median"], result["ratio_to_webhook"]
    fig, ax = plt.subplots(figsize=(7, 4))
    bars_with_runs(ax, runs, {n: f"{medians[n]:.0f}/s\n{ratios[n]:.2f}x" for n in runs},
                   "requests per second (median; dots = runs)")
    ax.set_title("OSCAR's API on the gateway: POST /job against the webhook path")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    quiet_kafka_client()
    result = asyncio.run(measure(ensure_stack(("kafka", "s3")), args.seconds, args.repeats, args.jobs))
    for name, median in result["median"].items():
        print(f"{name:<20} {median:8.0f} requests/s   ratio {result['ratio_to_webhook'][name]:.2f}")
    print(f"job, payload / S3 PUT alone: {result['payload_ratio_to_s3_puts']:.2f}")
    listing = result["listing"]
    print(f"GET /system/logs/{SERVICE} with {listing['jobs']} jobs: p50 {listing['p50_ms']:.1f} ms, "
          f"p99 {listing['p99_ms']:.1f} ms; gateway RSS {listing['gateway_rss_mb']:.0f} MB")
    path = write_results("api_throughput", result)
    plot(result, path.with_suffix(".png"))
    print(f"written to {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
