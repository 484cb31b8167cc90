"""The warm services' HTTP endpoint in a worker, for oscar-stream's gateways (which checked the client's token):
``POST /run/<service>`` runs the script once on a warm replica and answers as OSCAR's supervisor does;
``/exposed/<service>/...`` passes a request on to an exposed service's own server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from oscar_stream.http_replies import bearer, read_body, reply
from oscar_stream.launch.exposed_path import server_path
from oscar_stream.launch.sync_answer import RAW_TYPE, decode_input
from oscar_stream.route.model import ServiceSpec
from oscar_stream.warm.backend import WarmBackend

log = logging.getLogger(__name__)
INPUT_NAME_HEADER = "X-Oscar-Stream-Input-Name"
EXPOSED_START_WAIT_S = 30.0  # how long a request waits for a server that is starting, as a cold start
# Headers an exposed service's requests and answers keep through the gateway and the worker (lowercase).
EXPOSED_HEADERS = frozenset({
    "accept", "accept-encoding", "accept-language", "cache-control", "content-encoding", "content-type", "cookie",
    "etag", "if-modified-since", "if-none-match", "last-modified", "location", "set-cookie", "x-requested-with",
})


class WarmEndpoint:
    def __init__(self, backend: WarmBackend, service_of: Callable[[str], ServiceSpec | None], max_body: int,
                 caught_up: Callable[[], Awaitable[None]], catch_up_s: float) -> None:
        self.backend = backend
        self.service_of = service_of  # a warm service of this cluster, by name
        self.max_body = max_body
        self.caught_up = caught_up  # until the services table has read everything written before
        self.catch_up_s = catch_up_s
        self.token = secrets.token_hex(32)
        self._runner: web.ServerRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self, host: str, port: int, advertised: str | None) -> str:
        server = web.Server(self._handle, access_log=None)
        runner = self._runner = web.ServerRunner(server)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1]
        self.url = advertised or f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _service(self, name: str, serves: Callable[[ServiceSpec], bool]) -> ServiceSpec | None:
        """The service, if it serves the request. One this worker does not know (or knows without what the
        request needs) may have been created or changed just before through a gateway, which answered once its
        record was written: read the services topic up to now before saying no."""
        service = self.service_of(name)
        if service is None or not serves(service):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.catch_up_s):
                    await self.caught_up()
            service = self.service_of(name)
        return service if service is not None and serves(service) else None

    async def _exposed(self, request: web.BaseRequest, name: str) -> web.StreamResponse:
        """Pass a request on to the service's own server, on the path OSCAR's ingress would give it. A server that
        is starting (or starting again) is waited for, as a cold start: a refused connection never reached it."""
        service = await self._service(name, lambda s: s.expose is not None)
        if service is None or service.expose is None:
            return reply(404, f"no exposed service {name!r}")
        rest = request.rel_url.raw_path[len(f"/exposed/{name}"):].removeprefix("/")
        path = server_path(name, rest, service.expose.rewrite_target, request.rel_url.query_string)
        if self._http is None:
            self._http = aiohttp.ClientSession(auto_decompress=False)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in EXPOSED_HEADERS}
        deadline = asyncio.get_running_loop().time() + EXPOSED_START_WAIT_S
        while True:
            base = self.backend.exposed_url(service)
            try:
                if base is not None:
                    async with self._http.request(request.method, base + path, data=body, headers=headers,
                                                  allow_redirects=False) as answer:
                        return web.Response(status=answer.status, body=await answer.read(), headers={
                            k: v for k, v in answer.headers.items() if k.lower() in EXPOSED_HEADERS})
                why = "is starting"
            except aiohttp.ClientConnectorError as err:
                why = f"does not answer ({err})"
            except aiohttp.ClientConnectionError as err:  # it had the request: trying again could repeat it
                return reply(502, f"the server of {name} broke off its answer ({err})")
            if asyncio.get_running_loop().time() > deadline:
                return reply(503, f"the server of {name} {why}", headers={"Retry-After": "2"},
                             hint="it must listen on $PORT (locally) or on its api_port (in a pod)")
            await asyncio.sleep(0.1)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        parts = request.path.strip("/").split("/")
        if not secrets.compare_digest(bearer(request) or "", self.token):
            return reply(401, "this endpoint takes requests from oscar-stream's gateways only")
        if parts[0] == "exposed" and len(parts) >= 2:
            return await self._exposed(request, parts[1])
        if request.method != "POST" or len(parts) != 2 or parts[0] != "run":
            return reply(404, "only POST /run/<service> and /exposed/<service>/... are served here")
        service = await self._service(parts[1], lambda s: s.warm is not None)
        if service is None or service.warm is None:
            return reply(404, f"service {parts[1]!r} has no warm replicas here",
                         hint="give it 'warm:' (or 'synchronous:' in an FDL file) and apply it again")
        body = await read_body(request, self.max_body)
        if isinstance(body, web.Response):
            return body
        return await self.backend.run(service, decode_input(body), request.headers.get(INPUT_NAME_HEADER, "input"),
                                      raw=request.headers.get("Accept", "") == RAW_TYPE)
