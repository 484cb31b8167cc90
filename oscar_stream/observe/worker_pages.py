"""/metrics, /healthz and /readyz on the worker's (loopback-bound) faust web server."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from oscar_stream.metrics import REGISTRY
from oscar_stream.worker_context import WorkerContext


def register_pages(ctx: WorkerContext) -> None:
    app = ctx.app

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"ok": ctx.healthy}, status=200 if ctx.healthy else 503)

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        # Ready once the consumer group has been joined (a rebalance finished) and routing can be trusted.
        joined = all(a.joined.is_set() for a in ctx.batch_agents) and (
            not ctx.launches or (app.rebalancing_count > 0 and not app.rebalancing))
        ready = ctx.healthy and joined and (ctx.services.ready.is_set() or not ctx.needs_services)
        return web.json({"ready": ready, "services": len(ctx.services.index)}, status=200 if ready else 503)
