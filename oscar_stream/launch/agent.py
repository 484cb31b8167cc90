"""The launch agent: invocations -> jobs, with a per-service concurrency limit and exactly-once effect.

Each invocation is acknowledged (so its offset may be committed) only once it is durably handed off. A
redelivered invocation is recognised: by the Kubernetes API (the Job name is derived from the invocation id,
409 = already launched) or, for the local executor, by a changelog-backed faust table of finished ids.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from oscar_stream import metrics
from oscar_stream.deadletter import Origin, deadletter_record, reason_label
from oscar_stream.kafka.faust_topics import byte_topic
from oscar_stream.kafka.out_record import OutRecord
from oscar_stream.launch.executor import Executor
from oscar_stream.launch.local import LocalExecutor
from oscar_stream.launch.remote import RemoteForwarder
from oscar_stream.launch.results import Result
from oscar_stream.normalize.canonical import InvalidEvent, age_seconds
from oscar_stream.route.model import Invocation
from oscar_stream.storage.registry import Stores
from oscar_stream.worker_context import WorkerContext

log = logging.getLogger(__name__)
DONE = "done"


def local_executor(ctx: WorkerContext) -> Executor:
    return LocalExecutor(ctx.result_sink(), ctx.limiter, Stores(ctx.settings.storages),
                         Path(ctx.settings.worker.work_dir))


def default_executor(ctx: WorkerContext) -> Executor:
    if ctx.settings.worker.executor == "kubernetes":
        from oscar_stream.launch.kubernetes import KubernetesExecutor  # imported only where it is used

        return KubernetesExecutor.from_settings(ctx.settings, ctx.result_sink(), ctx.limiter)
    return local_executor(ctx)


def _forget(in_flight: dict[str, asyncio.Task[None]], key: str, _task: asyncio.Task[None]) -> None:
    in_flight.pop(key, None)


def register_launch(ctx: WorkerContext, executor_factory: Callable[[WorkerContext], Executor] | None) -> None:
    app, names = ctx.app, ctx.names
    executor = (executor_factory or default_executor)(ctx)
    forwarder = RemoteForwarder(ctx.result_sink(), ctx.limiter, ctx.settings)
    ctx.executor = executor
    ctx.services.on_service.append(lambda service: metrics.initialize_service(service.name, executor.kind))
    invocations = byte_topic(app, names.invocations)
    finished = app.Table("oscar-launched", default=None, key_type=str, value_type=str,
                         partitions=ctx.partitions(names.invocations),
                         help="invocation ids whose local job finished")
    in_flight: dict[str, asyncio.Task[None]] = {}

    @app.task
    async def start_executor() -> None:
        await executor.start()

    @app.task
    async def tidy_up_after_jobs() -> None:
        await ctx.services.ready.wait()
        await executor.maintain(ctx.services.index.services)

    async def dead(stream: Any, event: Any, reason: str) -> None:
        message = event.message
        metrics.DEADLETTERED.labels("launch", reason_label(reason)).inc()
        origin = Origin(message.topic, message.partition, message.offset)
        await ctx.send_all([OutRecord(names.deadletter, b"launch",
                                      deadletter_record("launch", message.topic, reason, message.value or b"",
                                                        origin))])
        await stream.ack(event)

    async def handle(stream: Any, event: Any, invocation: Invocation, service: Any, permit: Any) -> None:
        try:
            metrics.UPLOAD_TO_LAUNCH.labels(service.name, executor.kind).observe(
                age_seconds(invocation.event.received_at or invocation.event.time))
            if not ctx.services.is_local(service):
                await forwarder.launch(invocation, service, permit)
            else:
                await executor.launch(invocation, service, permit)
            if executor.kind == "local":
                finished[invocation.id] = DONE
        except Exception:
            permit.release()
            ctx.healthy = False
            log.exception("launching %s for %s failed; the invocation stays unacknowledged and will be "
                          "delivered again after a restart", invocation.id, service.name)
            return
        await stream.ack(event)

    @app.agent(invocations, name="oscar-launch")
    async def launch(stream: Any) -> None:
        await ctx.services.ready.wait()
        manual = stream.noack()
        async for event in manual.events():
            try:
                invocation = Invocation.from_json(event.message.value or b"")
            except (orjson.JSONDecodeError, InvalidEvent, KeyError, TypeError, ValueError) as err:
                await dead(manual, event, f"invalid invocation: {err}")
                continue
            metrics.count(metrics.INVOCATIONS, invocation.service)
            # A copy of an invocation that is running or done: the store's notification of a job's output and
            # the job's own output event both route to the same invocation id. Same key, same partition: the
            # first copy's offset still holds back the commit until it is acknowledged.
            if invocation.id in in_flight or (executor.kind == "local" and finished.get(invocation.id) == DONE):
                metrics.JOBS_DUPLICATE.labels(invocation.service, executor.kind).inc()
                await manual.ack(event)
                continue
            service = ctx.services.index.get(invocation.service)
            if service is None:
                await ctx.result_sink()(Result.failed(
                    invocation, executor.kind, f"unknown service {invocation.service!r}: it was deleted or "
                    "never applied (oscar-stream services list)"))
                await manual.ack(event)
                continue
            permit = await ctx.limiter.acquire(service.name, service.concurrency)  # backpressure when full
            task = asyncio.ensure_future(handle(manual, event, invocation, service, permit))
            in_flight[invocation.id] = task
            task.add_done_callback(functools.partial(_forget, in_flight, invocation.id))
