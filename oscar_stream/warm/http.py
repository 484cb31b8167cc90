"""The warm replicas' HTTP endpoint in a worker: ``POST /run/<service>`` (forwarded by a gateway, which checked
the client's service token) runs the script once on a warm replica and answers as OSCAR's supervisor does."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from aiohttp import web

from oscar_stream.http_replies import bearer, read_body, reply
from oscar_stream.launch.sync_answer import RAW_TYPE, decode_input
from oscar_stream.route.model import ServiceSpec
from oscar_stream.warm.backend import WarmBackend

log = logging.getLogger(__name__)
INPUT_NAME_HEADER = "X-Oscar-Stream-Input-Name"


class WarmEndpoint:
    def __init__(self, backend: WarmBackend, service_of: Callable[[str], ServiceSpec | None], max_body: int) -> None:
        self.backend = backend
        self.service_of = service_of  # a warm service of this cluster, by name
        self.max_body = max_body
        self.token = secrets.token_hex(32)
        self._runner: web.ServerRunner | None = None
        self.url = ""

    async def start(self, host: str, port: int, advertised: str | None) -> str:
        server = web.Server(self._handle, client_max_size=self.max_body + 1)
        runner = self._runner = web.ServerRunner(server, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1]
        self.url = advertised or f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        parts = request.path.strip("/").split("/")
        if request.method != "POST" or len(parts) != 2 or parts[0] != "run":
            return reply(404, "only POST /run/<service> is served here")
        if not secrets.compare_digest(bearer(request) or "", self.token):
            return reply(401, "this endpoint takes requests from oscar-stream's gateways only")
        service = self.service_of(parts[1])
        if service is None or service.warm is None:
            return reply(404, f"service {parts[1]!r} has no warm replicas here",
                         hint="give it 'warm:' (or 'synchronous:' in an FDL file) and apply it again")
        body = await read_body(request, self.max_body)
        if isinstance(body, web.Response):
            return body
        return await self.backend.run(service, decode_input(body), request.headers.get(INPUT_NAME_HEADER, "input"),
                                      raw=request.headers.get("Accept", "") == RAW_TYPE)
