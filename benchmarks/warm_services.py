"""Warm services on the local stack (a gateway with OSCAR's API, one worker, Kafka, an S3 server of the run's own),
each figure against its baseline in the same run:

* ``POST /run/<svc>`` on warm replicas (``--clients`` at once, as many replicas, one request each at a time)
  against the floor: the same script run directly with ``/bin/sh`` from this process, same concurrency, input
  written and output read as the replica does, on the file system where the replica stages them (the worker's
  ``memory_dir``). Requests/s, the ratio, p50/p99 and the p50 latency added; and, for reference, the same floor
  staged on the disk's file system (where replicas staged requests before ``memory_dir``);
* storage events through a warm stage against one local job per event (same script, same concurrency): events/s
  and upload -> result p50/p99 (from the Kafka timestamps of the event and of its result);
* cold start: scaled to zero, the first ``/run``'s latency against the next one's; and a load step from one
  client to ``--clients``: the time until every replica the step needs is started.

    .venv/bin/python -m benchmarks.warm_services [--seconds 8] [--repeats 3] [--clients 4] [--files 300] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from benchmarks.common import RESULTS, Process, write_results
from benchmarks.profiling import py_spy, write_top
from oscar_stream.cli.context import quiet_kafka_client
from oscar_stream.core.results import Result
from oscar_stream.demo.data import percentile
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.observe.cpu import machine_busy_seconds, process_cpu_seconds
from oscar_stream.stack.process import free_port
from oscar_stream.stack.stack import Stack
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from tests.support.faults import Worker, until
from tests.support.kafka_io import read_all
from tests.support.stack import ensure_stack, isolated_config, notifying_store, write_config

AUTH = {"Authorization": "Basic " + base64.b64encode(b"oscar:bench-password").decode()}
SCRIPT = 'tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH")"\n'
PAYLOAD = b"a small input of a synchronous call"


async def _create(http: aiohttp.ClientSession, url: str, spec: dict[str, Any]) -> str:
    async with http.post(f"{url}/system/services", data=orjson.dumps(spec), headers=AUTH) as created:
        assert created.status == 201, await created.text()
    async with http.get(f"{url}/system/services/{spec['name']}", headers=AUTH) as answer:
        token: str = (await answer.json())["token"]
        return token


async def _closed_loop(clients: int, seconds: float, one: Any) -> tuple[float, list[float]]:
    """``clients`` loops calling ``one(lane)`` for ``seconds``: calls/s and every call's latency."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def lane(index: int) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            await one(index)
            latencies.append(time.perf_counter() - started)

    began = time.monotonic()
    await asyncio.gather(*(lane(i) for i in range(clients)))
    return len(latencies) / (time.monotonic() - began), latencies


async def _run_call(http: aiohttp.ClientSession, url: str, token: str) -> None:
    async with http.post(url, data=base64.b64encode(PAYLOAD), headers={"Authorization": f"Bearer {token}"}) as answer:
        body = await answer.read()
        assert answer.status == 200 and base64.b64decode(body) == PAYLOAD.upper(), (answer.status, body[:200])


async def _direct_call(work: Path, lane: int) -> None:
    """The floor: what a replica does per request, with nothing around it — the script file run with /bin/sh
    (as jobs run it), its input written and its output read, in ``work``."""
    folder = work / f"direct-{lane}"
    (folder / "output").mkdir(parents=True, exist_ok=True)
    (folder / "input").write_bytes(PAYLOAD)
    script = work / "script.sh"
    if not script.exists():
        script.write_text(SCRIPT)
    env = {"PATH": os.environ["PATH"], "INPUT_FILE_PATH": str(folder / "input"),
           "TMP_OUTPUT_DIR": str(folder / "output")}
    proc = await asyncio.create_subprocess_exec("/bin/sh", str(script), env=env)
    assert await proc.wait() == 0
    assert (folder / "output" / "input").read_bytes() == PAYLOAD.upper()


async def _events(settings: Any, store: S3Store, service: str, files: int, tmp: Path) -> dict[str, float]:
    names = TopicNames(settings.kafka.topic_prefix)
    source = tmp / "frame.txt"
    source.write_bytes(b"a frame\n")
    gate = asyncio.Semaphore(16)

    async def upload(index: int) -> None:
        async with gate:
            await store.upload(source, "bench-warm", f"{service}/in/{index:05d}.txt")

    started = time.monotonic()
    await asyncio.gather(*(upload(i) for i in range(files)))
    while True:
        results = [r for r in await read_all(settings, names.results)
                   if Result.from_json(r.value).service == service]
        if len(results) >= files:
            break
        if time.monotonic() - started > 120:
            raise RuntimeError(f"{len(results)} results of {files} uploads to {service} after 120 s: see the "
                               f"worker's log in {tmp}")
        await asyncio.sleep(0.5)
    elapsed = time.monotonic() - started
    event_ms = {orjson.loads(r.value)["id"]: r.timestamp for r in await read_all(settings, names.events)}
    latencies = [(r.timestamp - event_ms[Result.from_json(r.value).event_id]) / 1000 for r in results]
    assert all(Result.from_json(r.value).status == "succeeded" for r in results)
    return {"events_per_s": files / elapsed, "p50_s": percentile(latencies, 0.5),
            "p99_s": percentile(latencies, 0.99)}


