"""Job launching on the local stack's real API server (kube-apiserver + etcd, kwok nodes):

* creations/s: the KubernetesExecutor (Job spec, ConfigMap/Secret bookkeeping, retries, the shared watch)
  next to a raw kubernetes-asyncio ``create_namespaced_job`` loop with the same spec and concurrency;
* upload -> Job created latency: upload to versitygw, its notification goes to Kafka, the worker normalizes,
  routes and creates the Job; measured from the end of the upload to the Job's ADDED event on a watch.

    .venv/bin/python -m benchmarks.launcher_throughput [--jobs 300] [--concurrency 16] [--uploads 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config, watch

from benchmarks.common import Process, bars_with_runs, bench_settings, write_results
from oscar_stream.cli.context import quiet_kafka_client
from oscar_stream.config import Settings, load_settings
from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.ids import created_object_id
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.results import Result
from oscar_stream.demo.data import percentile
from oscar_stream.executors.base import Limiter
from oscar_stream.executors.kubernetes import KubernetesExecutor
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.launch import job_spec
from oscar_stream.route.files import load_routing_files
from oscar_stream.route.model import InputSpec, ServiceSpec
from oscar_stream.stack.components.base import StackContext
from oscar_stream.stack.components.versitygw import S3Notify, start_versitygw
from oscar_stream.stack.process import free_port, terminate
from oscar_stream.stack.progress import Progress
from oscar_stream.stack.stack import DEFAULT_COMPONENTS, Stack
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from oscar_stream.worker.publish import apply_services

NAMESPACE = "oscar-stream"


def _invocations(service: ServiceSpec, count: int) -> list[Invocation]:
    run = uuid.uuid4().hex[:6]
    out = []
    for n in range(count):
        key = f"in/{run}-{n:05d}.dat"
        event = StorageEvent(created_object_id("minio.default", "bench", key, None, f"{n:032x}", None), CREATED,
                             "2026-01-01T00:00:00.000Z", "minio.default", "s3", "bench", key,
                             "s3:ObjectCreated:Put", size=1, etag=f"{n:032x}")
        out.append(Invocation.of(service.name, service.version, event))
    return out


async def _api(kubeconfig: Path) -> client.ApiClient:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


async def _cleanup(api: client.ApiClient, service: str) -> None:
    await client.BatchV1Api(api).delete_collection_namespaced_job(
        NAMESPACE, label_selector=f"{job_spec.LABEL_SERVICE}={service}", propagation_policy="Background")


async def _raw_rate(api: client.ApiClient, settings: Settings, service: ServiceSpec, count: int,
                    concurrency: int) -> float:
    batch = client.BatchV1Api(api)
    bodies = [job_spec.build_job(i, service, NAMESPACE, "oscar-stream:bench", "unused", "bench") for i in
              _invocations(service, count)]
    gate = asyncio.Semaphore(concurrency)

    async def create(body: dict[str, Any]) -> None:
        async with gate:
            await batch.create_namespaced_job(NAMESPACE, body)  # type: ignore[arg-type]  # dicts are accepted

    started = time.monotonic()
    await asyncio.gather(*(create(b) for b in bodies))
    return count / (time.monotonic() - started)


async def _launcher_rate(settings: Settings, service: ServiceSpec, count: int, concurrency: int) -> float:
    results: list[Result] = []

    async def sink(result: Result) -> None:
        results.append(result)

    limiter = Limiter(lambda service: count)
    executor = KubernetesExecutor(sink, limiter, settings)
    await executor.start()
    try:
        invocations = _invocations(service, count)
        gate = asyncio.Semaphore(concurrency)

        async def launch(invocation: Invocation) -> None:
            async with gate:
                permit = await limiter.acquire(service.name)
                await executor.launch(invocation, service, permit)

        started = time.monotonic()
        await asyncio.gather(*(launch(i) for i in invocations))
        return count / (time.monotonic() - started)
    finally:
        await executor.stop()


async def _latency(stack: Stack, work: Path, kubeconfig: Path, uploads: int) -> list[float]:
    settings, config_file = bench_settings(stack, work, worker={"executor": "kubernetes"},
                                           kubernetes={"kubeconfig": str(kubeconfig)})
    names = TopicNames(settings.kafka.topic_prefix)
    await apply_topics(settings)
    table = work / "table.yaml"
    table.write_text("version: oscar-stream/v1\nservices:\n  - {name: latency, image: alpine:3.22, "
                     "script_inline: 'true', ttl_seconds: 30, input: [{storage_provider: minio, path: lat/in}]}\n")
    await apply_services(settings, load_routing_files([table]).table.services)
    port = free_port()
    ctx = StackContext(stack.settings.stack, settings.kafka.topic_prefix, Progress(quiet=True))
    gw = start_versitygw(ctx, "s3-bench", port, work / "buckets",
                         S3Notify(kafka_bootstrap=settings.kafka.bootstrap_servers,
                                  kafka_topic=names.raw("minio.default")), work / "versitygw.log")
    store = S3Store(settings.storages[0].model_copy(update={"endpoint": f"http://127.0.0.1:{port}"}))
    worker = Process(config_file, "worker", log=work / "worker.log")
    api = await _api(kubeconfig)
    created: dict[str, float] = {}
    uploaded: dict[str, float] = {}
    all_created = asyncio.Event()

    async def observe() -> None:
        stream = watch.Watch()
        async for change in stream.stream(client.BatchV1Api(api).list_namespaced_job, NAMESPACE,
                                          label_selector=f"{job_spec.LABEL_SERVICE}=latency"):
            if change["type"] == "ADDED":
                obj = (change["object"].metadata.annotations or {}).get(job_spec.ANNOTATION_OBJECT, "")
                created.setdefault(obj, time.monotonic())
                if len(uploaded) == uploads and set(uploaded) <= set(created):
                    all_created.set()

    watcher = asyncio.ensure_future(observe())
    try:
        await asyncio.to_thread(worker.wait_http, f"http://127.0.0.1:{settings.metrics.port}/readyz")
        await store.ensure_bucket("lat")
        source = work / "payload"
        source.write_bytes(b"x" * 1024)
        run = uuid.uuid4().hex[:6]
        for n in range(uploads):
            key = f"in/{run}-{n:04d}.dat"
            await store.upload(source, "lat", key)
            uploaded[f"minio.default/lat/{key}"] = time.monotonic()
            await asyncio.sleep(0.1)
        with contextlib.suppress(TimeoutError):  # what was not created in time is reported as missing
            await asyncio.wait_for(all_created.wait(), 120)
    finally:
        watcher.cancel()
        worker.stop()
        await store.close()
        terminate(gw)
        await _cleanup(api, "latency")
        await api.close()
    return [created[k] - uploaded[k] for k in uploaded if k in created]


async def measure(jobs: int, concurrency: int, uploads: int, repeats: int) -> dict[str, Any]:
    stack = Stack(load_settings(None))
    stack.up((*DEFAULT_COMPONENTS, "kubernetes"))  # kwok's node: no real pod is needed
    kubeconfig = stack.settings.stack.state_dir / "kubernetes" / "kubeconfig"
    work = Path(tempfile.mkdtemp(prefix="oscar-bench-"))
    # The executor's own request-rate guard is lifted so that both loops are limited by the same thing only.
    settings, _ = bench_settings(stack, work / "launch", kubernetes={"kubeconfig": str(kubeconfig),
                                                                     "max_requests_per_second": 10000})
    api = await _api(kubeconfig)
    service = ServiceSpec(name="bench-launch", image="alpine:3.22", script="true", ttl_s=5,
                          inputs=(InputSpec("minio.default", "bench/in"),))
    runs: dict[str, list[float]] = {"raw kubernetes-asyncio": [], "oscar-stream launcher": []}
    for _ in range(repeats):
        runs["raw kubernetes-asyncio"].append(await _raw_rate(api, settings, service, jobs, concurrency))
        await _cleanup(api, service.name)
        runs["oscar-stream launcher"].append(await _launcher_rate(settings, service, jobs, concurrency))
        await _cleanup(api, service.name)
        print(", ".join(f"{k} {v[-1]:.0f} Jobs/s" for k, v in runs.items()), flush=True)
    await api.close()
    latencies = await _latency(stack, work / "latency", kubeconfig, uploads)
    rates = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "jobs": jobs, "concurrency": concurrency, "repeats": repeats, "runs": runs,
        "jobs_per_second_median": rates,
        "ratio_launcher_to_raw": rates["oscar-stream launcher"] / rates["raw kubernetes-asyncio"],
        "upload_to_job_created_seconds": {
            "uploads": uploads, "measured": len(latencies), "p50": percentile(latencies, 0.5),
            "p90": percentile(latencies, 0.9), "p99": percentile(latencies, 0.99), "max": max(latencies, default=0),
        },
        "latencies": latencies,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    medians = result["jobs_per_second_median"]
    bars_with_runs(left, result["runs"], {n: f"{medians[n]:.0f}/s" for n in medians}, "Jobs created per second")
    left.set_title(f"launcher / raw = {result['ratio_launcher_to_raw']:.2f} (concurrency {result['concurrency']})")
    right.hist(result["latencies"], bins=30, color="#e07b39")
    lat = result["upload_to_job_created_seconds"]
    right.set_title(f"upload -> Job created: p50 {lat['p50']:.2f}s, p99 {lat['p99']:.2f}s")
    right.set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    quiet_kafka_client()
    result = asyncio.run(measure(args.jobs, args.concurrency, args.uploads, args.repeats))
    path = write_results("launcher_throughput", result)
    plot(result, path.with_suffix(".png"))
    for name, rate in result["jobs_per_second_median"].items():
        print(f"{name:<24} {rate:8.1f} Jobs/s")
    lat = result["upload_to_job_created_seconds"]
    print(f"ratio {result['ratio_launcher_to_raw']:.2f}; upload->Job created p50 {lat['p50']:.3f}s "
          f"p99 {lat['p99']:.3f}s ({lat['measured']}/{lat['uploads']}); written to {path}")


if __name__ == "__main__":
    main()
