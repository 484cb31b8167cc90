"""The launch agent: invocations -> jobs, one result per invocation id, every service isolated from the others.

* **Isolation.** Invocations wait in one queue per service, each drained as slots of that service free up: a
  service at its limit, or failing and retrying, never holds up another. A queue takes its partitions in turn
  (service_queue.py). A worker reads ahead until
  ``worker.max_queued_invocations`` wait in its queues, then pauses its partitions until half have started.
* **Scale-out.** Invocations are keyed by their id, so one service's work spreads over every partition and so
  over every worker; each worker runs its share of the service's limit (launch/quota.py).
* **Commits.** An offset is committed once every invocation before it in its partition has been handed off
  (offsets.py): a Kubernetes Job exists, or a local job ended and its result is on Kafka. A copy of an
  invocation that is waiting or running is attached to it and acknowledged with it; a copy of a finished one
  (its result is in the ledger) is acknowledged at once.
* **Takeover.** Partitions move with Kafka's group protocol (short session timeout, static membership when
  ``worker.instance_id`` is set; the round-robin assignor, whose partition-number-modulo-workers pattern is
  what the shares of launch/quota.py are balanced for — the sticky assignor hands out contiguous blocks).
  A worker that loses a partition stops what it had queued or running for it (the new owner runs it); one
  that gains a partition first learns which of its invocations already have results.
* **No record stops it.** An unreadable invocation is dead-lettered; a launch that fails for a reason worth
  retrying (the Kubernetes API away) is retried with backoff, without holding a slot meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError

from oscar_stream import metrics
from oscar_stream.core.deadletter import deadletter_record, reason_label
from oscar_stream.core.errors import InvalidEvent, OscarStreamError
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.records import Origin, OutRecord
from oscar_stream.core.results import Result
from oscar_stream.core.times import age_seconds
from oscar_stream.executors.base import Executor, Limiter, Permit, ResultSink
from oscar_stream.executors.local import LocalExecutor
from oscar_stream.executors.log_archive import LogArchive
from oscar_stream.executors.remote import RemoteForwarder
from oscar_stream.kafka.clients import all_partitions, group_member
from oscar_stream.kafka.resilient_producer import ResilientProducer
from oscar_stream.launch.quota import worker_share
from oscar_stream.retry import Backoff
from oscar_stream.route.model import ServiceSpec
from oscar_stream.storage.registry import Stores
from oscar_stream.topics import agent_group
from oscar_stream.warm.backend import WarmBackend
from oscar_stream.warm.executor import WarmExecutor
from oscar_stream.warm.http import WarmEndpoint
from oscar_stream.warm.pools import WarmPools
from oscar_stream.worker.context import WorkerContext
from oscar_stream.worker.job_journal import JobJournal
from oscar_stream.worker.ledger import ResultLedger
from oscar_stream.worker.offsets import OffsetTracker
from oscar_stream.worker.result_publisher import ResultPublisher
from oscar_stream.worker.service_queue import ServiceQueue
from oscar_stream.worker.supervision import run_supervised
from oscar_stream.worker.warm_endpoints import advertise

log = logging.getLogger(__name__)
ExecutorFactory = Callable[[WorkerContext, ResultSink, Limiter], Executor]
COMMIT_INTERVAL_S = 1.0


def default_executor(ctx: WorkerContext, sink: ResultSink, limiter: Limiter) -> Executor:
    if ctx.settings.worker.executor == "kubernetes":
        from oscar_stream.executors.kubernetes import KubernetesExecutor  # imported only where it is used

        return KubernetesExecutor(sink, limiter, ctx.settings, ctx.health.component("kubernetes"))
    return LocalExecutor(sink, limiter, Stores(ctx.settings.storages), Path(ctx.settings.worker.work_dir))


def default_warm_backend(ctx: WorkerContext, stores: Stores) -> WarmBackend:
    if ctx.settings.worker.executor == "kubernetes":
        from oscar_stream.warm.kubernetes import KubernetesWarm  # imported only where it is used

        return KubernetesWarm(ctx.settings, ctx.health.component("kubernetes-warm"))
    worker = ctx.settings.worker
    return WarmPools(Path(worker.work_dir), stores, worker.memory_dir)


class PartitionsMismatch(OscarStreamError):
    pass


@dataclass(eq=False)
class Item:
    """An invocation (or a record to dead-letter) this worker is responsible for, with the offsets that are
    acknowledged when it is done: its own and those of the copies that arrived meanwhile."""

    partition: int
    key: str
    copies: list[tuple[OffsetTracker, int]]
    invocation: Invocation | None = None
    service: ServiceSpec | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class LaunchAgent(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, ctx: WorkerContext, executor_factory: ExecutorFactory | None = None) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self.kafka = settings.kafka
        self.names = ctx.names
        self.group_id = agent_group(settings.app_id, "launch")
        self.health = ctx.health.component("launch")
        self.producer = ResilientProducer(self.kafka, f"{self.kafka.client_id}-launch-producer")
        self.ledger = ResultLedger(self.kafka, ctx.names.results, ctx.names.invocations,
                                   settings.worker.result_lookback_s)
        self.partitions = 1  # of the invocations topic, known once started
        self.journal = JobJournal(self.producer, ctx.names.jobs, enabled=settings.api.enabled)
        self.publish = ResultPublisher(self.producer, ctx.names, self.ledger, self.partitions, self.health,
                                       self.journal)
        self.limiter = Limiter(self._share)
        self.executor = (executor_factory or default_executor)(ctx, self.publish, self.limiter)
        self.forwarder = RemoteForwarder(self.publish, self.limiter, settings)
        stores = Stores(settings.storages)
        self.warm_backend = default_warm_backend(ctx, stores)
        self.warm = WarmExecutor(self.publish, self.limiter, stores, Path(settings.worker.work_dir), self.warm_backend)
        self.warm_endpoint = WarmEndpoint(self.warm_backend, self._warm_service, settings.gateway.max_body_bytes,
                                          ctx.services.caught_up, settings.kafka.delivery_timeout_s)
        archive = LogArchive.from_settings(settings)
        for executor in (self.executor, self.forwarder, self.warm):
            executor.owns, executor.jobs, executor.logs = self._owns, self.journal, archive
        self.owned: set[int] = set()
        self.loading: set[int] = set()  # owned, but their results are not known yet
        self._taking_over: asyncio.Task[None] | None = None
        self.trackers: dict[int, OffsetTracker] = {}
        self.items: dict[str, Item] = {}
        self.queues: dict[str, ServiceQueue[Item]] = {}
        self.drainers: dict[str, asyncio.Task[None]] = {}
        self.queued = 0
        self._paused = False
        self._committed: dict[int, int] = {}
        self._reader: AIOKafkaConsumer | None = None
        ctx.services.on_service.append(
            lambda service: metrics.initialize_service(service.name, self._executor_for(service).kind))

    # --- shares and ownership ------------------------------------------------------------------------------

    def _share(self, service: str) -> int:
        spec = self.ctx.services.index.get(service)
        limit = 1 if spec is None else spec.warm.capacity if spec.warm and spec.warm.take_events else spec.concurrency
        return worker_share(limit, self.owned, self.partitions, service)

    def _warm_service(self, name: str) -> ServiceSpec | None:
        spec = self.ctx.services.index.get(name)
        return spec if spec is not None and self.ctx.services.is_local(spec) else None

    def _executor_for(self, service: ServiceSpec) -> Executor:
        if not self.ctx.services.is_local(service):
            return self.forwarder
        return self.warm if _takes_events_warm(service) else self.executor

    def _owns(self, invocation_id: str) -> bool:
        partition = self.publish.partition_of(invocation_id)
        return partition in self.owned and partition not in self.loading

    # --- the consumer ----------------------------------------------------------------------------------

    async def run(self) -> None:
        await self.ctx.services.ready.wait()
        await self.executor.start()
        worker = self.ctx.settings.worker
        url = await self.warm_endpoint.start(worker.warm_host, worker.warm_port, worker.warm_url)
        helpers = [asyncio.ensure_future(self._prune_forever()), asyncio.ensure_future(self.journal.run()),
                   asyncio.ensure_future(self.warm_backend.keep(self._warm_services)),
                   asyncio.ensure_future(advertise(self.producer, self.names.warm, uuid.uuid4().hex, url,
                                                   self.warm_endpoint.token))]
        try:
            await run_supervised("launch", self._run_once, self.health)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self.warm_endpoint.stop()
            await self.warm_backend.close()
            await self.executor.stop()
            await self.forwarder.stop()
            await self.producer.stop()

    async def _run_once(self, backoff: Backoff) -> None:
        timeout = self.kafka.delivery_timeout_s
        invocations = await asyncio.wait_for(all_partitions(self.kafka, self.names.invocations), timeout)
        results = await asyncio.wait_for(all_partitions(self.kafka, self.names.results), timeout)
        if len(results) != len(invocations):
            raise PartitionsMismatch(
                f"{self.names.results} has {len(results)} partitions and {self.names.invocations} "
                f"{len(invocations)}: they must have as many (run: oscar-stream topics apply, after aligning topics/)")
        self.partitions = self.publish.partitions = len(invocations)
        reader = group_member(self.kafka, self.group_id, _instance(self.ctx.settings.worker.instance_id),
                              client_id=f"{self.kafka.client_id}-launch")
        self._reader = reader
        try:
            await asyncio.wait_for(reader.start(), timeout)
            reader.subscribe([self.names.invocations], listener=self)
            await self.producer.writer()
            next_commit = time.monotonic() + COMMIT_INTERVAL_S
            while True:
                self.health.beat()
                self._flow_control(reader)
                batch = await reader.getmany(timeout_ms=200, max_records=500)
                for tp, messages in batch.items():
                    tracker = self.trackers.get(tp.partition)
                    if tracker is None or tp.partition in self.loading:
                        reader.seek(tp, messages[0].offset)  # not taken over yet: read these again later
                        continue
                    for message in messages:
                        tracker.consumed(message.offset)
                        self._accept(tracker, message)
                if time.monotonic() >= next_commit:
                    await self._commit(reader)
                    next_commit = time.monotonic() + COMMIT_INTERVAL_S
                    backoff.reset()
        finally:
            self._reader = None
            with contextlib.suppress(Exception):
                await self._commit(reader)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.stop(), timeout)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._commit(self._reader)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Records of the new assignment may be fetched while this callback awaits: everything the loop
        # looks at is set before the first await, and gained partitions stay "loading" (their records are
        # read again later) until the ledger knows their results.
        owned = {tp.partition for tp in assigned}
        lost, gained = self.owned - owned, owned - self.owned
        if self._taking_over is not None:
            self._taking_over.cancel()
            gained |= self.loading & owned
        if lost:
            self._abandon(lost)
            self.ledger.drop(lost)
        self.owned, self.loading = owned, set(gained)
        self.trackers = {p: OffsetTracker() for p in owned}
        self._committed = {}
        self._paused = False  # a new assignment starts unpaused
        self.limiter.changed()
        metrics.PARTITIONS_OWNED.labels("launch").set(len(owned))
        for service in self.ctx.services.index.services():
            metrics.CONCURRENCY_SHARE.labels(service.name).set(self._share(service.name))
        log.info("launch agent: owns partitions %s of %s (lost %s, gained %s)", sorted(owned),
                 self.names.invocations, sorted(lost), sorted(gained))
        self._taking_over = asyncio.ensure_future(self._take_over(assigned, gained))

    async def _take_over(self, assigned: set[TopicPartition], gained: set[int]) -> None:
        """Learn the results of the gained partitions, then let the executor act on their jobs."""
        backoff = Backoff(0.5, 10.0)
        while gained:
            try:
                reader = self._reader
                if reader is None:
                    raise ConnectionError("the launch consumer is restarting")
                committed = {tp.partition: await reader.committed(tp) for tp in assigned if tp.partition in gained}
                await self.ledger.load(committed, self.kafka.delivery_timeout_s)
                break
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.health.recovering(f"reading the results of partitions {sorted(gained)}: {err}")
                log.warning("launch agent: reading the results of partitions %s failed (%s: %s); trying again",
                            sorted(gained), type(err).__name__, err)
                await backoff.wait()
        self.loading = set()
        await self.executor.ownership_changed()
        self.health.running(f"partitions {sorted(self.owned)}")

    def _abandon(self, lost: set[int]) -> None:
        """Stop what was queued or running for partitions another worker now owns: it runs them again."""
        for key, item in list(self.items.items()):
            if item.partition in lost:
                del self.items[key]
                if item.task is not None:
                    item.task.cancel()
                if item.invocation is not None:
                    self.journal.forget(item.invocation.service, item.invocation.id)
        for name, queue in self.queues.items():
            self.queued -= queue.drop(lost)
            metrics.INVOCATIONS_QUEUED.labels(name).set(len(queue))

    def _flow_control(self, reader: AIOKafkaConsumer) -> None:
        limit = self.ctx.settings.worker.max_queued_invocations
        if not self._paused and self.queued >= limit:
            reader.pause(*reader.assignment())
            self._paused = True
        elif self._paused and self.queued <= limit // 2:
            reader.resume(*reader.assignment())
            self._paused = False

    async def _commit(self, reader: AIOKafkaConsumer) -> None:
        offsets: dict[TopicPartition, int] = {}
        for partition, tracker in self.trackers.items():
            position = tracker.commit_position
            if position is not None and position != self._committed.get(partition):
                offsets[TopicPartition(self.names.invocations, partition)] = position
        if not offsets:
            return
        try:
            await asyncio.wait_for(reader.commit(offsets), self.kafka.delivery_timeout_s)
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as err:
            log.info("launch agent: commit during a rebalance failed (%s); the new owner starts from the last "
                     "commit", err)
            return
        for tp, position in offsets.items():
            self._committed[tp.partition] = position

    # --- one record --------------------------------------------------------------------------------------

    def _accept(self, tracker: OffsetTracker, message: ConsumerRecord[bytes, bytes]) -> None:
        """Never raises: whatever goes wrong with one record costs that record only."""
        try:
            self._take(tracker, message)
        except InvalidEvent as err:
            self._dead_letter(tracker, message, f"invalid invocation: {err}")
        except Exception as err:
            log.exception("launch agent: handling %s[%d]@%d failed", message.topic, message.partition,
                          message.offset)
            self._dead_letter(tracker, message, f"internal error: {type(err).__name__}: {err}")

    def _take(self, tracker: OffsetTracker, message: ConsumerRecord[bytes, bytes]) -> None:
        invocation = Invocation.from_json(message.value or b"")
        metrics.count(metrics.INVOCATIONS, invocation.service)
        waiting = self.items.get(invocation.id)
        if waiting is not None:  # queued or running: acknowledged together
            waiting.copies.append((tracker, message.offset))
            metrics.count(metrics.JOBS_DUPLICATE, invocation.service, self.executor.kind)
            return
        if self.publish.published(invocation.id):
            metrics.count(metrics.JOBS_DUPLICATE, invocation.service, self.executor.kind)
            tracker.finished(message.offset)
            return
        item = Item(message.partition, invocation.id, [(tracker, message.offset)], invocation)
        self.items[item.key] = item
        if self.ctx.services.knows(invocation.service, invocation.service_version):
            self._queue(item, self.ctx.services.index.get(invocation.service))
        else:
            item.task = asyncio.ensure_future(self._resolve(item, invocation))

    async def _resolve(self, item: Item, invocation: Invocation) -> None:
        # A version this worker never saw: the service was created or changed just before this call (through
        # the API, on another process). Wait for it, so it is neither called unknown nor run in its old version.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.kafka.delivery_timeout_s):
                await self.ctx.services.caught_up()
        if self.items.get(item.key) is not item:  # abandoned meanwhile
            return
        service = self.ctx.services.index.get(invocation.service)
        item.task = None
        try:
            self._queue(item, service)
        except Exception as err:  # a bug: it costs this invocation (dead-lettered), not the partition
            log.exception("launch agent: queueing %s failed", item.key)
            self._start(item, self._internal_error(invocation, err))

    def _queue(self, item: Item, service: ServiceSpec | None) -> None:
        invocation = item.invocation
        assert invocation is not None
        if service is None:
            reason = (f"unknown service {invocation.service!r}: it was deleted or never applied "
                      "(oscar-stream services list)")
            self._start(item, self.publish(Result.failed(invocation, self.executor.kind, reason)))
            return
        item.service = service
        self.journal.update(service.name, invocation.id, self._executor_for(service).kind, "Pending")
        self.queues.setdefault(service.name, ServiceQueue()).append(item.partition, item)
        self.queued += 1
        metrics.INVOCATIONS_QUEUED.labels(service.name).set(len(self.queues[service.name]))
        if service.name not in self.drainers:
            self.drainers[service.name] = asyncio.ensure_future(self._drain(service.name))

    def _dead_letter(self, tracker: OffsetTracker, message: ConsumerRecord[bytes, bytes], reason: str) -> None:
        metrics.count(metrics.DEADLETTERED, "launch", reason_label(reason))
        origin = Origin(message.topic, message.partition, message.offset)
        record = OutRecord(self.names.deadletter, b"launch",
                           deadletter_record("launch", message.topic, reason, message.value or b"", origin))
        item = Item(message.partition, f"dead:{message.partition}:{message.offset}", [(tracker, message.offset)])
        self.items[item.key] = item
        self._start(item, self._write_until_done(record))

    async def _write_until_done(self, record: OutRecord) -> None:
        backoff = Backoff(0.5, 10.0)
        while True:
            try:
                await self.producer.write_all([record])
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("launch agent: writing a dead-letter record failed (%s); trying again", err)
                await backoff.wait()

    def _start(self, item: Item, work: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception as err:  # a bug: it costs this invocation (dead-lettered), not the partition
                log.exception("launch agent: handling %s failed", item.key)
                if item.invocation is not None:
                    await self._internal_error(item.invocation, err)
            self._done(item)

        item.task = asyncio.ensure_future(run())

    async def _internal_error(self, invocation: Invocation, err: Exception) -> None:
        await self._write_until_done(OutRecord(self.names.deadletter, b"launch", deadletter_record(
            "launch", self.names.invocations, f"internal error: {type(err).__name__}: {err}", invocation.to_json())))

    def _done(self, item: Item) -> None:
        if self.items.get(item.key) is item:
            del self.items[item.key]
        for tracker, offset in item.copies:
            tracker.finished(offset)

    # --- per-service queues ------------------------------------------------------------------------------

    async def _drain(self, name: str) -> None:
        try:
            while self.queues.get(name):
                permit = await self.limiter.acquire(name)
                queue = self.queues.get(name)
                if not queue:
                    permit.release()
                    break
                item = queue.popleft()
                self.queued -= 1
                metrics.INVOCATIONS_QUEUED.labels(name).set(len(queue))
                self._start(item, self._launch(item, permit))
        finally:
            self.drainers.pop(name, None)

    async def _launch(self, item: Item, permit: Permit) -> None:
        invocation, service = item.invocation, item.service
        assert invocation is not None and service is not None
        metrics.UPLOAD_TO_LAUNCH.labels(service.name, self._executor_for(service).kind).observe(
            age_seconds(invocation.event.received_at or invocation.event.time))
        backoff = Backoff(0.5, 30.0)
        try:
            while True:
                try:
                    await self._executor_for(service).launch(invocation, service, permit)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    permit.release()
                    delay = backoff.next_delay()
                    log.warning("launching %s of %s failed (%s: %s); trying again in %.1fs", invocation.id,
                                service.name, type(err).__name__, err, delay)
                    await asyncio.sleep(delay)
                    permit = await self.limiter.acquire(service.name)
        except asyncio.CancelledError:
            permit.release()
            raise

    def _warm_services(self) -> list[ServiceSpec]:
        """This cluster's services with warm replicas or an exposed server."""
        return [s for s in self.ctx.services.index.services()
                if (s.warm is not None or s.expose is not None) and self.ctx.services.is_local(s)]

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(60)
            self.ledger.prune()


def _takes_events_warm(spec: ServiceSpec) -> bool:
    return spec.warm is not None and spec.warm.take_events


def _instance(instance_id: str | None) -> str | None:
    return f"{instance_id}-launch" if instance_id else None
