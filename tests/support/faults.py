"""What the fault tests share: workers as real processes (kill -9, restart), objects and their notifications,
reading results back, and the figures each test reports."""

from __future__ import annotations

import asyncio
import copy
import inspect
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from oscar_stream.config import Settings
from oscar_stream.core.results import StoredObject
from oscar_stream.kafka.partitioner import partition_for
from oscar_stream.stack.process import free_port
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from tests.support.kafka_io import produce, read_all
from tests.support.processes import CliProcess
from tests.support.stack import write_config


class Worker:
    """``oscar-stream worker`` with its own metrics port, work folder and (optionally) instance id."""

    def __init__(self, config: dict[str, Any], work: Path, name: str, *args: str,
                 instance_id: str | None = None) -> None:
        self.name = name
        self.args = args
        self.work = work
        self.port = free_port()
        mine = copy.deepcopy(config)
        mine["metrics"] = {"port": self.port}
        mine["worker"] = {**mine.get("worker", {}), "work_dir": str(work / name / "runs")}
        if instance_id:
            mine["worker"]["instance_id"] = instance_id
        self.config_file = work / f"{name}.yaml"
        self.settings = write_config(mine, self.config_file)
        self.process: CliProcess | None = None
        self.starts = 0

    @property
    def runs_dir(self) -> str:
        return str(self.work / self.name / "runs")

    def start(self) -> float:
        self.starts += 1
        self.process = CliProcess(self.config_file, "worker", *self.args,
                                  log=self.work / f"{self.name}-{self.starts}.log")
        return time.monotonic()

    def kill(self) -> float:
        assert self.process is not None
        self.process.kill()
        return time.monotonic()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def _get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except OSError:
            return 0, b""

    async def ready_status(self) -> int:
        return (await asyncio.to_thread(self._get, "/readyz"))[0]

    async def wait_ready(self, timeout_s: float = 60.0) -> float:
        """Seconds until /readyz answers 200."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if await self.ready_status() == 200:
                return time.monotonic() - started
            await asyncio.sleep(0.1)
        tail = self.process.tail() if self.process else ""
        raise AssertionError(f"worker {self.name} not ready after {timeout_s}s:\n{tail}")

    async def metric(self, name: str, **labels: str) -> float:
        """The value of one series of ``name`` on /metrics (0 when it is not there)."""
        _, body = await asyncio.to_thread(self._get, "/metrics")
        for line in body.decode().splitlines():
            head, _, value = line.rpartition(" ")
            series = head[len(name):] if head.startswith(name) else None
            if series is None or (series and not series.startswith("{")):
                continue
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                return float(value)
        return 0.0


async def until(check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 120.0, every_s: float = 0.2,
                what: str = "condition") -> float:
    """Seconds until ``check()`` (awaited if it is a coroutine) is true; fails the test after ``timeout_s``."""
    started = time.monotonic()

    async def holds() -> bool:
        value = check()
        return bool(await value) if inspect.isawaitable(value) else bool(value)

    while not await holds():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what} not met within {timeout_s}s")
        await asyncio.sleep(every_s)
    return time.monotonic() - started


async def upload_objects(store: S3Store, bucket: str, prefix: str, count: int, tmp: Path,
                         concurrency: int = 16) -> list[StoredObject]:
    await store.ensure_bucket(bucket)
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> StoredObject:
        source = tmp / f"{prefix.replace('/', '_')}-{index}"
        source.write_bytes(f"object {index} of {prefix}\n".encode())
        async with gate:
            return await store.upload(source, bucket, f"{prefix}/{index:05d}.dat")

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def notification(stored: StoredObject) -> bytes:
    """What versitygw's Kafka target writes for one upload (keys as stored, quoted ETag)."""
    return orjson.dumps({"Records": [{
        "eventVersion": "2.2", "eventSource": "aws:s3", "eventTime": "2026-11-30T10:00:00Z",
        "eventName": "s3:ObjectCreated:Put", "userIdentity": {"PrincipalId": "faults"},
        "s3": {"bucket": {"name": stored.bucket}, "object": {"key": stored.key, "size": stored.size,
                                                              "eTag": f'"{stored.etag}"'}},
    }]})


async def notify(settings: Settings, objects: list[StoredObject]) -> None:
    """Write the store's notifications of ``objects`` to the raw topic, as a store's Kafka target would."""
    names = TopicNames(settings.kafka.topic_prefix)
    for start in range(0, len(objects), 500):
        await produce(settings, names.raw("minio.default"), [notification(o) for o in objects[start:start + 500]])


async def results(settings: Settings) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in await read_all(settings, TopicNames(settings.kafka.topic_prefix).results)]


async def wait_results(settings: Settings, distinct: int, timeout_s: float = 180.0,
                       service: str | None = None) -> list[dict[str, Any]]:
    """Every result record once at least ``distinct`` invocations (of ``service``) have one."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [r for r in await results(settings) if service is None or r["service"] == service]
        if len({r["invocation_id"] for r in found}) >= distinct or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


def duplicates(found: list[dict[str, Any]]) -> int:
    """Result records beyond the first of their invocation."""
    return sum(n - 1 for n in Counter(r["invocation_id"] for r in found).values())


def runs_per_key(log: Path) -> Counter[str]:
    """How often a script ran per object key (each run appends its key to ``log``)."""
    return Counter(log.read_text().splitlines()) if log.exists() else Counter()


def partition_of(invocation_id: str, partitions: int = 6) -> int:
    return partition_for(invocation_id.encode(), partitions)
