"""The dispatcher of a warm pod (``oscar-stream warm-replica``, oscar-stream's image beside the user's container):
an HTTP server over the pod's one replica, whose runner is the user's container (launch/warm_objects.py).

* ``GET /ready`` — 200 once the runner answered (the pod's readiness probe);
* ``POST /run/<service>`` — a synchronous invocation, answered as OSCAR's supervisor does;
* ``POST /invoke`` — an event's invocation: input staged from storage, outputs uploaded; the answer is the
  attempt (warm/invoke.py) as JSON.

Every request needs the deployment's warm token (``Authorization: Bearer``)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path

from aiohttp import web

from oscar_stream.core.errors import InvalidEvent
from oscar_stream.core.invocation import Invocation
from oscar_stream.http_replies import bearer, read_body, reply
from oscar_stream.launch.sync_answer import RAW_TYPE, decode_input
from oscar_stream.route.model import ServiceSpec
from oscar_stream.storage.registry import Stores
from oscar_stream.warm.http import INPUT_NAME_HEADER
from oscar_stream.warm.invoke import run_invocation, run_sync
from oscar_stream.warm.pool import PoolClosed, WarmPool
from oscar_stream.warm.replica import ReplicaGone

log = logging.getLogger(__name__)
MAX_BODY = 1_000_000


class Dispatcher:
    def __init__(self, service: ServiceSpec, token: str, stores: Stores, folder: Path) -> None:
        self.service = service
        self.token = token
        self.stores = stores
        self.pool = WarmPool(service, folder, external=True)

    async def serve(self, host: str, port: int) -> None:
        runner = web.ServerRunner(web.Server(self._handle, access_log=None))
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info("dispatching %s on %s:%d", self.service.name, host, port)
        try:
            while True:
                self.pool.scale()  # (re)opens the replica when the runner is not there yet or failed
                await asyncio.sleep(1.0)
        finally:
            await runner.cleanup()
            await self.pool.close()
            await self.stores.close()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/ready":
            ready = any(r.alive for r in self.pool.replicas)
            return reply(200 if ready else 503, "ready" if ready else "waiting for the runner")
        if not secrets.compare_digest(bearer(request) or "", self.token):
            return reply(401, "this endpoint takes requests from oscar-stream's workers only")
        body = await read_body(request, MAX_BODY)
        if isinstance(body, web.Response):
            return body
        if request.method == "POST" and request.path == f"/run/{self.service.name}":
            return await run_sync(self.pool, self.service, decode_input(body),
                                  request.headers.get(INPUT_NAME_HEADER, "input"),
                                  raw=request.headers.get("Accept", "") == RAW_TYPE)
        if request.method == "POST" and request.path == "/invoke":
            try:
                invocation = Invocation.from_json(body)
            except InvalidEvent as err:
                return reply(400, f"not an invocation: {err}")
            try:
                attempt = await run_invocation(self.pool, self.service, invocation, self.stores)
            except (ReplicaGone, PoolClosed) as err:
                return reply(503, str(err), headers={"Retry-After": "1"})
            return web.Response(body=attempt.to_json(), content_type="application/json")
        return reply(404, f"no endpoint {request.method} {request.path}")
