"""The local executor against its floor, on the local stack's versitygw, with the same trivial script and the
same concurrency:

* floor: a minimal asyncio loop that downloads the input (aiobotocore ``get_object``), runs the script with
  ``/bin/sh`` in a fresh folder, and uploads what it wrote (``put_object``);
* the same loop with oscar-stream's S3 store (its own signed requests) instead of aiobotocore, for reference:
  what oscar-stream adds besides its S3 client;
* oscar-stream: a worker with only the launch role (local executor), fed the invocations on its Kafka topic;
  it stages, runs, uploads, keeps the log, records the job's state and publishes one result per invocation.
  Its rate runs from the first to the last result record's timestamp.

With ``--profile`` the worker runs under py-spy for one more run and the functions that hold most of its
samples are written next to the results (``benchmarks/results/local_executor_profile.txt``).

    .venv/bin/python -m benchmarks.local_executor [--jobs 400] [--concurrency 8] [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiobotocore.session import get_session

from benchmarks.common import (
    RESULTS,
    Process,
    bench_settings,
    count_until,
    plot_runs,
    process_rss_mb,
    write_results,
)
from benchmarks.profiling import py_spy, write_top
from oscar_stream.cli.context import quiet_kafka_client
from oscar_stream.config import Settings
from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.ids import created_object_id
from oscar_stream.core.invocation import Invocation
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.observe.cpu import children_cpu_seconds, machine_busy_seconds, process_cpu_seconds
from oscar_stream.route.model import InputSpec, OutputSpec, ServiceSpec
from oscar_stream.stack.stack import DEFAULT_COMPONENTS, Stack
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from oscar_stream.worker.publish import apply_services, current_services
from tests.support.kafka_io import produce_records
from tests.support.stack import ISSUED_PREFIXES, delete_topics_of, ensure_stack

BUCKET = "bench-local"
SCRIPT = '#!/bin/sh\ncp "$INPUT_FILE_PATH" "$TMP_OUTPUT_DIR/"\n'
BODY = b"id,station,value\n" + b"".join(f"{i},north,{i * 0.5}\n".encode() for i in range(40))


def _client(settings: Settings) -> Any:
    storage = settings.storages[0]
    secret = storage.secret_key.get_secret_value() if storage.secret_key else ""
    return get_session().create_client("s3", endpoint_url=storage.endpoint, aws_access_key_id=storage.access_key,
                                       aws_secret_access_key=secret, region_name="us-east-1")


async def _stage_inputs(settings: Settings, keys: list[str]) -> None:
    async with _client(settings) as s3:
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            await s3.create_bucket(Bucket=BUCKET)
        gate = asyncio.Semaphore(32)

        async def put(key: str) -> None:
            async with gate:
                await s3.put_object(Bucket=BUCKET, Key=key, Body=BODY)

        await asyncio.gather(*(put(k) for k in keys))


@dataclass(frozen=True)
class Rate:
    jobs_per_second: float
    machine_cpu_per_job_s: float  # every core's busy time (Kafka, versitygw and the scripts included) per job


class _Botocore:
    def __init__(self, s3: Any) -> None:
        self.s3 = s3

    async def get(self, key: str) -> bytes:
        answer = await self.s3.get_object(Bucket=BUCKET, Key=key)
        async with answer["Body"] as body:
            data: bytes = await body.read()
            return data

    async def put(self, key: str, data: bytes) -> None:
        await self.s3.put_object(Bucket=BUCKET, Key=key, Body=data)


class _Signed:
    def __init__(self, store: S3Store) -> None:
        self.store = store

    async def get(self, key: str) -> bytes:
        return await self.store.get_bytes(BUCKET, key) or b""

    async def put(self, key: str, data: bytes) -> None:
        await self.store.put_bytes(data, BUCKET, key)


@contextlib.asynccontextmanager
async def _objects(settings: Settings, signed: bool) -> AsyncIterator[_Botocore | _Signed]:
    if not signed:
        async with _client(settings) as s3:
            yield _Botocore(s3)
        return
    store = S3Store(settings.storages[0])
    try:
        yield _Signed(store)
    finally:
        await store.close()


async def _floor_rate(settings: Settings, keys: list[str], concurrency: int, work: Path, signed: bool) -> Rate:
    gate = asyncio.Semaphore(concurrency)
    script = work / "script.sh"
    script.write_text(SCRIPT)
    async with _objects(settings, signed) as s3:

        async def one(key: str) -> None:
            async with gate:
                folder = work / uuid.uuid4().hex
                output = folder / "output"
                output.mkdir(parents=True)
                data = await s3.get(key)
                source = folder / key.rsplit("/", 1)[-1]
                source.write_bytes(data)
                proc = await asyncio.create_subprocess_exec(
                    "/bin/sh", str(script), cwd=folder, stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                    env={"PATH": "/usr/bin:/bin", "INPUT_FILE_PATH": str(source), "TMP_OUTPUT_DIR": str(output)})
                assert await proc.wait() == 0
                for produced in output.iterdir():
                    await s3.put(f"floor-out/{produced.name}", produced.read_bytes())
                shutil.rmtree(folder)

        started, busy = time.monotonic(), machine_busy_seconds()
        await asyncio.gather(*(one(k) for k in keys))
        return Rate(len(keys) / (time.monotonic() - started), (machine_busy_seconds() - busy) / len(keys))



def _invocations(service: ServiceSpec, keys: list[str]) -> list[Invocation]:
    out = []
    for n, key in enumerate(keys):
        etag = f"{n:032x}"
        event = StorageEvent(created_object_id("minio.default", BUCKET, key, None, etag, None), CREATED,
                             "2026-01-01T00:00:00.000Z", "minio.default", "s3", BUCKET, key,
                             "s3:ObjectCreated:Put", size=len(BODY), etag=etag)
        out.append(Invocation.of(service.name, service.version, event))
    return out


async def _worker_rate(stack: Stack, work: Path, keys: list[str], concurrency: int,
                       profile: Path | None = None) -> Rate:
    settings, config = bench_settings(stack, work, worker={"executor": "local", "work_dir": str(work / "runs")})
    await apply_topics(settings)
    service = ServiceSpec(name="bench-local", image="unused", script=SCRIPT, concurrency=concurrency,
                          inputs=(InputSpec("minio.default", f"{BUCKET}/in"),),
                          outputs=(OutputSpec("minio.default", f"{BUCKET}/out"),))
    await apply_services(settings, [service])
    names = TopicNames(settings.kafka.topic_prefix)
    worker = Process(config, "worker", "--roles", "launch", log=work / "worker.log")
    try:
        worker.wait_http(f"http://127.0.0.1:{settings.metrics.port}/readyz")
        async with py_spy(worker.proc.pid, profile) if profile is not None else contextlib.nullcontext():
            published = (await current_services(settings))[service.name]  # its version includes the token nonce
            invocations = _invocations(published, keys)
            pid = worker.proc.pid
            busy, own, children = machine_busy_seconds(), process_cpu_seconds(pid), children_cpu_seconds(pid)
            await produce_records(settings, names.invocations,
                                  [(i.id.encode(), i.to_json(), []) for i in invocations])
            arrival = await count_until(settings, names.results, len(keys))
            own_after, children_after = process_cpu_seconds(pid), children_cpu_seconds(pid)
        print(f"  worker CPU per job: own {(own_after - own) / len(keys) * 1000:.2f} ms, its scripts "
              f"{(children_after - children) / len(keys) * 1000:.2f} ms; worker RSS "
              f"{process_rss_mb(worker.proc.pid):.0f} MB", flush=True)
        return Rate(arrival.rate(len(keys)), (machine_busy_seconds() - busy) / len(keys))
    finally:
        worker.stop()


async def measure(stack: Stack, jobs: int, concurrency: int, repeats: int, profile: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="oscar-bench-local-"))
    settings, _ = bench_settings(stack, work / "floor")
    floor, signed = "floor (asyncio + aiobotocore + /bin/sh)", "floor with oscar-stream's S3 requests"
    ours = "oscar-stream local executor"
    runs: dict[str, list[float]] = {floor: [], signed: [], ours: []}
    cpu: dict[str, list[float]] = {floor: [], signed: [], ours: []}
    for repeat in range(repeats):
        keys = [f"in/{uuid.uuid4().hex[:8]}-{n:05d}.csv" for n in range(jobs)]
        await _stage_inputs(settings, keys)
        for n in range(2):
            (work / f"floor-{repeat}-{n}").mkdir()
        for name, rate in ((floor, await _floor_rate(settings, keys, concurrency, work / f"floor-{repeat}-0", False)),
                           (signed, await _floor_rate(settings, keys, concurrency, work / f"floor-{repeat}-1", True)),
                           (ours, await _worker_rate(stack, work / f"worker-{repeat}", keys, concurrency))):
            runs[name].append(rate.jobs_per_second)
            cpu[name].append(rate.machine_cpu_per_job_s * 1000)
        print(", ".join(f"{k}: {runs[k][-1]:.1f} jobs/s, machine CPU {cpu[k][-1]:.1f} ms/job" for k in runs),
              flush=True)
    rates = {k: statistics.median(v) for k, v in runs.items()}
    result: dict[str, Any] = {
        "jobs": jobs, "concurrency": concurrency, "repeats": repeats, "runs": runs, "jobs_per_second_median": rates,
        "ratio_per_run": [w / f for f, w in zip(runs[floor], runs[ours], strict=True)],
        "ratio_to_signed_floor_per_run": [w / f for f, w in zip(runs[signed], runs[ours], strict=True)],
        "machine_cpu_ms_per_job": cpu,
    }
    if profile:
        keys = [f"in/{uuid.uuid4().hex[:8]}-{n:05d}.csv" for n in range(jobs)]
        await _stage_inputs(settings, keys)
        raw = RESULTS / "local_executor_profile.raw"
        RESULTS.mkdir(exist_ok=True)
        await _worker_rate(stack, work / "profiled", keys, concurrency, raw)
        top = write_top(raw, RESULTS / "local_executor_profile.txt", 15)
        result["profile_top"] = top
    shutil.rmtree(work, ignore_errors=True)
    await delete_topics_of(settings.kafka.bootstrap_servers, ISSUED_PREFIXES)
    return result


def plot(result: dict[str, Any], path: Path) -> None:
    ratios = ", ".join(f"{r:.2f}" for r in result["ratio_per_run"])
    plot_runs(result["runs"], result["jobs_per_second_median"], "jobs per second",
              f"local executor / floor per run: {ratios} (concurrency {result['concurrency']})", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    quiet_kafka_client()
    stack = ensure_stack(DEFAULT_COMPONENTS)  # before the event loop: starting Kafka applies the topics
    result = asyncio.run(measure(stack, args.jobs, args.concurrency, args.repeats, args.profile))
    path = write_results("local_executor", result)
    plot(result, RESULTS / "local_executor.png")
    print(f"results: {path}; ratio per run {', '.join(f'{r:.2f}' for r in result['ratio_per_run'])}; to the floor "
          f"with oscar-stream's S3 requests {', '.join(f'{r:.2f}' for r in result['ratio_to_signed_floor_per_run'])}")


if __name__ == "__main__":
    main()
