"""Forwarding to another cluster: an event wanted by a service of a remote cluster goes to that cluster's
gateway (``POST /v1/events``), which routes it there. Retries with backoff on 429/5xx and network errors."""

from __future__ import annotations

import aiohttp

from oscar_stream import metrics
from oscar_stream.config import Settings
from oscar_stream.core.errors import OscarStreamError
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.results import Result
from oscar_stream.core.times import now_rfc3339
from oscar_stream.executors.base import Executor, Limiter, Permit, ResultSink
from oscar_stream.retry import RETRIABLE_HTTP, retrying
from oscar_stream.route.clusters import event_for_cluster
from oscar_stream.route.model import ServiceSpec


class RemoteForwarder(Executor):
    kind = "remote"

    def __init__(self, sink: ResultSink, limiter: Limiter, settings: Settings, attempts: int = 8) -> None:
        super().__init__(sink, limiter)
        self.settings = settings
        self.attempts = attempts
        self._http: aiohttp.ClientSession | None = None

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def _post(self, url: str, token: str, body: bytes, verify: bool) -> tuple[int, str]:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/cloudevents+json"}
        async with self._http.post(url, data=body, headers=headers, ssl=verify) as response:
            return response.status, (await response.text())[:300]

    async def launch(self, invocation: Invocation, service: ServiceSpec, permit: Permit) -> None:
        try:
            result = await self._forward(invocation, service)
        finally:
            permit.release()
        metrics.EVENTS_FORWARDED.labels(service.cluster or "?", result.status).inc()
        await self.sink(result)

    async def _forward(self, invocation: Invocation, service: ServiceSpec) -> Result:
        remote = self.settings.cluster(service.cluster or "")
        local = self.settings.cluster_id or ""
        if remote is None:
            return Result.failed(invocation, self.kind, f"service {service.name} lives on cluster {service.cluster!r}, "
                                 "which is not configured under 'clusters' (gateway_url and token)")
        event = event_for_cluster(invocation.event, local, remote.id)
        url = f"{remote.gateway_url.rstrip('/')}/v1/events"

        async def post() -> None:
            try:
                status, text = await self._post(url, remote.token.get_secret_value(), event.to_json(),
                                                remote.verify_tls)
            except (aiohttp.ClientError, TimeoutError) as err:
                raise Refused(0, str(err)) from err
            if not 200 <= status < 300:
                raise Refused(status, text)

        try:
            await retrying(post, what=f"forwarding to cluster {remote.id}", attempts=self.attempts,
                           retryable=lambda err: isinstance(err, Refused) and err.retryable)
        except Refused as err:
            return Result.failed(invocation, self.kind, f"forwarding to cluster {remote.id} failed: {err}",
                                 job=f"cluster:{remote.id}")
        return Result(invocation.id, service.name, invocation.event.id, "succeeded", self.kind,
                      job=f"cluster:{remote.id}", logs=url, finished_at=now_rfc3339(),
                      event_time=invocation.event.time)


class Refused(OscarStreamError):
    """The remote gateway did not take the event (status 0: it could not be reached)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status or 'no answer'} {text}".strip())
        self.retryable = status == 0 or status in RETRIABLE_HTTP
