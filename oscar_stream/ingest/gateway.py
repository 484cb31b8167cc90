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
from dataclasses import dataclass, field

import orjson
import uvloop
from aiohttp import web
from pydantic import SecretStr

from oscar_stream import metrics
from oscar_stream.api.server import OscarApi, is_api_path
from oscar_stream.config import Settings, SourceSettings
from oscar_stream.core.errors import InvalidEvent, RecordTooLarge
from oscar_stream.core.events import StorageEvent
from oscar_stream.core.records import CLOUDEVENTS_HEADERS, H_RECEIVED_AT, H_SOURCE, H_TRANSPORT, OutRecord
from oscar_stream.core.times import now_rfc3339
from oscar_stream.health import Component
from oscar_stream.http_replies import read_body, reply, unavailable
from oscar_stream.kafka.link import KafkaLink, KafkaUnavailable
from oscar_stream.kafka.probe import KafkaProbe
from oscar_stream.kafka.resilient_producer import ResilientProducer
from oscar_stream.observe.http import Handler, observability_handlers
from oscar_stream.topics import TopicNames

log = logging.getLogger(__name__)
_WEBHOOK = "/webhook/"
_JSON_TYPES = ("application/json", "text/json", "application/cloudevents+json", "text/plain")


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


def media_type_of(content_type: str) -> str:
    """``type/subtype`` of a Content-Type header, lowercased (aiohttp's ``request.content_type`` parses every
    parameter too: ~3 µs per request, a thirtieth of the webhook path)."""
    return content_type.split(";", 1)[0].strip().lower()


def _secret(token: SecretStr | None) -> bytes | None:
    return None if token is None else token.get_secret_value().encode()


def _authorized(request: web.BaseRequest, token: bytes | None, query_allowed: bool) -> bool:
    """Constant-time check of the bearer token (or, where allowed, ``?token=``). Without a configured token
    nothing is accepted: never anonymous writes."""
    if token is None:
        return False
    header = request.headers.get("Authorization", "")
    offered = header[7:] if header.startswith("Bearer ") else request.query.get("token", "") if query_allowed else ""
    return hmac.compare_digest(offered.encode(errors="surrogateescape"), token)


@dataclass(frozen=True, slots=True)
class _Inlet:
    """What the webhook path needs of one source, worked out once rather than per request."""

    topic: str
    token: bytes | None = field(repr=False)
    headers: tuple[tuple[str, bytes], ...]  # those that are the same on each of its records

    @classmethod
    def of(cls, source: SourceSettings, names: TopicNames) -> _Inlet:
        return cls(names.raw(source.id), _secret(source.token),
                   ((H_SOURCE, source.id.encode()), (H_TRANSPORT, b"webhook")))