async def _metric(port: int, name: str, service: str, below: float = float("inf"), at_least: float = 0.0) -> bool:
    """Whether the worker's series of ``name`` for ``service`` is within [at_least, below)."""
    value = 0.0
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as answer:
        for line in (await answer.text()).splitlines():
            if line.startswith(name + "{") and f'service="{service}"' in line:
                value = float(line.rsplit(" ", 1)[1])
    return at_least <= value < below


async def _cold_and_step(http: aiohttp.ClientSession, url: str, worker_port: int, clients: int,
                         repeats: int) -> dict[str, Any]:
    name = "bench-cold"
    token = await _create(http, url, {"name": name, "image": "alpine", "script": "sleep 0.05; " + SCRIPT, "warm": {
        "min_replicas": 0, "max_replicas": clients, "concurrency": 1, "idle_seconds": 1, "queue": 1000}})
    target = f"{url}/run/{name}"
    cold, warm, steps = [], [], []
    for _ in range(repeats):
        await until(lambda: _metric(worker_port, "oscar_stream_warm_replicas", name, below=1), what="scaled to zero")
        started = time.perf_counter()
        await _run_call(http, target, token)
        cold.append(time.perf_counter() - started)
        started = time.perf_counter()
        await _run_call(http, target, token)
        warm.append(time.perf_counter() - started)
        # the step: one client, then ``clients``; the clock runs until every replica they need is ready
        stepped = time.monotonic()
        load = asyncio.ensure_future(_closed_loop(clients, 4.0, lambda lane: _run_call(http, target, token)))
        await until(lambda: _metric(worker_port, "oscar_stream_warm_replicas", name, at_least=clients),
                    every_s=0.01, what="every replica started")
        steps.append(time.monotonic() - stepped)
        await load
    return {"cold_first_call_s": cold, "warm_next_call_s": warm, "step_to_all_replicas_s": steps}


async def _profile(work: Path, pids: tuple[int, int], clients: int, seconds: float, call: Any) -> None:
    """py-spy on the gateway and the worker during a round of /run calls; their top functions next to the
    results (``warm_services_profile_<process>.txt``)."""
    raws = {name: work / f"{name}.raw" for name in ("gateway", "worker")}
    async with py_spy(pids[0], raws["gateway"]), py_spy(pids[1], raws["worker"]):
        await _closed_loop(clients, seconds, call)
    RESULTS.mkdir(exist_ok=True)
    for name, raw in raws.items():
        write_top(raw, RESULTS / f"warm_services_profile_{name}.txt")
        print(f"profile of the {name}: {RESULTS / f'warm_services_profile_{name}.txt'}", flush=True)


