"""``oscar-stream gateway`` and ``oscar-stream dcache-watch``: the edge processes."""

from __future__ import annotations

import asyncio
import logging

import click
from aiohttp import web

from oscar_stream.cli.context import UserFacingError, friendly_errors, settings_from
from oscar_stream.health import Component
from oscar_stream.ingest.dcache_watcher import DcacheWatcher
from oscar_stream.ingest.gateway import run_gateway
from oscar_stream.kafka.probe import KafkaProbe
from oscar_stream.kafka.resilient_producer import ResilientProducer
from oscar_stream.observe.http import observability_routes, serve
from oscar_stream.topics import TopicNames


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.command("gateway")
@click.option("--loglevel", default="info", show_default=True)
@click.pass_context
@friendly_errors()
def gateway(ctx: click.Context, loglevel: str) -> None:
    """Receive store webhooks (POST /webhook/<source id>) and write them to Kafka."""
    settings = settings_from(ctx)
    if (not any(s.kind == "s3" and s.token for s in settings.sources) and settings.gateway.cluster_token is None
            and not settings.api.enabled):
        raise UserFacingError("the gateway would accept nothing: configure an S3 source with a 'token' (sources: "
                              "[{id: minio.default, kind: s3, token: ...}]), a gateway.cluster_token, or OSCAR's "
                              "API (api.username, api.password, api.token_secret); it accepts no anonymous writes")
    _logging(loglevel)
    run_gateway(settings)


@click.command("dcache-watch")
@click.option("--source", "only", default=None, help="watch only this dcache source id")
@click.option("--loglevel", default="info", show_default=True)
@click.pass_context
@friendly_errors()
def dcache_watch(ctx: click.Context, only: str | None, loglevel: str) -> None:
    """Follow dCache storage events (SSE) of every dcache source and write them to Kafka."""
    settings = settings_from(ctx)
    sources = [s for s in settings.sources if s.kind == "dcache" and (only is None or s.id == only)]
    if not sources:
        raise UserFacingError("no dcache source is configured (sources: [{id: webdav.dcache, kind: dcache, "
                              "url: https://host:3880, subscriptions: [{path: /data/in}]}])")
    _logging(loglevel)
    names = TopicNames(settings.kafka.topic_prefix)

    async def main() -> None:
        producer = ResilientProducer(settings.kafka, f"{settings.kafka.client_id}-dcache")
        probe = KafkaProbe(settings.kafka, Component("kafka"))
        watchers = [DcacheWatcher(s, settings.kafka, names.raw(s.id), producer) for s in sources]
        app = web.Application()
        observability_routes(app, lambda: probe.reachable and all(w.connected.is_set() for w in watchers))
        runner = await serve(app, settings.metrics.host, settings.metrics.port)
        try:
            await asyncio.gather(probe.run(), *(w.run() for w in watchers))
        finally:
            await runner.cleanup()
            await producer.stop()

    asyncio.run(main())
