"""Job launching on the local stack's real API server (kube-apiserver + etcd, kwok nodes):

* creations/s: the KubernetesExecutor (Job spec, ConfigMap/Secret bookkeeping, retries, the shared watch)
  next to a raw kubernetes-asyncio ``create_namespaced_job`` loop with the same spec and concurrency;
* upload -> Job created latency: upload to versitygw, its notification goes to Kafka, the worker normalizes,
  routes and creates the Job; measured from the end of the upload to the Job's ADDED event on a watch;
* the same with the local executor, to the moment the script starts (it writes the time itself).

    .venv/bin/python -m benchmarks.launcher_throughput [--jobs 300] [--concurrency 16] [--uploads 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import orjson
import yaml
from kubernetes_asyncio import client, config, watch

from benchmarks.common import Process, bars_with_runs, bench_settings, write_results
from oscar_stream.cli.context import quiet_kafka_client
from oscar_stream.config import Settings
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
from tests.support.kafka_io import read_all
from tests.support.stack import ISSUED_PREFIXES, delete_topics_of, ensure_stack, write_config

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
    """Delete the run's Jobs and wait until they and their pods are gone: the next run must not share the API
    server with the garbage collector's work on this one's."""
    selector = f"{job_spec.LABEL_SERVICE}={service}"
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    await batch.delete_collection_namespaced_job(NAMESPACE, label_selector=selector,
                                                 propagation_policy="Background")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        jobs = await batch.list_namespaced_job(NAMESPACE, label_selector=selector, limit=1)
        pods = await core.list_namespaced_pod(NAMESPACE, label_selector=selector, limit=1)
        if not jobs.items and not pods.items:
            return
        await asyncio.sleep(1)
    raise RuntimeError(f"the Jobs of {service} were not gone 300 s after their deletion")


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


TOPIC_HOPS = ("upload -> raw", "raw -> event", "event -> invocation")
STARTED = {"kubernetes": "Job ADDED", "local": "script start"}  # the last hop, per executor


def hops_of(executor: str) -> tuple[str, ...]:
    return (*TOPIC_HOPS, f"invocation -> {STARTED[executor]}", f"upload -> {STARTED[executor]}")


def _object_of(record: Any, topic_kind: str) -> str | None:
    """``storage/bucket/key`` of the object a raw, event or invocation record is about (None: a store's test
    message)."""
    doc = orjson.loads(record.value)
    if topic_kind == "raw":
        if "Records" not in doc:
            return None
        [entry] = doc["Records"]
        return f"minio.default/{entry['s3']['bucket']['name']}/{urllib.parse.unquote(entry['s3']['object']['key'])}"
    data = (doc["event"] if topic_kind == "invocation" else doc)["data"]
    return f"{data['storage']}/{data['bucket']}/{data['key']}"


async def _hop_times(settings: Settings, names: TopicNames) -> dict[str, dict[str, float]]:
    """When each object's record reached each topic (the record's CreateTime, wall clock, seconds)."""
    out: dict[str, dict[str, float]] = {}
    for kind, topic in (("raw", names.raw("minio.default")), ("event", names.events),
                        ("invocation", names.invocations)):
        seen: dict[str, float] = {}
        for record in await read_all(settings, topic):
            obj = _object_of(record, kind)
            if obj is not None:
                seen.setdefault(obj, record.timestamp / 1000)
        out[kind] = seen
    return out


async def _latency(stack: Stack, work: Path, kubeconfig: Path, uploads: int, executor: str) -> dict[str, Any]:
    """Uploads at 10/s once the worker is ready; per object the time at each hop, to its Job's ADDED event
    (Kubernetes) or its script's start (local). Before that, the cold start: one upload made as the worker
    starts, timed from the worker's start to its first Job or script."""
    settings, config_file = bench_settings(stack, work, worker={"executor": executor},
                                           kubernetes={"kubeconfig": str(kubeconfig)})
    port = free_port()  # the run's own versitygw: its notifications go to this run's raw topic
    document = yaml.safe_load(config_file.read_text())
    document["storages"][0]["endpoint"] = f"http://127.0.0.1:{port}"
    settings = write_config(document, config_file)
    names = TopicNames(settings.kafka.topic_prefix)
    await apply_topics(settings)
    starts = work / "script-starts"
    # A limit well above what 10 uploads/s keep running (a kwok Job takes 1-3 s to complete): the default, 10,
    # would make the invocations queue for a free slot, and this would measure the queue.
    service = {"name": "latency", "image": "alpine:3.22", "ttl_seconds": 30, "concurrency": 200,
               "input": [{"storage_provider": "minio", "path": "lat/in"}],
               "script_inline": 'echo "$STORAGE_OBJECT_KEY $(date +%s%3N)" >> ' + str(starts)
               if executor == "local" else "true"}
    table = work / "table.yaml"
    table.write_text(yaml.safe_dump({"version": "oscar-stream/v1", "services": [service]}))
    await apply_services(settings, load_routing_files([table]).table.services)
    ctx = StackContext(stack.settings.stack, settings.kafka.topic_prefix, Progress(quiet=True))
    gw = start_versitygw(ctx, "s3-bench", port, work / "buckets",
                         S3Notify(kafka_bootstrap=settings.kafka.bootstrap_servers,
                                  kafka_topic=names.raw("minio.default")), work / "versitygw.log")
    store = S3Store(settings.storages[0])
    api = await _api(kubeconfig)
    created: dict[str, float] = {}  # wall clock
    uploaded: dict[str, float] = {}
    all_created = asyncio.Event()

    def seen(obj: str, when: float) -> None:
        created.setdefault(obj, when)
        if len(uploaded) == uploads + 1 and set(uploaded) <= set(created):
            all_created.set()

    async def watch_jobs() -> None:
        stream = watch.Watch()
        async for change in stream.stream(client.BatchV1Api(api).list_namespaced_job, NAMESPACE,
                                          label_selector=f"{job_spec.LABEL_SERVICE}=latency"):
            if change["type"] == "ADDED":
                seen((change["object"].metadata.annotations or {}).get(job_spec.ANNOTATION_OBJECT, ""), time.time())

    async def read_starts() -> None:
        while True:
            if starts.exists():
                for line in starts.read_text().splitlines():
                    key, millis = line.rsplit(" ", 1)
                    seen(f"minio.default/lat/{key}", int(millis) / 1000)
            await asyncio.sleep(0.05)

    watcher = asyncio.ensure_future(watch_jobs() if executor == "kubernetes" else read_starts())
    source = work / "payload"
    source.write_bytes(b"x" * 1024)
    run = uuid.uuid4().hex[:6]
    await store.ensure_bucket("lat")
    worker_started = time.time()
    worker = Process(config_file, "worker", log=work / "worker.log")
    try:
        cold = f"minio.default/lat/in/{run}-cold.dat"
        await store.upload(source, "lat", cold.split("/", 2)[2])
        uploaded[cold] = time.time()
        await asyncio.to_thread(worker.wait_http, f"http://127.0.0.1:{settings.metrics.port}/readyz")
        ready = time.time()
        for n in range(uploads):
            key = f"in/{run}-{n:04d}.dat"
            await store.upload(source, "lat", key)
            uploaded[f"minio.default/lat/{key}"] = time.time()
            await asyncio.sleep(0.1)
        with contextlib.suppress(TimeoutError):  # what was not created in time is reported as missing
            await asyncio.wait_for(all_created.wait(), 120)
        hops = await _hop_times(settings, names)
    finally:
        watcher.cancel()
        worker.stop()
        await store.close()
        terminate(gw)
        await _cleanup(api, "latency")
        await api.close()
    steady = [k for k in uploaded if k != cold]
    names_of_hops = hops_of(executor)
    per_hop: dict[str, list[float]] = {hop: [] for hop in names_of_hops}
    for k in steady:
        times = [uploaded[k], hops["raw"].get(k), hops["event"].get(k), hops["invocation"].get(k), created.get(k)]
        for hop, start, end in zip(names_of_hops, times, times[1:], strict=False):
            if start is not None and end is not None:
                per_hop[hop].append(end - start)
        if created.get(k) is not None:
            per_hop[names_of_hops[-1]].append(created[k] - uploaded[k])
    return {
        "executor": executor, "uploads": uploads, "measured": len(per_hop[names_of_hops[-1]]),
        "worker start -> ready (s)": ready - worker_started,
        "cold start: worker start -> first start (s)": created[cold] - worker_started if cold in created else None,
        "hops": {hop: _summary(values) for hop, values in per_hop.items()},
        "latencies": per_hop[names_of_hops[-1]],
    }


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 0.5), "p90": percentile(values, 0.9), "p99": percentile(values, 0.99),
            "max": max(values, default=0.0), "count": len(values)}


