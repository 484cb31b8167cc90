"""/metrics, /healthz and /readyz for every process, bound to loopback unless configured otherwise."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from oscar_stream.metrics import REGISTRY


async def metrics_response(request: web.BaseRequest) -> web.Response:
    return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def observability_handlers(ready: Callable[[], bool]) -> dict[str, Handler]:
    """GET handlers by path: /metrics, /healthz and /readyz."""
    async def healthz(request: web.BaseRequest) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(request: web.BaseRequest) -> web.Response:
        ok = ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    return {"/metrics": metrics_response, "/healthz": healthz, "/readyz": readyz}


def observability_routes(app: web.Application, ready: Callable[[], bool]) -> None:
    for path, handler in observability_handlers(ready).items():
        app.router.add_get(path, handler)


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
