"""Shared benchmark plumbing: settings on the local stack, processes, counting records, writing results."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer

from oscar_stream.config import Settings, load_settings
from oscar_stream.kafka.clients import all_partitions, consumer
from oscar_stream.stack.process import free_port
from oscar_stream.stack.stack import Stack

RESULTS = Path(__file__).parent / "results"


def bench_settings(stack: Stack, work: Path, **extra: Any) -> tuple[Settings, Path]:
    s = stack.settings.stack
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    config: dict[str, Any] = {
        "app_id": f"{prefix}-worker",
        "kafka": {"bootstrap_servers": f"127.0.0.1:{s.kafka_port}", "topic_prefix": prefix},
        "sources": [{"id": "minio.default", "kind": "s3", "key_encoding": "url", "token": f"tok-{prefix}"}],
        "storages": [{"id": "minio.default", "kind": "s3", "endpoint": f"http://127.0.0.1:{s.s3_port}",
                      "access_key": s.s3_access_key, "secret_key": s.s3_secret_key.get_secret_value()}],
        "metrics": {"port": free_port()},
        "worker": {"work_dir": str(work / "runs")},
        "stack": {"state_dir": str(s.state_dir), "cache_dir": str(s.cache_dir)},
        **extra,
    }
    work.mkdir(parents=True, exist_ok=True)
    path = work / "oscar-stream.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_settings(path), path


class Process:
    def __init__(self, config: Path, *args: str, log: Path) -> None:
        self.out = log.open("wb")
        env = {**os.environ, "OSCAR_STREAM_CONFIG": str(config)}
        self.proc = subprocess.Popen([sys.executable, "-m", "oscar_stream", *args], stdout=self.out,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_ready(self, url: str, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited with {self.proc.returncode}; see {self.out.name}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{url} not ready; see {self.out.name}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.out.close()


async def count_until(settings: Settings, topic: str, count: int, timeout_s: float = 600.0) -> float:
    """Wait until ``topic`` holds ``count`` records; return the monotonic time when the last one was seen."""
    reader: AIOKafkaConsumer = consumer(settings.kafka, group_id=None)
    await reader.start()
    try:
        partitions = await all_partitions(settings.kafka, topic)
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        seen = 0
        deadline = time.monotonic() + timeout_s
        while seen < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {seen}/{count} records on {topic} after {timeout_s}s")
            batch = await reader.getmany(timeout_ms=100, max_records=10000)
            seen += sum(len(m) for m in batch.values())
        return time.monotonic()
    finally:
        await reader.stop()


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**payload, "machine": machine(),
                                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
    return path


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)
