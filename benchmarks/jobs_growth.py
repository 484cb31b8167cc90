"""Cost as the Jobs in the namespace grow 10x twice (1k -> 10k -> 50k by default) on the local stack's real API
server (kube-apiserver + etcd, kwok's node runs the pods), with the Kubernetes executor in this process:

* the launch rate of each step (Jobs created/s for the Jobs added to reach the size; a raw kubernetes-asyncio
  create loop of the same spec and concurrency, 1,000 Jobs right after, as the baseline of that step — those
  Jobs stay too, so the namespace holds 1,000 more per step than the size says);
* memory at each size: this process (the executor's watch keeps a view of the Jobs whose result is not
  published yet: here most of them, as kwok's node and the Job controller finish only a few Jobs per second
  under this load), the API server and etcd; each step waits until the executor has seen every Job (in its
  view, or reported);
* cleanup: deleting every Job of the run one by one (16 at a time, their pods with them), until the API server
  lists none of them.

``--finished``: a deployment's steady state instead, where the namespace holds mostly Jobs that finished and
whose results were published long ago (they stay until their TTL). Each step first fills the namespace up to
its size with such Jobs — the service's own Job spec with ``completions: 0`` (the Job controller marks it
Complete without a pod) and the label the executor puts on a reported Job — then the executor launches
``--launch`` Jobs and the raw loop 1,000, both measured. Unlike a real namespace, these finished Jobs have no
pods.

    .venv/bin/python -m benchmarks.jobs_growth [--sizes 1000 10000 50000] [--concurrency 16]
                                               [--finished [--launch 1000]]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from benchmarks.common import bench_settings, process_rss_mb, write_results
from benchmarks.launcher_throughput import NAMESPACE, _api, _invocations
from oscar_stream.cli.context import quiet_kafka_client
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.results import Result
from oscar_stream.executors.base import Limiter
from oscar_stream.executors.kubernetes import KubernetesExecutor, answer_body, transient
from oscar_stream.launch import job_spec
from oscar_stream.retry import retrying
from oscar_stream.route.model import InputSpec, ServiceSpec
from oscar_stream.stack.stack import DEFAULT_COMPONENTS, Stack
from tests.support.faults import until
from tests.support.stack import ensure_stack

BASELINE_JOBS = 1000


def _server_rss(stack: Stack, name: str) -> float:
    for record in stack._records().get("kubernetes", []):
        if Path(record.executable).name == name:
            return process_rss_mb(record.pid)
    return float("nan")


async def _delete_all(api: client.ApiClient, service: str, concurrency: int) -> int:
    """Delete a service's Jobs one by one, ``concurrency`` at a time, their pods with them (background
    propagation), as the TTL controller removes finished Jobs in a deployment; how many. One collection delete
    of tens of thousands of Jobs ran at ~8 Jobs/s here and was dropped by the API server before it ended."""
    batch = client.BatchV1Api(api)
    names: list[str] = []
    token: str | None = None
    while True:
        paging: dict[str, Any] = {"_continue": token} if token else {}
        response: Any = await batch.list_namespaced_job(
            NAMESPACE, label_selector=f"{job_spec.LABEL_SERVICE}={service}", limit=500, _preload_content=False,
            **paging)
        page = orjson.loads(await answer_body(response))
        names += [job["metadata"]["name"] for job in page.get("items") or ()]
        token = page["metadata"].get("continue")
        if not token:
            break
    gate = asyncio.Semaphore(concurrency)

    async def delete(name: str) -> None:
        async def once() -> None:
            try:
                await batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Background",
                                                  _request_timeout=60)
            except ApiException as err:
                if err.status != 404:  # gone already: deleted
                    raise

        async with gate:
            await retrying(once, what=f"delete Job {name}", retryable=transient, attempts=10)

    await asyncio.gather(*(delete(name) for name in names))
    return len(names)


async def _wait_seen(executor: KubernetesExecutor, results: list[Result], stack: Stack, size: int,
                     timeout_s: float = 600.0) -> None:
    """Until the executor has seen ``size`` Jobs (in its watch's view, or reported: a reported Job leaves the
    view); progress every 30 s meanwhile (the executor logs its watch's restarts)."""
    started = time.monotonic()
    report = 30.0
    while len(executor._jobs) + len(results) < size:
        waited = time.monotonic() - started
        if waited > timeout_s:
            raise AssertionError(f"the executor saw {len(executor._jobs) + len(results)} of {size} Jobs after "
                                 f"{timeout_s:.0f}s")
        if waited > report:
            report += 30.0
            print(f"  waiting for the watch: {len(executor._jobs)} Jobs in view and {len(results)} reported, of "
                  f"{size}, after {waited:.0f}s; kube-apiserver {_server_rss(stack, 'kube-apiserver'):.0f} MB",
                  flush=True)
        await asyncio.sleep(1.0)


async def _none_left(api: client.ApiClient, service: str) -> bool:
    page = orjson.loads(await answer_body(await client.BatchV1Api(api).list_namespaced_job(
        NAMESPACE, label_selector=f"{job_spec.LABEL_SERVICE}={service}", limit=1, _preload_content=False)))
    return not page.get("items")


def _finished(body: dict[str, Any]) -> dict[str, Any]:
    """A Job of ``body``'s spec that is done once created (the Job controller marks it Complete, no pod) and
    carries the label of a Job whose result was published: one of the many a deployment keeps until their TTL."""
    body["metadata"]["labels"][job_spec.LABEL_REPORTED] = "true"
    body["spec"]["completions"] = 0
    body["spec"]["parallelism"] = 0
    return body


async def _rate(service: ServiceSpec, count: int, concurrency: int,
                act: Callable[[Invocation], Awaitable[None]]) -> float:
    """Jobs/s of ``act`` on ``count`` new invocations, ``concurrency`` at a time, each made as it is needed
    (tens of thousands made ahead would be this process's memory, not the executor's)."""
    def invocations() -> Iterator[Invocation]:
        for start in range(0, count, 1000):
            yield from _invocations(service, min(1000, count - start))

    pending = invocations()

    async def one_at_a_time() -> None:
        for invocation in pending:  # one shared iterator: each invocation is taken once
            await act(invocation)

    started = time.monotonic()
    await asyncio.gather(*(one_at_a_time() for _ in range(concurrency)))
    return count / (time.monotonic() - started)


async def _raw_rate(api: client.ApiClient, service: ServiceSpec, count: int, concurrency: int,
                    finished: bool = False) -> float:
    """Jobs/s of a raw kubernetes-asyncio create loop of the executor's Job spec."""
    batch = client.BatchV1Api(api)

    async def create(invocation: Invocation) -> None:
        body = job_spec.build_job(invocation, service, NAMESPACE, "oscar-stream:bench", "unused", "bench")
        await batch.create_namespaced_job(NAMESPACE, _finished(body) if finished else body)  # type: ignore[arg-type]

    return await _rate(service, count, concurrency, create)


async def measure(stack: Stack, sizes: list[int], concurrency: int, launch_per_step: int | None) -> dict[str, Any]:
    """``launch_per_step``: the ``--finished`` mode (see the module's text); None: the executor launches every
    Job of each size."""
    kubeconfig = stack.settings.stack.state_dir / "kubernetes" / "kubeconfig"
    work = Path(tempfile.mkdtemp(prefix="oscar-bench-jobs-"))
    settings, _ = bench_settings(stack, work, kubernetes={"kubeconfig": str(kubeconfig),
                                                          "max_requests_per_second": 10000})
    # Jobs stay (a long TTL): the namespace grows as a busy deployment's does between two clean-ups.
    service = ServiceSpec(name="bench-grow", image="alpine:3.22", script="true", ttl_s=86400,
                          inputs=(InputSpec("minio.default", "bench/in"),))
    baseline = ServiceSpec(name="bench-grow-raw", image="alpine:3.22", script="true", ttl_s=86400,
                           inputs=(InputSpec("minio.default", "bench/in"),))
    results: list[Result] = []

    async def sink(result: Result) -> None:
        results.append(result)

    limiter = Limiter(lambda name: 10**9)
    executor = KubernetesExecutor(sink, limiter, settings)
    await executor.start()
    api = await _api(kubeconfig)
    steps: list[dict[str, Any]] = []
    try:
        created = launched = 0  # Jobs in the namespace (the baseline's aside), launched by the executor

        async def launch(invocation: Invocation) -> None:
            await executor.launch(invocation, service, await limiter.acquire(service.name))

        for size in sizes:
            step: dict[str, Any] = {}
            if launch_per_step is not None:
                filling = size - created - launch_per_step
                if filling > 0:
                    step["filled_per_s"] = await _raw_rate(api, service, filling, concurrency, finished=True)
                    created += filling
                    print(f"  filled to {created} Jobs with finished ones ({step['filled_per_s']:.0f}/s)", flush=True)
            adding = size - created
            rate = await _rate(service, adding, concurrency, launch)
            created = size
            launched += adding
            raw = await _raw_rate(api, baseline, BASELINE_JOBS, concurrency)  # its Jobs stay until the end too
            await _wait_seen(executor, results, stack, launched)
            gc.collect()
            steps.append({**step, "jobs": size, "launched_per_s": rate, "raw_per_s_at_this_size": raw,
                          "ratio": rate / raw, "results_so_far": len(results), "in_view": len(executor._jobs),
                          "process_rss_mb": process_rss_mb(os.getpid()),
                          "apiserver_rss_mb": _server_rss(stack, "kube-apiserver"),
                          "etcd_rss_mb": _server_rss(stack, "etcd")})
            print(f"{size} Jobs: launched {rate:.0f}/s (raw at this size {raw:.0f}/s, ratio {rate / raw:.2f}); "
                  f"process {steps[-1]['process_rss_mb']:.0f} MB, kube-apiserver {steps[-1]['apiserver_rss_mb']:.0f} "
                  f"MB, etcd {steps[-1]['etcd_rss_mb']:.0f} MB; {len(results)} results, {len(executor._jobs)} Jobs "
                  "in the watch's view", flush=True)
        # Written before the cleanup, which can take long (on this machine ~8 Jobs/s with their pods).
        write_results("jobs_growth", {"sizes": sizes, "concurrency": concurrency, "launch_per_step": launch_per_step,
                                      "steps": steps, "cleanup_s": None})
        started = time.monotonic()
        deleted = sum([await _delete_all(api, name, concurrency) for name in (service.name, baseline.name)])
        deletes_s = time.monotonic() - started
        for name in (service.name, baseline.name):
            await until(functools.partial(_none_left, api, name), timeout_s=1800, every_s=1.0,
                        what=f"every Job of {name} gone")
        cleanup_s = time.monotonic() - started
        print(f"cleanup of {deleted} Jobs: deleted in {deletes_s:.1f} s ({deleted / deletes_s:.0f} Jobs/s), none "
              f"listed after {cleanup_s:.1f} s", flush=True)
    finally:
        await api.close()
        await executor.stop()
    return {"sizes": sizes, "concurrency": concurrency, "launch_per_step": launch_per_step, "steps": steps,
            "cleanup_s": cleanup_s,
            "cleanup_deleted": deleted, "cleanup_deletes_s": deletes_s}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result["steps"]
    jobs = [s["jobs"] for s in steps]
    fig, (rates, memory) = plt.subplots(1, 2, figsize=(11, 4))
    rates.plot(jobs, [s["launched_per_s"] for s in steps], marker="o", label="oscar-stream launcher")
    rates.plot(jobs, [s["raw_per_s_at_this_size"] for s in steps], marker="o", label="raw create loop")
    rates.set_xscale("log")
    rates.set_xlabel("Jobs in the namespace")
    rates.set_ylabel("Jobs created per second")
    rates.legend()
    for key, label in (("process_rss_mb", "executor's process"), ("apiserver_rss_mb", "kube-apiserver"),
                       ("etcd_rss_mb", "etcd")):
        memory.plot(jobs, [s[key] for s in steps], marker="o", label=label)
    memory.set_xscale("log")
    memory.set_xlabel("Jobs in the namespace")
    memory.set_ylabel("RSS (MB)")
    memory.legend()
    cleanup = result["cleanup_s"]
    kind = ", the others finished" if result.get("launch_per_step") else ""
    fig.suptitle(f"Jobs growing 10x twice{kind}" + (f" (cleanup of all: {cleanup:.0f} s)" if cleanup else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--finished", action="store_true",
                        help="fill each step with Jobs that finished and were reported (a steady state)")
    parser.add_argument("--launch", type=int, default=1000, help="with --finished: Jobs the executor launches per step")
    args = parser.parse_args()
    quiet_kafka_client()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("oscar_stream.executors.kubernetes").setLevel(logging.INFO)  # the watch's restarts
    stack = ensure_stack((*DEFAULT_COMPONENTS, "kubernetes"))  # before the event loop: Kafka applies topics
    result = asyncio.run(measure(stack, args.sizes, args.concurrency, args.launch if args.finished else None))
    path = write_results("jobs_growth", result)
    plot(result, path.with_suffix(".png"))
    print(f"written to {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