class Gateway:
    """The request handler. It is served by aiohttp's low-level server with a dispatch of its own: the
    application router and its request machinery cost ~20 µs per request, a fifth of the webhook path."""

    def __init__(self, settings: Settings, link: KafkaLink, api: OscarApi | None = None) -> None:
        self._names = TopicNames(settings.kafka.topic_prefix)
        self._inlets = {s.id: _Inlet.of(s, self._names) for s in settings.sources if s.kind == "s3"}
        self._cluster_token = _secret(settings.gateway.cluster_token)
        self._limit = settings.gateway.max_body_bytes
        self.link = link
        self.api = api
        self._routes: dict[str, tuple[str, Handler]] = {
            "/v1/events": ("POST", self._peer_event),
            **{path: ("GET", handler) for path, handler in observability_handlers(self.ready).items()},
        }

    def ready(self) -> bool:
        return self.link.ready and (self.api is None or self.api.ready)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if is_api_path(path):
            if self.api is None:
                return reply(404, f"no endpoint {path}: OSCAR's API is off",
                             hint="set api.username, api.password and api.token_secret to serve it")
            return await self.api.handle(request)
        if path.startswith(_WEBHOOK):
            route: tuple[str, Handler] | None = ("POST", self._webhook)
        else:
            route = self._routes.get(path)
        if route is None:
            return reply(404, f"no endpoint {path}", hint="stores POST to /webhook/<source id>")
        method, handler = route
        if request.method != method:
            return reply(405, f"{path} accepts {method} only", headers={"Allow": method})
        return await handler(request)

    async def _webhook(self, request: web.BaseRequest) -> web.StreamResponse:
        source_id = request.path[len(_WEBHOOK):]
        started = time.monotonic()
        response = await self._accept(request, source_id)
        metrics.GATEWAY_REQUESTS.record(source_id if source_id in self._inlets else "unknown", response.status,
                                        time.monotonic() - started)
        return response

    async def _accept(self, request: web.BaseRequest, source_id: str) -> web.Response:
        inlet = self._inlets.get(source_id)
        if inlet is None:
            return reply(404, f"no webhook source {source_id!r} is configured")
        if not _authorized(request, inlet.token, query_allowed=True):
            return reply(401, "missing or wrong token", hint="send 'Authorization: Bearer <token>'")
        declared_type = request.headers.get("Content-Type")
        if (declared_type and declared_type not in _JSON_TYPES
                and (media_type := media_type_of(declared_type)) not in _JSON_TYPES):
            return reply(415, f"content type {media_type!r} is not accepted", hint="send application/json")
        body = await read_body(request, self._limit)
        if isinstance(body, web.Response):
            return body
        if not body:
            return reply(400, "empty body")
        headers = (*inlet.headers, (H_RECEIVED_AT, now_rfc3339().encode()),
                   ("content-type", (declared_type or "application/json").encode()))
        record = OutRecord(inlet.topic, partition_key(body), body, headers)
        try:
            [(partition, offset)] = await self.link.write([record])
        except RecordTooLarge as err:
            return reply(413, f"the notification does not fit in a Kafka record ({err})")
        except KafkaUnavailable as err:
            log.warning("a notification from %s was not taken: %s", source_id, err)
            return unavailable()
        metrics.count(metrics.EVENTS_RECEIVED, source_id, "webhook")
        return reply(200, "accepted", partition=partition, offset=offset)

    async def _peer_event(self, request: web.BaseRequest) -> web.StreamResponse:
        """A canonical event forwarded by another cluster's oscar-stream, for a service of this cluster."""
        if not _authorized(request, self._cluster_token, query_allowed=False):
            return reply(401, "missing or wrong cluster token")
        body = await read_body(request, self._limit)
        if isinstance(body, web.Response):
            return body
        try:
            event = StorageEvent.from_json(body)
        except InvalidEvent as err:
            return reply(400, f"not a canonical event: {err}")
        record = OutRecord(self._names.events, event.partition_key, event.to_json(), CLOUDEVENTS_HEADERS)
        try:
            await self.link.write([record])
        except RecordTooLarge as err:
            return reply(413, f"the event does not fit in a Kafka record ({err})")
        except KafkaUnavailable:
            return unavailable()
        metrics.count(metrics.EVENTS_RECEIVED, event.storage, "cluster")
        return reply(200, "accepted", id=event.id)


async def serve_gateway(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then finish the requests in flight (their records included)."""
    link = KafkaLink(ResilientProducer(settings.kafka, f"{settings.kafka.client_id}-gateway"),
                     KafkaProbe(settings.kafka, Component("kafka")), settings.gateway.kafka_timeout_s)
    api = OscarApi(settings, link) if settings.api.enabled else None
    gateway = Gateway(settings, link, api)
    connecting = asyncio.gather(link.keep_connected(), link.probe.run(), *([api.run()] if api else []))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with link.writer.running():
        server = web.Server(gateway.handle, access_log=None)
        listener = await loop.create_server(server, settings.gateway.host, settings.gateway.port)
        log.info("gateway listening on http://%s:%d (webhooks: POST /webhook/<source id>%s)",
                 settings.gateway.host, settings.gateway.port, "; OSCAR's API: /system/..., /job/<service>" if api
                 else "")
        await stop.wait()
        listener.close()
        await server.shutdown(timeout=settings.gateway.kafka_timeout_s)
    connecting.cancel()
    await link.producer.stop()
    if api is not None:
        await api.close()


def run_gateway(settings: Settings) -> None:
    uvloop.run(serve_gateway(settings))  # HTTP parsing and sockets are its hot path
