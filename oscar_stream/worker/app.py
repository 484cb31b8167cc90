"""The stream worker: one faust app hosting the normalize, route and launch agents (any subset of them).

faust gives the worker its process life (signals, logging, orderly stop), its web server (/metrics, /healthz,
/readyz) and its timers. The agents themselves run on aiokafka consumers of their own (worker/batch_agent.py,
worker/launch_agent.py): faust's per-event streams were measured far too slow for normalize and route, and the
launch stage needs what faust's agents do not expose — a rebalance listener to hand jobs over between workers,
out-of-order commits and per-service pausing. Offsets are committed only after what an agent produced was
acknowledged by Kafka (acks=all).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import faust

from oscar_stream import metrics
from oscar_stream.config import Settings
from oscar_stream.health import Health
from oscar_stream.kafka.probe import KafkaProbe
from oscar_stream.observe.lag import group_lag
from oscar_stream.topics import TopicNames, agent_group
from oscar_stream.worker.context import WorkerContext
from oscar_stream.worker.launch_agent import ExecutorFactory, LaunchAgent
from oscar_stream.worker.normalize_agent import normalize_agent
from oscar_stream.worker.pages import register_pages
from oscar_stream.worker.route_agent import route_agent
from oscar_stream.worker.services_table import ServicesTable

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
    instance = settings.worker.instance_id
    return faust.App(
        settings.app_id,
        broker=brokers,
        broker_credentials=_credentials(settings),
        broker_client_id=settings.kafka.client_id,
        # faust's own consumer group (only its leader topic) gates the app's start: a dead member of it
        # must be given up on as fast as the agents' groups give up on theirs.
        broker_session_timeout=settings.kafka.session_timeout_s,
        broker_heartbeat_interval=settings.kafka.heartbeat_interval_s,
        consumer_group_instance_id=f"{instance}-faust" if instance else None,
        store="memory://",
        datadir=str(settings.worker.work_dir / "faust-{conf.name}"),  # faust's own files, never in the cwd
        producer_acks=-1,
        topic_replication_factor=settings.kafka.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
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


def build_worker(settings: Settings, roles: Iterable[str] = ROLES,
                 executor_factory: ExecutorFactory | None = None) -> WorkerContext:
    chosen = set(roles)
    if chosen - set(ROLES):
        raise ValueError(f"unknown role(s) {sorted(chosen - set(ROLES))}; choose from {', '.join(ROLES)}")
    app = create_app(settings)
    names = TopicNames(settings.kafka.topic_prefix)
    ctx = WorkerContext(settings=settings, app=app, names=names,
                        services=ServicesTable(settings.kafka, names.services, settings.cluster_id),
                        health=Health(settings.worker.stall_timeout_s))
    agents: list[Callable[[], Awaitable[None]]] = [KafkaProbe(settings.kafka, ctx.health.component("kafka")).run]
    if "normalize" in chosen:
        agents.append(normalize_agent(ctx).run)
    if chosen & {"route", "launch"}:
        services_health = ctx.health.component("services")

        @app.task
        async def keep_services_table() -> None:
            await ctx.services.run(services_health)

    if "route" in chosen:
        route = route_agent(ctx)

        async def route_when_loaded() -> None:
            await ctx.services.ready.wait()  # never route with a half-loaded table
            await route.run()

        agents.append(route_when_loaded)
    if "launch" in chosen:
        launch = LaunchAgent(ctx, executor_factory)
        agents.append(launch.run)

        @app.task
        async def tidy_up_after_jobs() -> None:
            await ctx.services.ready.wait()
            await launch.executor.maintain(ctx.services.index.services)

    for run in agents:
        _run_for_life(app, run)
    register_pages(ctx)
    groups = [agent_group(settings.app_id, role) for role in ROLES if role in chosen]

    @app.timer(5.0)
    async def export_lag() -> None:
        for group in groups:
            try:
                lag = await asyncio.wait_for(group_lag(settings.kafka, group), settings.kafka.delivery_timeout_s)
            except Exception as err:  # a metric must never stop the worker
                log.warning("could not measure the consumer lag of %s: %s", group, err)
                continue
            for topic, records in lag.items():
                metrics.CONSUMER_LAG.labels(topic, group).set(records)

    return ctx


def _run_for_life(app: faust.App, run: Callable[[], Awaitable[None]]) -> None:
    @app.task
    async def agent() -> None:
        await run()
