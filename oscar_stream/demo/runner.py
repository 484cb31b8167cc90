"""The demo: bring up the local stack, apply the two-stage pipeline (OSCAR FDL), upload generated CSV files
to versitygw, follow every file through both stages on Kafka, then check the outputs and summarize."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import aiohttp
import orjson
import yaml
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from oscar_stream.config import Settings, load_settings
from oscar_stream.core.events import StorageEvent
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.results import Result
from oscar_stream.demo.cpu_split import CpuSample, CpuSplit
from oscar_stream.demo.data import Expected, csv_file, expected, percentile
from oscar_stream.kafka.clients import all_partitions, consumer
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.retry import Backoff, retrying
from oscar_stream.route.files import load_routing_files
from oscar_stream.stack.components.kubernetes import KubernetesControlPlane
from oscar_stream.stack.components.kubernetes_node import real_node_kubernetes_config
from oscar_stream.stack.components.prometheus import add_scrape_target, remove_scrape_target
from oscar_stream.stack.node_images import SHELL_IMAGE
from oscar_stream.stack.process import ProcessRecord, free_port, spawn
from oscar_stream.stack.stack import DEFAULT_COMPONENTS, Stack
from oscar_stream.storage.base import StorageError
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames, agent_group
from oscar_stream.worker.publish import apply_services

PIPELINE = resources.files("oscar_stream.demo") / "pipeline" / "pipeline.yaml"
STAGES = ("stats", "report")
BUCKET = "demo"
Say = Callable[[str], None]
Executor = Literal["local", "kubernetes"]
NODE_COMPONENTS = ("kubernetes", "kubernetes-node")


class DemoFailed(Exception):
    pass


@dataclass
class StageProgress:
    received: set[str] = field(default_factory=set)
    routed: set[str] = field(default_factory=set)
    succeeded: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    outputs: int = 0

    @property
    def done(self) -> int:
        return len(self.succeeded) + len(self.failed)


@dataclass
class DemoSummary:
    run_id: str
    files: int
    stages: dict[str, StageProgress]
    verified: int
    mismatches: list[str]
    seconds: float
    latencies: list[float]
    launched: dict[str, int]
    cpu: CpuSplit
    worker_ready_s: float  # from starting the worker to its readiness (its agents hold their partitions)

    @property
    def ok(self) -> bool:
        return self.verified == self.files and not self.mismatches and not any(
            s.failed for s in self.stages.values())


def demo_config_file(settings: Settings) -> Path:
    return settings.stack.state_dir / "demo" / "oscar-stream.yaml"


def demo_config(stack: Stack, run_dir: Path, metrics_port: int, gateway_port: int,
                executor: Executor = "local") -> dict[str, Any]:
    s = stack.settings.stack
    kubernetes = ({"kubernetes": real_node_kubernetes_config(KubernetesControlPlane().kubeconfig_path(stack.ctx))}
                  if executor == "kubernetes" else {})
    return {
        "app_id": "oscar-demo",
        # OSCAR's API on the demo's gateway (kept running by --keep): credentials of this run only.
        "gateway": {"port": gateway_port},
        "api": {"username": "oscar", "password": secrets.token_urlsafe(12), "token_secret": secrets.token_hex(32)},
        "kafka": {"bootstrap_servers": f"127.0.0.1:{s.kafka_port}", "topic_prefix": stack.settings.kafka.topic_prefix},
        # The stack's versitygw sends its notifications straight to Kafka, with object keys unescaped.
        "sources": [{"id": s.s3_source_id, "kind": "s3", "key_encoding": "raw"}],
        "storages": [{"id": s.s3_source_id, "kind": "s3", "endpoint": f"http://127.0.0.1:{s.s3_port}",
                      "access_key": s.s3_access_key, "secret_key": s.s3_secret_key.get_secret_value()}],
        "worker": {"executor": executor, "work_dir": str(run_dir / "runs")},
        "metrics": {"port": metrics_port},
        "stack": {"state_dir": str(s.state_dir), "cache_dir": str(s.cache_dir)},
        **kubernetes,
    }


class Demo:
    def __init__(self, settings: Settings, files: int, keep: bool, timeout_s: float, say: Say,
                 executor: Executor = "local") -> None:
        self.files, self.keep, self.timeout_s, self.say = files, keep, timeout_s, say
        self.executor = executor
        self.stack = Stack(settings)
        self.run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
        self.dir = settings.stack.state_dir / "demo"
        self.processes: list[ProcessRecord] = []
        self.progress = {stage: StageProgress() for stage in STAGES}
        self.uploaded_at: dict[str, float] = {}
        self.finished_at: dict[str, float] = {}
        self.worker_log = settings.stack.state_dir / "logs" / "demo-worker.log"
        self.spawned_at = 0.0

    def _stem(self, path: str) -> str | None:
        """``<run>-0007`` for any object of this run (input, stats or report), else None."""
        name = path.rsplit("/", 1)[-1]
        return name.split(".", 1)[0] if name.startswith(self.run_id) else None

    async def run(self) -> DemoSummary:
        was_running = self.stack.running("kafka")
        components = DEFAULT_COMPONENTS + (NODE_COMPONENTS if self.executor == "kubernetes" else ())
        await asyncio.to_thread(self.stack.up, components)
        self.dir.mkdir(parents=True, exist_ok=True)
        metrics_port = free_port()
        config_file = demo_config_file(self.stack.settings)
        config_file.write_text(yaml.safe_dump(demo_config(self.stack, self.dir, metrics_port, free_port(),
                                                          self.executor)))
        config_file.chmod(0o600)
        settings = load_settings(config_file)
        if self.stack.adopted("demo"):
            self.say("stopping the worker and gateway an earlier demo left running")
            self.stack.stop("demo")
        try:
            return await self._run(settings, config_file, metrics_port)
        finally:
            if not self.keep:
                self.stack.stop("demo")
                remove_scrape_target(self.stack.settings.stack.state_dir, "demo-worker")
            if not self.keep and not was_running:
                self.say("stopping the local stack (use --keep to leave it running)")
                await asyncio.to_thread(self.stack.down)

    async def _run(self, settings: Settings, config_file: Path, metrics_port: int) -> DemoSummary:
        names = TopicNames(settings.kafka.topic_prefix)
        await apply_topics(settings)
        services = load_routing_files([Path(str(PIPELINE))]).table.services
        if self.executor == "kubernetes":  # no registry here: the real node has the stack's busybox image
            services = tuple(replace(service, image=SHELL_IMAGE) for service in services)
        for name, action in await apply_services(settings, services):
            self.say(f"pipeline: service {name} {action}")
        start_offsets = await self._end_offsets(settings, [names.events, names.invocations, names.results])
        await self._skip_backlog(settings, names)
        self._start(config_file, settings)
        add_scrape_target(self.stack.settings.stack.state_dir, "demo-worker", f"127.0.0.1:{metrics_port}")
        store = S3Store(settings.storages[0])
        contents: dict[str, bytes] = {}
        try:
            await store.ensure_bucket(BUCKET)
            # The clock starts once the worker is ready, so the figures are the pipeline's, not its start's.
            ready_s = await self._wait_ready(metrics_port)
            self.say(f"the worker is ready ({ready_s:.1f}s after it was started)")
            follower = asyncio.ensure_future(self._follow(settings, names, start_offsets))
            started, before = time.monotonic(), self._cpu()
            self.say(f"uploading {self.files} CSV files to s3://{BUCKET}/raw/ (run {self.run_id})")
            contents = await self._upload(store)
            await self._wait(follower, metrics_port)
            elapsed, cpu = time.monotonic() - started, CpuSplit.between(before, self._cpu())
            verified, mismatches = await self._verify(store, {k: expected(v) for k, v in contents.items()})
        finally:
            await store.close()
        latencies = [self.finished_at[k] - self.uploaded_at[k] for k in self.finished_at if k in self.uploaded_at]
        return DemoSummary(self.run_id, self.files, self.progress, verified, mismatches, elapsed, latencies,
                           await self._launched(metrics_port), cpu, ready_s)

    async def _wait_ready(self, metrics_port: int) -> float:
        """Seconds from the worker's start to its readiness."""
        deadline = time.monotonic() + min(self.timeout_s, 120.0)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                for record in self.processes:
                    if not record.alive():
                        raise DemoFailed(f"the {record.component} stopped; see {record.log}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"http://127.0.0.1:{metrics_port}/readyz") as answer:
                        if answer.status == 200:
                            return time.monotonic() - self.spawned_at
                if time.monotonic() > deadline:
                    raise DemoFailed(f"the worker was not ready after {time.monotonic() - self.spawned_at:.0f}s; "
                                     f"see {self.worker_log}")
                await asyncio.sleep(0.1)

    def _cpu(self) -> CpuSample:
        worker, gateway = self.processes
        return CpuSample.now(worker.pid, gateway.pid)

    def _start(self, config_file: Path, settings: Settings) -> None:
        self.say(f"starting a worker (normalize, route, launch; {self.executor} executor) and a gateway with "
                 f"OSCAR's API on port {settings.gateway.port}; logs: {self.worker_log.parent}")
        command = [sys.executable, "-m", "oscar_stream", "--config", str(config_file)]
        self.spawned_at = time.monotonic()
        self.processes = [spawn("demo-worker", [*command, "worker"], self.worker_log),
                          spawn("demo-gateway", [*command, "gateway"], self.worker_log.parent / "demo-gateway.log")]
        self.stack.adopt("demo", self.processes)

    async def _upload(self, store: S3Store) -> dict[str, bytes]:
        contents = {f"{self.run_id}-{i:04d}": csv_file(self.run_id, i) for i in range(self.files)}
        staging = self.dir / "upload"
        staging.mkdir(exist_ok=True)
        gate = asyncio.Semaphore(8)

        async def one(stem: str, body: bytes) -> None:
            path = staging / f"{stem}.csv"
            await asyncio.to_thread(path.write_bytes, body)
            async with gate:
                self.uploaded_at[stem] = time.monotonic()
                await store.upload(path, BUCKET, f"raw/{stem}.csv")
            await asyncio.to_thread(path.unlink)

        await asyncio.gather(*(one(stem, body) for stem, body in contents.items()))
        return contents

    async def _end_offsets(self, settings: Settings, topics: list[str]) -> dict[TopicPartition, int]:
        reader = consumer(settings.kafka, group_id=None)
        await reader.start()
        try:
            partitions = [tp for topic in topics for tp in await all_partitions(settings.kafka, topic)]
            ends: dict[TopicPartition, int] = await reader.end_offsets(partitions)
            return ends
        finally:
            await reader.stop()

    async def _skip_backlog(self, settings: Settings, names: TopicNames) -> None:
        """The demo works on its own files only: whatever an earlier, interrupted demo left unprocessed is
        skipped by moving the demo worker's consumer groups to the end of their topics."""
        app_id = settings.app_id
        for group, topics in ((agent_group(app_id, "normalize"), [names.raw(s.id) for s in settings.sources]),
                              (agent_group(app_id, "route"), [names.events]),
                              (agent_group(app_id, "launch"), [names.invocations])):
            ends = await self._end_offsets(settings, topics)

            async def move(ends: dict[TopicPartition, int] = ends, group: str = group) -> None:
                mover = consumer(settings.kafka, group_id=group)
                await mover.start()
                try:
                    mover.assign(list(ends))
                    await mover.commit(ends)
                finally:
                    await mover.stop()

            # Refused while a worker of an earlier demo is still a member (until its session times out).
            await retrying(move, what=f"moving {group} past old work", retryable=lambda e: isinstance(
                e, CommitFailedError), attempts=30, backoff=Backoff(0.5, 2.0))

    async def _follow(self, settings: Settings, names: TopicNames, start: dict[TopicPartition, int]) -> None:
        """Watch this run's files go by on events, invocations and results."""
        reader = consumer(settings.kafka, group_id=None)
        await reader.start()
        try:
            reader.assign(list(start))
            for tp, offset in start.items():
                reader.seek(tp, offset)
            while True:
                batch = await reader.getmany(timeout_ms=200)
                for tp, messages in batch.items():
                    for message in messages:
                        self._observe(names, tp.topic, message.value or b"")
        finally:
            await reader.stop()

    def _observe(self, names: TopicNames, topic: str, value: bytes) -> None:
        if topic == names.events:
            event = StorageEvent.from_json(value)
            stem = self._stem(event.key)
            folder = event.key.split("/", 1)[0]
            stage = {"raw": "stats", "stats": "report"}.get(folder)
            if stem and stage and event.bucket == BUCKET:
                self.progress[stage].received.add(event.id)
        elif topic == names.invocations:
            invocation = Invocation.from_json(value)
            if self._stem(invocation.event.key) and invocation.service in self.progress:
                self.progress[invocation.service].routed.add(invocation.id)
        elif topic == names.results:
            result = Result.from_json(value)
            progress = self.progress.get(result.service)
            stems = {self._stem(o.key) for o in result.outputs} - {None}
            if progress is None or (not stems and result.status == "succeeded"):
                return
            if result.status == "succeeded":
                progress.succeeded.add(result.invocation_id)
                progress.outputs += len(result.outputs)
                if result.service == "report":
                    for stem in stems:
                        self.finished_at.setdefault(str(stem), time.monotonic())
            elif result.invocation_id in self.progress[result.service].routed:
                progress.failed[result.invocation_id] = result.reason or "failed"

    async def _launched(self, metrics_port: int) -> dict[str, int]:
        counts = dict.fromkeys(STAGES, 0)
        try:
            async with aiohttp.ClientSession() as http, http.get(
                    f"http://127.0.0.1:{metrics_port}/metrics", timeout=aiohttp.ClientTimeout(total=2)) as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return counts
        for line in text.splitlines():
            if line.startswith("oscar_stream_jobs_launched_total{"):
                for stage in STAGES:
                    if f'service="{stage}"' in line:
                        counts[stage] = int(float(line.rsplit(" ", 1)[1]))
        return counts

    async def _wait(self, follower: asyncio.Future[None], metrics_port: int) -> None:
        deadline = time.monotonic() + self.timeout_s
        last = ""
        try:
            while True:
                for record in self.processes:
                    if not record.alive():
                        raise DemoFailed(f"the {record.component} stopped; see {record.log}")
                if follower.done():
                    follower.result()
                finished = all(p.done >= self.files for p in self.progress.values())
                launched = await self._launched(metrics_port)  # read after `finished`: never behind it
                line = " | ".join(
                    f"{stage}: {len(p.received)} received → {len(p.routed)} routed → {launched[stage]} launched → "
                    f"{len(p.succeeded)} done" + (f", {len(p.failed)} FAILED" if p.failed else "")
                    for stage, p in self.progress.items())
                if line != last:
                    self.say(line)
                    last = line
                if finished:
                    return
                if time.monotonic() > deadline:
                    raise DemoFailed(f"not finished after {self.timeout_s:.0f}s; see the worker log {self.worker_log}")
                await asyncio.sleep(1)
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    async def _verify(self, store: S3Store, wanted: dict[str, Expected]) -> tuple[int, list[str]]:
        """Download every report and compare it with what the inputs must give."""
        check_dir = self.dir / "check"
        check_dir.mkdir(exist_ok=True)
        verified, problems = 0, []
        for stem, truth in sorted(wanted.items()):
            local = check_dir / f"{stem}.report.json"
            try:
                await store.download(BUCKET, f"reports/{stem}.report.json", local)
                report = orjson.loads(await asyncio.to_thread(local.read_bytes))
            except (StorageError, orjson.JSONDecodeError, OSError) as err:
                problems.append(f"{stem}: report missing or unreadable ({err})")
                continue
            finally:
                local.unlink(missing_ok=True)
            ok = (report["sha256"] == truth.sha256 and report["rows"] == truth.rows
                  and abs(report["mean"] - truth.mean) < 1e-3 and abs(report["min"] - truth.minimum) < 1e-6
                  and abs(report["max"] - truth.maximum) < 1e-6 and report["source"] == f"raw/{stem}.csv")
            if ok:
                verified += 1
            else:
                problems.append(f"{stem}: report {report} does not match the input")
        return verified, problems


def format_summary(summary: DemoSummary, settings: Settings, kept: bool = False) -> str:
    s = settings.stack
    lines = ["", f"Demo run {summary.run_id}: {summary.files} files in, checked {summary.verified} reports"
                 f" ({'all correct' if summary.ok else 'PROBLEMS BELOW'})"]
    for stage, progress in summary.stages.items():
        lines.append(f"  stage {stage:<7} jobs launched {summary.launched.get(stage, 0):>4}, succeeded "
                     f"{len(progress.succeeded):>4}, failed {len(progress.failed):>3}, "
                     f"outputs written {progress.outputs}")
    for reason in list(dict.fromkeys(r for p in summary.stages.values() for r in p.failed.values()))[:5]:
        lines.append(f"  failure: {reason}")
    for problem in summary.mismatches[:5]:
        lines.append(f"  mismatch: {problem}")
    if summary.latencies:
        lat = summary.latencies
        lines.append(f"  throughput {summary.files / summary.seconds:.1f} files/s through both stages "
                     f"({summary.seconds:.1f}s for {summary.files} files, from the first upload; the worker was "
                     f"ready {summary.worker_ready_s:.1f}s after it started)")
        lines.append(f"  upload -> final report latency: p50 {percentile(lat, 0.5):.2f}s, p90 "
                     f"{percentile(lat, 0.9):.2f}s, p99 {percentile(lat, 0.99):.2f}s, max {max(lat):.2f}s")
        lines.append(summary.cpu.line())
    lines += [
        "",
        "Where to look next:",
        f"  outputs      s3://{BUCKET}/reports/ on http://127.0.0.1:{s.s3_port} (access key {s.s3_access_key})",
        f"  live view    oscar-stream --config {s.state_dir / 'demo' / 'oscar-stream.yaml'} top",
        f"  Prometheus   http://127.0.0.1:{s.prometheus_port}/graph?g0.expr=rate(oscar_stream_jobs_succeeded_total[1m])",
        "  Grafana      import deploy/grafana/oscar-stream-dashboard.json",
        f"  logs         {s.state_dir / 'logs'}",
    ]
    api = settings.api
    if kept and api.password is not None:
        url = f"http://127.0.0.1:{settings.gateway.port}"
        lines += [
            f"  OSCAR's API  {url} (user {api.username}, password {api.password.get_secret_value()}); the worker and",
            "               the gateway keep running until `oscar-stream stack down`. With OSCAR's Python client:",
            f"               Client({{'cluster_id': 'oscar-demo', 'endpoint': '{url}', 'user': '{api.username}',",
            f"                        'password': '{api.password.get_secret_value()}', 'ssl': False}}).list_services()",
        ]
    return "\n".join(lines)