async def measure(stack: Stack, seconds: float, repeats: int, clients: int, files: int,
                  profile: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="oscar-bench-") as tmp:
        work = Path(tmp)
        port = free_port()
        config = isolated_config(stack, work, gateway={"port": port}, api={
            "username": "oscar", "password": "bench-password", "token_secret": "bench-secret"})
        await apply_topics(write_config(config, work / "oscar-stream.yaml"))
        raw_topic = TopicNames(config["kafka"]["topic_prefix"]).raw("minio.default")
        with notifying_store(stack, raw_topic, work) as endpoint:
            config["storages"][0]["endpoint"] = endpoint
            worker = Worker(config, work, "worker")
            settings = worker.settings
            gateway = Process(worker.config_file, "gateway", log=work / "gateway.log")
            worker.start()
            url = f"http://127.0.0.1:{port}"
            store = S3Store(settings.storages[0])
            runs: dict[str, list[float]] = {"run": [], "direct": [], "direct_disk": []}
            latency: dict[str, list[float]] = {name: [] for name in runs}
            cpu_ms: dict[str, dict[str, list[float]]] = {name: {} for name in runs}
            staged = Path(tempfile.mkdtemp(prefix="oscar-bench-direct-", dir=settings.worker.memory_dir or work))
            try:
                await asyncio.to_thread(gateway.wait_http, f"{url}/readyz")
                await worker.wait_ready()
                assert worker.process is not None
                worker_pid = worker.process.proc.pid
                await store.ensure_bucket("bench-warm")
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as http:
                    warm = {"min_replicas": clients, "max_replicas": clients, "concurrency": 1, "queue": 1000}
                    token = await _create(http, url, {"name": "bench-run", "image": "alpine", "script": SCRIPT,
                                                      "warm": warm})
                    target = f"{url}/run/bench-run"
                    await _closed_loop(clients, 2.0, lambda lane: _run_call(http, target, token))  # warm-up
                    for round_ in range(repeats):  # interleaved, so drift hits both alike
                        for name, call in (("run", lambda lane: _run_call(http, target, token)),
                                           ("direct", lambda lane: _direct_call(staged, lane)),
                                           ("direct_disk", lambda lane: _direct_call(work, lane))):
                            before = (machine_busy_seconds(), process_cpu_seconds(gateway.proc.pid),
                                      process_cpu_seconds(worker_pid), process_cpu_seconds(os.getpid()))
                            rate, lat = await _closed_loop(clients, seconds, call)
                            after = (machine_busy_seconds(), process_cpu_seconds(gateway.proc.pid),
                                     process_cpu_seconds(worker_pid), process_cpu_seconds(os.getpid()))
                            runs[name].append(rate)
                            latency[name] += lat
                            for part, spent in zip(("machine", "gateway", "worker", "client"),
                                                   (a - b for a, b in zip(after, before, strict=True)),
                                                   strict=True):
                                cpu_ms[name].setdefault(part, []).append(spent / len(lat) * 1000)
                        print(f"round {round_ + 1}/{repeats}: /run {runs['run'][-1]:.0f}/s, direct "
                              f"{runs['direct'][-1]:.0f}/s, direct on disk {runs['direct_disk'][-1]:.0f}/s",
                              flush=True)
                    if profile:  # one more /run round, not counted, with both processes sampled
                        await _profile(work, (gateway.proc.pid, worker_pid), clients, seconds,
                                       lambda lane: _run_call(http, target, token))
                    events: dict[str, dict[str, float]] = {}
                    for kind in ("warm", "job"):
                        spec: dict[str, Any] = {
                            "name": f"bench-ev-{kind}", "image": "alpine", "script": SCRIPT, "concurrency": clients,
                            "input": [{"storage_provider": "minio", "path": f"bench-warm/bench-ev-{kind}/in"}],
                            "output": [{"storage_provider": "minio", "path": f"bench-warm/bench-ev-{kind}/out"}]}
                        if kind == "warm":
                            spec["warm"] = {**warm, "min_replicas": clients}
                        await _create(http, url, spec)
                        await asyncio.sleep(2)  # the worker's table and replicas are ready
                        events[kind] = await _events(settings, store, f"bench-ev-{kind}", files, work)
                        print(f"events through {kind}: {events[kind]}", flush=True)
                    cold = await _cold_and_step(http, url, worker.port, clients, repeats)
            finally:
                shutil.rmtree(staged, ignore_errors=True)
                await store.close()
                gateway.stop()
                worker.stop()
    medians = {name: statistics.median(r) for name, r in runs.items()}
    p50 = {name: percentile(v, 0.5) * 1000 for name, v in latency.items()}
    return {
        "seconds": seconds, "repeats": repeats, "clients": clients, "files": files,
        "requests_per_second": runs, "median": medians, "ratio": medians["run"] / medians["direct"],
        "ratio_to_disk_floor": medians["run"] / medians["direct_disk"],
        "p50_ms": p50, "p99_ms": {name: percentile(v, 0.99) * 1000 for name, v in latency.items()},
        "p50_added_ms": p50["run"] - p50["direct"], "events": events, "cold": cold,
        "cpu_ms_per_call": {name: {part: statistics.median(v) for part, v in parts.items()}
                            for name, parts in cpu_ms.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="py-spy on the gateway and the worker (one more round)")
    args = parser.parse_args()
    quiet_kafka_client()
    stack = ensure_stack(("kafka", "s3"))
    result = asyncio.run(measure(stack, args.seconds, args.repeats, args.clients, args.files, args.profile))
    print(f"/run {result['median']['run']:.0f}/s against direct {result['median']['direct']:.0f}/s: ratio "
          f"{result['ratio']:.2f} (direct staged on disk {result['median']['direct_disk']:.0f}/s: ratio "
          f"{result['ratio_to_disk_floor']:.2f}); p50 {result['p50_ms']['run']:.1f} ms "
          f"(direct {result['p50_ms']['direct']:.1f}), "
          f"p99 {result['p99_ms']['run']:.1f} ms (direct {result['p99_ms']['direct']:.1f}); p50 added "
          f"{result['p50_added_ms']:.1f} ms")
    for name, parts in result["cpu_ms_per_call"].items():
        print(f"CPU per call, {name}: " + ", ".join(f"{part} {ms:.2f} ms" for part, ms in parts.items()))
    for kind, figures in result["events"].items():
        print(f"events through {kind:<4}: {figures['events_per_s']:.1f}/s, upload -> result p50 "
              f"{figures['p50_s'] * 1000:.0f} ms, p99 {figures['p99_s'] * 1000:.0f} ms")
    cold = result["cold"]
    print("cold start (first call from zero replicas): " + ", ".join(f"{v * 1000:.0f}" for v in
                                                                       cold["cold_first_call_s"]) + " ms; next call: "
          + ", ".join(f"{v * 1000:.0f}" for v in cold["warm_next_call_s"]) + " ms")
    print(f"load step 1 -> {result['clients']} clients, until all replicas run: "
          + ", ".join(f"{v * 1000:.0f}" for v in cold["step_to_all_replicas_s"]) + " ms")
    path = write_results("warm_services", result)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
