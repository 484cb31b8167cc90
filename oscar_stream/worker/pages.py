"""/metrics, /healthz and /readyz on the worker's (loopback-bound) faust web server.

/readyz is 200 only when every part of the worker is working now (joined its group, the routing table
loaded, Kafka reachable, stepping within ``worker.stall_timeout_s``); /healthz turns 503 when a part has not
stepped for twice that long, so that Kubernetes restarts a worker that is stuck rather than waiting."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from oscar_stream.metrics import REGISTRY
from oscar_stream.worker.context import WorkerContext


def register_pages(ctx: WorkerContext) -> None:
    app = ctx.app

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        report = ctx.health.report()
        return web.json({"ok": report["alive"], "components": report["components"]},
                        status=200 if report["alive"] else 503)

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        report = ctx.health.report()
        return web.json({"ready": report["ready"], "services": len(ctx.services.index),
                         "components": report["components"]}, status=200 if report["ready"] else 503)
