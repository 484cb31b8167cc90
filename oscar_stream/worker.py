"""The stream worker: one faust app running the normalize, route and launch agents (any subset of them).

Offsets are committed only after what an agent produced was acknowledged by Kafka (acks=all): batch agents
wait for every delivery before faust acks the batch; the launch agent acks each invocation once its job is
durably handed off (a Kubernetes Job exists) or, locally, once its result is published.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import faust
from aiokafka.errors import KafkaError

from oscar_stream import metrics
from oscar_stream.config import Settings
from oscar_stream.launch.agent import register_launch
from oscar_stream.launch.executor import Executor
from oscar_stream.normalize.agent import register_normalize
from oscar_stream.observe.lag import group_lag
from oscar_stream.observe.worker_pages import register_pages
from oscar_stream.route.agent import register_route
from oscar_stream.route.services_table import ServicesTable
from oscar_stream.topics import TopicNames
from oscar_stream.worker_context import WorkerContext

log = logging.getLogger(__name__)
ROLES = ("normalize", "route", "launch")


def _credentials(settings: Settings) -> Any:
    kafka = settings.kafka
    if kafka.sasl_mechanism:
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
            mechanism=kafka.sasl_mechanism,
            ssl_context=None,
        )
    return None


def create_app(settings: Settings) -> faust.App:
    settings.worker.work_dir.mkdir(parents=True, exist_ok=True)
    brokers = ";".join(f"kafka://{b.strip()}" for b in settings.kafka.bootstrap_servers.split(","))
    return faust.App(
        settings.app_id,
        broker=brokers,
        broker_credentials=_credentials(settings),
        broker_client_id=settings.kafka.client_id,
        broker_commit_interval=1.0,
        store="memory://",
        datadir=str(settings.worker.work_dir / "faust-{conf.name}"),  # faust's own files, never in the cwd
        producer_acks=-1,
        producer_linger_ms=2,
        topic_replication_factor=settings.kafka.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        web_enabled=True,
        web_bind=settings.metrics.host,
        web_host=settings.metrics.host,
        web_port=settings.metrics.port,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_router_enabled=False,
        web_tables_enabled=False,
        autodiscover=False,
    )


def build_worker(
    settings: Settings,
    roles: Iterable[str] = ROLES,
    executor_factory: Callable[[WorkerContext], Executor] | None = None,
) -> WorkerContext:
    app = create_app(settings)
    names = TopicNames(settings.kafka.topic_prefix)
    services = ServicesTable(settings.kafka, names.services, settings.cluster_id)
    ctx = WorkerContext(settings=settings, app=app, names=names, services=services)
    chosen = set(roles)
    if chosen - set(ROLES):
        raise ValueError(f"unknown role(s) {sorted(chosen - set(ROLES))}; choose from {', '.join(ROLES)}")
    ctx.needs_services = bool(chosen & {"route", "launch"})
    if ctx.needs_services:

        @app.task
        async def keep_services_table() -> None:
            await services.run()

    if "normalize" in chosen:
        register_normalize(ctx)
    if "route" in chosen:
        register_route(ctx)
    if "launch" in chosen:
        ctx.launches = True
        register_launch(ctx, executor_factory)
    register_pages(ctx)

    @app.timer(5.0)
    async def export_lag() -> None:
        for group in ctx.consumer_groups:
            try:
                lag = await group_lag(settings.kafka, group)
            except KafkaError as err:
                log.warning("could not measure the consumer lag of %s: %s", group, err)
                continue
            for topic, records in lag.items():
                metrics.CONSUMER_LAG.labels(topic, group).set(records)

    return ctx
