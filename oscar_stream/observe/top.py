"""``oscar-stream top``: throughput, lag, active jobs per service and recent failures, in a terminal.

It reads the workers' /metrics endpoints (rates are computed between two refreshes), the consumer group's lag
from the broker, and the newest records of the results topic for failures.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import aiohttp
import orjson
from aiokafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from oscar_stream.config import Settings
from oscar_stream.kafka.clients import all_partitions, consumer
from oscar_stream.observe.lag import group_lag
from oscar_stream.topics import AGENTS, TopicNames, agent_group

THROUGHPUT = {
    "received": "oscar_stream_events_received",
    "normalized": "oscar_stream_events_normalized",
    "routed": "oscar_stream_events_routed",
    "unmatched": "oscar_stream_events_unmatched",
    "launched": "oscar_stream_jobs_launched",
    "succeeded": "oscar_stream_jobs_succeeded",
    "failed": "oscar_stream_jobs_failed",
    "dead-letters": "oscar_stream_deadlettered",
}
PER_SERVICE = ("oscar_stream_jobs_active", "oscar_stream_jobs_launched", "oscar_stream_jobs_succeeded",
               "oscar_stream_jobs_failed", "oscar_stream_warm_replicas", "oscar_stream_warm_waiting",
               "oscar_stream_warm_cold_starts")


@dataclass
class Sample:
    at: float
    totals: dict[str, float] = field(default_factory=dict)  # throughput name -> counter total
    services: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    reachable: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Failure:
    finished_at: str
    service: str
    invocation_id: str
    reason: str


def parse_metrics(texts: Iterable[str], at: float) -> Sample:
    sample = Sample(at=at)
    wanted = {v: k for k, v in THROUGHPUT.items()}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for metric in family.samples:
                name = metric.name.removesuffix("_total")
                if metric.name.endswith("_created"):
                    continue
                if name in wanted:
                    sample.totals[wanted[name]] = sample.totals.get(wanted[name], 0.0) + metric.value
                if name in PER_SERVICE and "service" in metric.labels:
                    per = sample.services[metric.labels["service"]]
                    per[name] = per.get(name, 0.0) + metric.value
    return sample


async def scrape(urls: list[str]) -> Sample:
    texts, sample_ok, sample_bad = [], [], []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
        for url in urls:
            try:
                async with http.get(url) as response:
                    texts.append(await response.text())
                    sample_ok.append(url)
            except (aiohttp.ClientError, TimeoutError):
                sample_bad.append(url)
    sample = parse_metrics(texts, time.monotonic())
    sample.reachable, sample.unreachable = sample_ok, sample_bad
    return sample


async def recent_failures(settings: Settings, limit: int = 8, scan: int = 500) -> list[Failure]:
    topic = TopicNames(settings.kafka.topic_prefix).results
    partitions: list[TopicPartition] = await all_partitions(settings.kafka, topic)
    reader = consumer(settings.kafka, group_id=None)
    await reader.start()
    failures: list[Failure] = []
    try:
        reader.assign(partitions)
        ends = await reader.end_offsets(partitions)
        for tp in partitions:
            reader.seek(tp, max(0, ends[tp] - scan))
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await reader.getmany(timeout_ms=500)
            if not batch:
                break
            for tp, messages in batch.items():
                for message in messages:
                    result = orjson.loads(message.value or b"{}")
                    if result.get("status") == "failed":
                        failures.append(Failure(result.get("finished_at") or "", result.get("service", "?"),
                                                result.get("invocation_id", ""), result.get("reason") or ""))
                    if message.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await reader.stop()
    return sorted(failures, key=lambda f: f.finished_at)[-limit:]


def render(settings: Settings, previous: Sample | None, current: Sample, lag: dict[str, int],
           failures: list[Failure], width: int = 110) -> str:
    seconds = (current.at - previous.at) if previous else 0.0
    lines = [f"oscar-stream top — group {settings.app_id} on {settings.kafka.bootstrap_servers}"
             f"   ({len(current.reachable)} metrics endpoint(s); Ctrl-C quits)"]
    if current.unreachable:
        lines.append(f"  not reachable: {', '.join(current.unreachable)}")
    rates = []
    for name in THROUGHPUT:
        if previous is None or seconds <= 0:
            rates.append(f"{name} -")
        else:
            delta = current.totals.get(name, 0.0) - previous.totals.get(name, 0.0)
            rates.append(f"{name} {max(delta, 0.0) / seconds:.1f}")
    lines.append("THROUGHPUT /s  " + "  ".join(rates))
    lines.append("LAG (records)  " + ("  ".join(f"{t} {n}" for t, n in sorted(lag.items())) or "none"))
    lines.append(f"{'SERVICE':<28}{'ACTIVE':>8}{'LAUNCHED':>10}{'SUCCEEDED':>11}{'FAILED':>8}"
                 f"{'REPLICAS':>10}{'WAITING':>9}{'COLD STARTS':>13}")
    for service in sorted(current.services):
        values = current.services[service]
        lines.append(f"{service:<28}{values.get('oscar_stream_jobs_active', 0):>8.0f}"
                     f"{values.get('oscar_stream_jobs_launched', 0):>10.0f}"
                     f"{values.get('oscar_stream_jobs_succeeded', 0):>11.0f}"
                     f"{values.get('oscar_stream_jobs_failed', 0):>8.0f}"
                     f"{values.get('oscar_stream_warm_replicas', 0):>10.0f}"
                     f"{values.get('oscar_stream_warm_waiting', 0):>9.0f}"
                     f"{values.get('oscar_stream_warm_cold_starts', 0):>13.0f}")
    lines.append("RECENT FAILURES" + ("" if failures else "  none"))
    for failure in failures:
        text = f"  {failure.finished_at}  {failure.service}  {failure.invocation_id[:8]}  {failure.reason}"
        lines.append(text[:width])
    return "\n".join(lines)


async def snapshot(settings: Settings, urls: list[str], previous: Sample | None) -> tuple[Sample, str]:
    current = await scrape(urls)
    lag: dict[str, int] = {}
    for group in [agent_group(settings.app_id, a) for a in AGENTS]:
        for topic, records in (await group_lag(settings.kafka, group)).items():
            lag[topic] = lag.get(topic, 0) + records
    failures = await recent_failures(settings)
    return current, render(settings, previous, current, lag, failures)
