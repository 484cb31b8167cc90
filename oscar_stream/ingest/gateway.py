"""The webhook gateway: stores POST notifications here; each body is written unchanged to the source's raw topic.

It answers 2xx only after Kafka acknowledged the record (acks=all, idempotent producer) and 503 otherwise,
so a store with a retry queue (MinIO ``queue_dir``) delivers again instead of losing the event.

Authentication: ``Authorization: Bearer <token>`` (MinIO's ``auth_token``). Stores that cannot send headers
(versitygw's webhook) may put the token in the URL instead: ``/webhook/<source>?token=<token>``. Tokens are
compared in constant time and never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import time
from typing import Any

import orjson
import uvloop
from aiohttp import web
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from oscar_stream import metrics
from oscar_stream.config import Settings
from oscar_stream.core.errors import InvalidEvent, RecordTooLarge
from oscar_stream.core.events import StorageEvent
from oscar_stream.core.records import CLOUDEVENTS_HEADERS, H_RECEIVED_AT, H_SOURCE, H_TRANSPORT, OutRecord
from oscar_stream.core.times import now_rfc3339
from oscar_stream.health import Component
from oscar_stream.kafka.coalescing_writer import CoalescingWriter
from oscar_stream.kafka.probe import KafkaProbe
from oscar_stream.kafka.resilient_producer import ResilientProducer
from oscar_stream.observe.http import Handler, observability_handlers
from oscar_stream.retry import Backoff
from oscar_stream.topics import TopicNames

log = logging.getLogger(__name__)
_WEBHOOK = "/webhook/"
_JSON_TYPES = ("application/json", "text/json", "application/cloudevents+json", "text/plain")


class KafkaLink:
    """The gateway's producer (rebuilt after a failed delivery) and the writer that batches concurrent
    requests' records. The gateway starts even if Kafka is down, and keeps trying to reach it."""

    def __init__(self, producer: ResilientProducer, probe: KafkaProbe) -> None:
        self.producer = producer
        self.probe = probe
        self.writer = CoalescingWriter(producer)

    @property
    def ready(self) -> bool:
        return self.probe.reachable and self.producer.ready

    async def keep_connected(self) -> None:
        """Start a producer whenever there is none (at start, and after one failed a delivery), so that
        readiness comes back by itself once Kafka is reachable again."""
        backoff = Backoff(0.5, 10.0)
        while True:
            if self.producer.ready:
                backoff.reset()
                await asyncio.sleep(0.5)
                continue
            try:
                await self.producer.writer()
                log.info("Kafka reachable: the gateway accepts notifications")
            except Exception as err:
                log.warning("Kafka not reachable (%s: %s); the gateway answers 503 meanwhile",
                            type(err).__name__, err)
                await backoff.wait()

    async def overdue(self) -> None:
        """A write not acknowledged in time: the producer may hold it (and everything behind it) for as long
        as the broker is away; drop it, so that nothing answered 503 is written later by it."""
        await self.producer.discard()


MAX_PARTITION_KEY_BYTES = 2048  # bucket + '/' + an S3 key of at most 1024 bytes, with room for URL escapes


