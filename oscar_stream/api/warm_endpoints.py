"""What the gateway forwards to the workers that serve warm services (the warm topic says where), trying the
next worker when one is away:

* ``POST /run/<svc>`` — a synchronous invocation (the service's token). A worker whose replicas are all busy
  (429) passes it on to the next; only when every one is full does the client get the 429.
* ``/system/services/<svc>/exposed/...`` — any request to an exposed service's own server (OSCAR's path), with
  the service's token only when the service says ``set_auth``.

The worker's answer goes back as it came."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from oscar_stream.api.context import ApiContext
from oscar_stream.api.replies import unauthorized
from oscar_stream.api.tokens import same_token
from oscar_stream.http_replies import bearer, read_body, reply
from oscar_stream.route.model import ServiceSpec
from oscar_stream.warm.http import EXPOSED_HEADERS, INPUT_NAME_HEADER
from oscar_stream.warm.invoke import DEFAULT_TIMEOUT_S

log = logging.getLogger(__name__)
COLD_START_ALLOWANCE_S = 60.0
_PASSED_BACK = ("Content-Type", "Retry-After")


class WarmEndpoints:
    def __init__(self, api: ApiContext) -> None:
        self.api = api
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _authorized(self, request: web.BaseRequest, spec: ServiceSpec) -> bool:
        offered = bearer(request)
        return offered is not None and same_token(offered, self.api.token(spec))

    async def run(self, request: web.BaseRequest, name: str) -> web.Response:
        spec = self.api.local(name)
        if spec is None or not self._authorized(request, spec):
            return unauthorized("Bearer")
        if spec.warm is None:
            return reply(404, f"service {name!r} takes no synchronous invocations",
                         hint=f"give it 'synchronous:' (FDL) or 'warm:' and apply it again, or use POST /job/{name}")
        body = await read_body(request, self.api.body_limit)
        if isinstance(body, web.Response):
            return body
        headers = {INPUT_NAME_HEADER: request.headers.get(INPUT_NAME_HEADER, "input"),
                   "Accept": request.headers.get("Accept", "*/*")}
        timeout = (spec.timeout_s or DEFAULT_TIMEOUT_S) + COLD_START_ALLOWANCE_S
        return await self._forward("POST", f"/run/{name}", body, headers, timeout, pass_on_429=True)

    async def exposed(self, request: web.BaseRequest, name: str, rest: str) -> web.Response:
        spec = self.api.local(name)
        if spec is None or spec.expose is None:
            return reply(404, f"no exposed service {name!r}")
        if spec.expose.set_auth and not self._authorized(request, spec):
            return unauthorized("Bearer")
        body = await read_body(request, self.api.body_limit)
        if isinstance(body, web.Response):
            return body
        headers = {k: v for k, v in request.headers.items() if k.lower() in EXPOSED_HEADERS}
        target = f"/exposed/{name}/{rest}" + (f"?{request.query_string}" if request.query_string else "")
        return await self._forward(request.method, target, body, headers, COLD_START_ALLOWANCE_S + 300.0)

    async def _forward(self, method: str, path: str, body: bytes, headers: dict[str, str], timeout_s: float,
                       pass_on_429: bool = False) -> web.Response:
        endpoints = self.api.warm.in_turn()
        if not endpoints:
            return reply(503, "no worker serves warm services now", headers={"Retry-After": "5"},
                         hint="start a worker with the launch role (oscar-stream worker)")
        if self._http is None:
            self._http = aiohttp.ClientSession(auto_decompress=False)
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        refused: web.Response | None = None
        for endpoint in endpoints:
            try:
                async with self._http.request(method, f"{endpoint.url}{path}", data=body, timeout=timeout,
                                              headers={**headers, "Authorization": f"Bearer {endpoint.token}"}
                                              ) as answer:
                    passed = web.Response(status=answer.status, body=await answer.read(), headers={
                        k: v for k, v in answer.headers.items() if k in _PASSED_BACK or k.lower() in EXPOSED_HEADERS})
            except aiohttp.ClientConnectionError as err:
                log.warning("worker %s (%s) is unreachable (%s); trying the next one", endpoint.worker,
                            endpoint.url, err)
                continue
            except TimeoutError:
                return reply(504, f"no answer from the workers within {timeout_s:g}s")
            if not (pass_on_429 and passed.status == 429):
                return passed
            refused = passed  # this worker's replicas are full: another worker's may not be
        return refused or reply(503, "no worker that serves warm services could be reached",
                                headers={"Retry-After": "5"})
