"""Shared benchmark plumbing: settings on the local stack, processes, counting records, writing results."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from oscar_stream.config import Settings
from oscar_stream.kafka.clients import all_partitions, consumer
from oscar_stream.stack.process import free_port
from oscar_stream.stack.stack import Stack
from tests.support.processes import CliProcess as Process
from tests.support.stack import isolated_config, write_config

__all__ = [
    "Arrival",
    "Process",
    "bench_settings",
    "count_until",
    "write_results",
    "wrk_posts",
]

RESULTS = Path(__file__).parent / "results"


def bench_settings(stack: Stack, work: Path, **extra: Any) -> tuple[Settings, Path]:
    """An isolated deployment (own topic prefix and groups) with MinIO-style URL-encoded keys."""
    work.mkdir(parents=True, exist_ok=True)
    config = isolated_config(stack, work, metrics={"port": free_port()}, **extra)
    config["sources"][0]["key_encoding"] = "url"
    path = work / "oscar-stream.yaml"
    return write_config(config, path), path


@dataclass(frozen=True)
class Arrival:
    seen_at: float  # monotonic time when the last record was read
    first_ms: int  # smallest and largest record timestamp (set by whoever produced the records)
    last_ms: int

    def rate(self, count: int) -> float:
        """Records per second between the first and the last record's timestamps."""
        return (count - 1) / max((self.last_ms - self.first_ms) / 1000, 0.001)


async def count_until(settings: Settings, topic: str, count: int, timeout_s: float = 600.0) -> Arrival:
    """Wait until ``topic`` holds ``count`` records."""
    reader: AIOKafkaConsumer = consumer(settings.kafka, group_id=None)
    await reader.start()
    try:
        partitions = await all_partitions(settings.kafka, topic)
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        seen, first, last = 0, 2**63, 0
        deadline = time.monotonic() + timeout_s
        while seen < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {seen}/{count} records on {topic} after {timeout_s}s")
            batch = await reader.getmany(timeout_ms=100, max_records=10000)
            for messages in batch.values():
                seen += len(messages)
                first = min(first, *(m.timestamp for m in messages))
                last = max(last, *(m.timestamp for m in messages))
        return Arrival(time.monotonic(), first, last)
    finally:
        await reader.stop()


def process_rss_mb(pid: int) -> float:
    """A running process's resident memory now, in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


_WRK_SCRIPT = """
counter = 0
local file = io.open("{body}", "rb")
local template = file:read("*a")
file:close()
local headers = {{["Authorization"] = "{authorization}", ["Content-Type"] = "application/json"}}
request = function()
  counter = counter + 1
  return wrk.format("POST", nil, headers, (string.gsub(template, "FRAMEID", tostring(counter))))
end
"""


async def wrk_posts(url: str, body: bytes, authorization: str, seconds: float, work: Path,
                    connections: int = 64) -> int:
    """wrk (C, one thread, 64 connections) POSTs ``body`` to ``url`` for ``seconds``, each request with the next
    number in place of ``FRAMEID`` (so every body differs). Returns how many requests were answered; fails
    unless every answer was a 2xx."""
    (work / "body.bin").write_bytes(body)
    (work / "post.lua").write_text(_WRK_SCRIPT.format(body=work / "body.bin", authorization=authorization))
    wrk = await asyncio.create_subprocess_exec("wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s",
                                               str(work / "post.lua"), url, stdout=asyncio.subprocess.PIPE)
    output = (await wrk.communicate())[0].decode()
    match = re.search(r"(\d+) requests in", output)
    if match is None or "Non-2xx" in output:
        raise RuntimeError(f"wrk failed or got errors:\n{output}")
    return int(match.group(1))


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**payload, "machine": machine(),
                                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
    return path



def bars_with_runs(ax: Any, runs: dict[str, list[float]], labels: dict[str, str], ylabel: str) -> None:
    """One bar per scenario at its median, a dot per run, and a text label on each bar."""
    names = list(runs)
    medians = [sorted(runs[n])[len(runs[n]) // 2] for n in names]
    ax.bar(names, medians, color=["#888888", "#2b7bba", "#e07b39", "#5aa469", "#9b59b6"][: len(names)])
    for i, name in enumerate(names):
        ax.scatter([i] * len(runs[name]), runs[name], color="black", s=10, zorder=3)
        ax.text(i, medians[i], labels[name], ha="center", va="bottom")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, max(max(r) for r in runs.values()) * 1.2)  # room for the labels under the title


def plot_runs(runs: dict[str, list[float]], medians: dict[str, float], ylabel: str, title: str, path: Path) -> None:
    """One chart of :func:`bars_with_runs`, each bar labelled with its median rate, written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    bars_with_runs(ax, runs, {n: f"{medians[n]:.0f}/s" for n in medians}, ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
