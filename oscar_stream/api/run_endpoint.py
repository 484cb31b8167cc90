"""``POST /run/<svc>``: a synchronous invocation. The gateway checks the service's token and forwards the body to
a worker that serves warm replicas (the warm topic says where), trying the next one when a worker is away; the
worker's answer (the output, base64 unless raw was asked for, or why it failed) goes back as it came. A worker
whose replicas are all busy (429) passes the request on to the next one; only when every one is full does the
client get the 429."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from oscar_stream.api.context import ApiContext
from oscar_stream.api.replies import unauthorized
from oscar_stream.api.tokens import same_token
from oscar_stream.http_replies import bearer, read_body, reply
from oscar_stream.warm.http import INPUT_NAME_HEADER
from oscar_stream.warm.invoke import DEFAULT_TIMEOUT_S

log = logging.getLogger(__name__)
COLD_START_ALLOWANCE_S = 60.0
_PASSED_BACK = ("Content-Type", "Retry-After")


class RunEndpoint:
    def __init__(self, api: ApiContext) -> None:
        self.api = api
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def run(self, request: web.BaseRequest, name: str) -> web.Response:
        spec = self.api.local(name)
        offered = bearer(request)
        if spec is None or offered is None or not same_token(offered, self.api.token(spec)):
            return unauthorized("Bearer")
        if spec.warm is None:
            return reply(404, f"service {name!r} takes no synchronous invocations",
                         hint=f"give it 'synchronous:' (FDL) or 'warm:' and apply it again, or use POST /job/{name}")
        body = await read_body(request, self.api.body_limit)
        if isinstance(body, web.Response):
            return body
        endpoints = self.api.warm.in_turn()
        if not endpoints:
            return reply(503, "no worker serves warm replicas now", headers={"Retry-After": "5"},
                         hint="start a worker with the launch role (oscar-stream worker)")
        if self._http is None:
            self._http = aiohttp.ClientSession()
        headers = {INPUT_NAME_HEADER: request.headers.get(INPUT_NAME_HEADER, "input"),
                   "Accept": request.headers.get("Accept", "*/*")}
        timeout = aiohttp.ClientTimeout(total=(spec.timeout_s or DEFAULT_TIMEOUT_S) + COLD_START_ALLOWANCE_S)
        refused: web.Response | None = None
        for endpoint in endpoints:
            try:
                async with self._http.post(f"{endpoint.url}/run/{name}", data=body, timeout=timeout,
                                           headers={**headers, "Authorization": f"Bearer {endpoint.token}"}
                                           ) as answer:
                    passed = web.Response(status=answer.status, body=await answer.read(), headers={
                        k: answer.headers[k] for k in _PASSED_BACK if k in answer.headers})
            except aiohttp.ClientConnectionError as err:
                log.warning("worker %s (%s) is unreachable (%s); trying the next one", endpoint.worker,
                            endpoint.url, err)
                continue
            except TimeoutError:
                return reply(504, f"no answer from the warm replicas of {name!r} within {timeout.total:g}s")
            if passed.status != 429:
                return passed
            refused = passed  # this worker's replicas are full: another worker's may not be
        return refused or reply(503, "no worker that serves warm replicas could be reached",
                                headers={"Retry-After": "5"})