def partition_key(body: bytes) -> bytes | None:
    """``bucket/key`` of the first record when it can be read cheaply, so one object's events stay ordered
    (None when it cannot, or is too long to be a real object's name: the record goes to any partition, and
    normalize decides what it is)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("Key"), str):  # MinIO's top-level field
        key = str(doc["Key"]).encode("utf-8", "surrogatepass")
    else:
        try:
            s3 = doc["Records"][0]["s3"]
            key = f"{s3['bucket']['name']}/{s3['object']['key']}".encode("utf-8", "surrogatepass")
        except (KeyError, IndexError, TypeError):
            return None
    return key if len(key) <= MAX_PARTITION_KEY_BYTES else None


def _authorized(request: web.BaseRequest, token: SecretStr | None, query_allowed: bool) -> bool:
    """Constant-time check of the bearer token (or, where allowed, ``?token=``). Without a configured token
    nothing is accepted: never anonymous writes."""
    if token is None:
        return False
    header = request.headers.get("Authorization", "")
    offered = header[7:] if header.startswith("Bearer ") else request.query.get("token", "") if query_allowed else ""
    return hmac.compare_digest(offered.encode(), token.get_secret_value().encode())


def _unavailable() -> web.Response:
    return _reply(503, "Kafka is unavailable; retry later", headers={"Retry-After": "5"})


def _reply(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    return web.Response(body=orjson.dumps({"status": status, "message": message, **extra}), status=status,
                        content_type="application/json", headers=headers)


class Gateway:
    """The request handler. It is served by aiohttp's low-level server with a dispatch of its own: the
    application router and its request machinery cost ~20 µs per request, a fifth of the webhook path."""

    def __init__(self, settings: Settings, link: KafkaLink) -> None:
        self._settings = settings
        self._names = TopicNames(settings.kafka.topic_prefix)
        self._sources = {s.id: s for s in settings.sources if s.kind == "s3"}
        self._limit = settings.gateway.max_body_bytes
        self._timeout = settings.gateway.kafka_timeout_s
        self.link = link
        self._routes: dict[str, tuple[str, Handler]] = {
            "/v1/events": ("POST", self._peer_event),
            **{path: ("GET", handler) for path, handler in observability_handlers(self.ready).items()},
        }

    def ready(self) -> bool:
        return self.link.ready

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith(_WEBHOOK):
            route: tuple[str, Handler] | None = ("POST", self._webhook)
        else:
            route = self._routes.get(path)
        if route is None:
            return _reply(404, f"no endpoint {path}", hint="stores POST to /webhook/<source id>")
        method, handler = route
        if request.method != method:
            return _reply(405, f"{path} accepts {method} only", headers={"Allow": method})
        return await handler(request)

    async def _webhook(self, request: web.BaseRequest) -> web.StreamResponse:
        source_id = request.path[len(_WEBHOOK):]
        started = time.monotonic()
        response = await self._accept(request, source_id)
        label = source_id if source_id in self._sources else "unknown"
        metrics.count(metrics.GATEWAY_REQUESTS, label, str(response.status))
        metrics.child(metrics.GATEWAY_LATENCY, label).observe(time.monotonic() - started)
        return response

    async def _read_body(self, request: web.BaseRequest) -> bytes | web.Response:
        declared = request.content_length
        if declared is not None and declared > self._limit:
            return _reply(413, f"body of {declared} bytes is over the limit of {self._limit}")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            body = None
        if body is None or len(body) > self._limit:  # sent without a Content-Length (chunked)
            return _reply(413, f"body is over the limit of {self._limit} bytes")
        return body

    async def _accept(self, request: web.BaseRequest, source_id: str) -> web.Response:
        source = self._sources.get(source_id)
        if source is None:
            return _reply(404, f"no webhook source {source_id!r} is configured")
        if not _authorized(request, source.token, query_allowed=True):
            return _reply(401, "missing or wrong token", hint="send 'Authorization: Bearer <token>'")
        content_type = request.content_type
        if request.headers.get("Content-Type") and content_type not in _JSON_TYPES:
            return _reply(415, f"content type {content_type!r} is not accepted", hint="send application/json")
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        if not body:
            return _reply(400, "empty body")
        if not self.link.ready:
            return _unavailable()
        headers = (
            (H_SOURCE, source_id.encode()),
            (H_RECEIVED_AT, now_rfc3339().encode()),
            (H_TRANSPORT, b"webhook"),
            ("content-type", (request.headers.get("Content-Type") or "application/json").encode()),
        )
        record = OutRecord(self._names.raw(source_id), partition_key(body), body, headers)
        try:
            partition, offset = await asyncio.wait_for(self.link.writer.write(record), self._timeout)
        except RecordTooLarge as err:
            return _reply(413, f"the notification does not fit in a Kafka record ({err})")
        except TimeoutError:
            # Only a record already sent may still be written after this answer; the store's retry then makes
            # a copy, which has the same event id and so leads to the same (one) invocation downstream.
            log.warning("Kafka did not acknowledge a notification from %s in %.0fs", source_id, self._timeout)
            await self.link.overdue()
            return _unavailable()
        except (KafkaError, ConnectionError) as err:
            log.warning("Kafka did not acknowledge a notification from %s: %r", source_id, err)
            return _unavailable()
        metrics.count(metrics.EVENTS_RECEIVED, source_id, "webhook")
        return _reply(200, "accepted", partition=partition, offset=offset)

    async def _peer_event(self, request: web.BaseRequest) -> web.StreamResponse:
        """A canonical event forwarded by another cluster's oscar-stream, for a service of this cluster."""
        if not _authorized(request, self._settings.gateway.cluster_token, query_allowed=False):
            return _reply(401, "missing or wrong cluster token")
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            event = StorageEvent.from_json(body)
        except InvalidEvent as err:
            return _reply(400, f"not a canonical event: {err}")
        if not self.link.ready:
            return _unavailable()
        record = OutRecord(self._names.events, event.partition_key, event.to_json(), CLOUDEVENTS_HEADERS)
        try:
            await asyncio.wait_for(self.link.writer.write(record), self._timeout)
        except RecordTooLarge as err:
            return _reply(413, f"the event does not fit in a Kafka record ({err})")
        except TimeoutError:
            await self.link.overdue()
            return _unavailable()
        except (KafkaError, ConnectionError):
            return _unavailable()
        metrics.count(metrics.EVENTS_RECEIVED, event.storage, "cluster")
        return _reply(200, "accepted", id=event.id)


async def serve_gateway(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then finish the requests in flight (their records included)."""
    link = KafkaLink(ResilientProducer(settings.kafka, f"{settings.kafka.client_id}-gateway"),
                     KafkaProbe(settings.kafka, Component("kafka")))
    gateway = Gateway(settings, link)
    connecting = asyncio.gather(link.keep_connected(), link.probe.run())
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with link.writer.running():
        server = web.Server(gateway.handle, access_log=None)
        listener = await loop.create_server(server, settings.gateway.host, settings.gateway.port)
        log.info("gateway listening on http://%s:%d (webhooks: POST /webhook/<source id>)",
                 settings.gateway.host, settings.gateway.port)
        await stop.wait()
        listener.close()
        await server.shutdown(timeout=settings.gateway.kafka_timeout_s)
    connecting.cancel()
    await link.producer.stop()


def run_gateway(settings: Settings) -> None:
    uvloop.run(serve_gateway(settings))  # HTTP parsing and sockets are its hot path