async def measure(stack: Stack, jobs: int, concurrency: int, uploads: int, repeats: int) -> dict[str, Any]:
    kubeconfig = stack.settings.stack.state_dir / "kubernetes" / "kubeconfig"
    work = Path(tempfile.mkdtemp(prefix="oscar-bench-"))
    # Latency first, on a quiet cluster: right after the throughput runs, the API server and the controllers are
    # still busy with their thousands of Jobs (and their deletion), and each hop measured then is theirs too.
    latency_runs: dict[str, list[dict[str, Any]]] = {"kubernetes": [], "local": []}
    for executor, runs_of in latency_runs.items():
        final = hops_of(executor)[-1]
        for repeat in range(repeats):
            runs_of.append(await _latency(stack, work / f"latency-{executor}-{repeat}", kubeconfig, uploads, executor))
            hops = runs_of[-1]["hops"]
            print(f"{final} p50 {hops[final]['p50'] * 1000:.1f} ms, p99 {hops[final]['p99'] * 1000:.1f} ms",
                  flush=True)
    # The executor's own request-rate guard is lifted so that both loops are limited by the same thing only.
    settings, _ = bench_settings(stack, work / "launch", kubernetes={"kubeconfig": str(kubeconfig),
                                                                     "max_requests_per_second": 10000})
    api = await _api(kubeconfig)
    service = ServiceSpec(name="bench-launch", image="alpine:3.22", script="true", ttl_s=5,
                          inputs=(InputSpec("minio.default", "bench/in"),))
    runs: dict[str, list[float]] = {"raw kubernetes-asyncio": [], "oscar-stream launcher": []}
    await _cleanup(api, service.name)
    for repeat in range(repeats):
        loops = {"raw kubernetes-asyncio": lambda: _raw_rate(api, settings, service, jobs, concurrency),
                 "oscar-stream launcher": lambda: _launcher_rate(settings, service, jobs, concurrency)}
        for name in sorted(loops, reverse=repeat % 2 == 1):  # each goes first in turn
            runs[name].append(await loops[name]())
            await _cleanup(api, service.name)
        print(", ".join(f"{k} {v[-1]:.0f} Jobs/s" for k, v in runs.items()), flush=True)
    await api.close()
    await delete_topics_of(stack.settings.kafka.bootstrap_servers, ISSUED_PREFIXES)
    rates = {k: statistics.median(v) for k, v in runs.items()}
    latencies = [x for run in latency_runs["kubernetes"] for x in run["latencies"]]
    script_latencies = [x for run in latency_runs["local"] for x in run["latencies"]]
    paired = [o / r for r, o in zip(*runs.values(), strict=True)]  # each repeat runs the two loops back to back
    return {
        "jobs": jobs, "concurrency": concurrency, "repeats": repeats, "runs": runs,
        "jobs_per_second_median": rates,
        "ratio_launcher_to_raw": rates["oscar-stream launcher"] / rates["raw kubernetes-asyncio"],
        "ratio_per_run": paired,
        "median_of_paired_ratios": statistics.median(paired),
        "upload_to_job_created_seconds": {"uploads": uploads * repeats, "measured": len(latencies),
                                          **_summary(latencies)},
        "upload_to_script_start_seconds": {"uploads": uploads * repeats, "measured": len(script_latencies),
                                           **_summary(script_latencies)},
        "latency_runs": latency_runs["kubernetes"],
        "local_latency_runs": latency_runs["local"],
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
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    quiet_kafka_client()
    stack = ensure_stack((*DEFAULT_COMPONENTS, "kubernetes"))  # before the event loop: Kafka applies topics
    result = asyncio.run(measure(stack, args.jobs, args.concurrency, args.uploads, args.repeats))
    path = write_results("launcher_throughput", result)
    plot(result, path.with_suffix(".png"))
    for name, rate in result["jobs_per_second_median"].items():
        print(f"{name:<24} {rate:8.1f} Jobs/s")
    lat = result["upload_to_job_created_seconds"]
    print(f"ratio of medians {result['ratio_launcher_to_raw']:.2f}, median of paired ratios "
          f"{result['median_of_paired_ratios']:.2f}; upload->Job created p50 {lat['p50']:.3f}s "
          f"p99 {lat['p99']:.3f}s ({lat['measured']}/{lat['uploads']}); written to {path}")
    for number, run in enumerate([*result["latency_runs"], *result["local_latency_runs"]], 1):
        cold = run["cold start: worker start -> first start (s)"]
        print(f"  latency run {number} ({run['executor']} executor): worker start -> ready "
              f"{run['worker start -> ready (s)']:.2f}s, cold start (worker start -> first "
              f"{STARTED[run['executor']]}) {'none' if cold is None else f'{cold:.2f}s'}")
        for hop, summary in run["hops"].items():
            print(f"    {hop:<29} p50 {summary['p50'] * 1000:7.1f} ms  p99 {summary['p99'] * 1000:7.1f} ms")

if __name__ == "__main__":
    main()
