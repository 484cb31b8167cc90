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
import time
from collections.abc import Callable
from typing import Any

import orjson
import uvloop
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from oscar_stream import metrics
from oscar_stream.config import Settings, SourceSettings
from oscar_stream.kafka.clients import reliable_producer
from oscar_stream.normalize.canonical import InvalidEvent, StorageEvent, now_rfc3339
from oscar_stream.normalize.dispatch import H_RECEIVED_AT, H_SOURCE, H_TRANSPORT
from oscar_stream.normalize.records import CLOUDEVENTS_HEADERS
from oscar_stream.observe.http import observability_routes
from oscar_stream.topics import TopicNames

log = logging.getLogger(__name__)
_JSON_TYPES = ("application/json", "text/json", "application/cloudevents+json", "text/plain")


class KafkaLink:
    """The gateway's producer and whether it has connected yet (the gateway starts even if Kafka is down)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.started = asyncio.Event()

    async def connect(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.producer.start()
                self.started.set()
                return
            except KafkaError as err:
                log.warning("Kafka not reachable yet (%s); retrying in %.1fs", err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


LINK_KEY: web.AppKey[KafkaLink] = web.AppKey("kafka", KafkaLink)


def partition_key(body: bytes) -> bytes | None:
    """``bucket/key`` of the first record when it can be read cheaply, so one object's events stay ordered."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("Key"), str):  # MinIO's top-level field
        return str(doc["Key"]).encode()
    try:
        s3 = doc["Records"][0]["s3"]
        return f"{s3['bucket']['name']}/{s3['object']['key']}".encode()
    except (KeyError, IndexError, TypeError):
        return None


def _authorized(request: web.Request, source: SourceSettings) -> bool:
    if source.token is None:
        return False  # a source without a token cannot use the gateway: never accept anonymous writes
    expected = source.token.get_secret_value().encode()
    header = request.headers.get("Authorization", "")
    offered = header[7:] if header.startswith("Bearer ") else request.query.get("token", "")
    return hmac.compare_digest(offered.encode(), expected)


def _unavailable() -> web.Response:
    return web.json_response({"status": 503, "message": "Kafka is unavailable; retry later"}, status=503,
                             headers={"Retry-After": "5"})


def _reply(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"status": status, "message": message, **extra}, status=status)


def create_gateway(settings: Settings, producer_factory: Callable[[], AIOKafkaProducer] | None = None
                   ) -> web.Application:
    names = TopicNames(settings.kafka.topic_prefix)
    sources = {s.id: s for s in settings.sources if s.kind == "s3"}
    limit = settings.gateway.max_body_bytes
    app = web.Application(client_max_size=limit)

    async def kafka_lifecycle(app: web.Application) -> Any:
        link = KafkaLink((producer_factory or (lambda: reliable_producer(settings.kafka)))())
        app[LINK_KEY] = link
        connecting = asyncio.ensure_future(link.connect())
        yield
        connecting.cancel()
        await link.producer.stop()

    app.cleanup_ctx.append(kafka_lifecycle)

    async def webhook(request: web.Request) -> web.Response:
        source_id = request.match_info["source"]
        started = time.monotonic()
        response = await _accept(request, source_id)
        metrics.GATEWAY_REQUESTS.labels(source_id if source_id in sources else "unknown",
                                        str(response.status)).inc()
        metrics.GATEWAY_LATENCY.labels(source_id if source_id in sources else "unknown").observe(
            time.monotonic() - started)
        return response

    async def _accept(request: web.Request, source_id: str) -> web.Response:
        source = sources.get(source_id)
        if source is None:
            return _reply(404, f"no webhook source {source_id!r} is configured")
        if not _authorized(request, source):
            return _reply(401, "missing or wrong token", hint="send 'Authorization: Bearer <token>'")
        declared = request.content_length
        if declared is not None and declared > limit:
            return _reply(413, f"body of {declared} bytes is over the limit of {limit}")
        content_type = request.content_type
        if request.headers.get("Content-Type") and content_type not in _JSON_TYPES:
            return _reply(415, f"content type {content_type!r} is not accepted", hint="send application/json")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _reply(413, f"body is over the limit of {limit} bytes")
        if not body:
            return _reply(400, "empty body")
        headers = [
            (H_SOURCE, source_id.encode()),
            (H_RECEIVED_AT, now_rfc3339().encode()),
            (H_TRANSPORT, b"webhook"),
            ("content-type", (request.headers.get("Content-Type") or "application/json").encode()),
        ]
        link = request.app[LINK_KEY]
        if not link.started.is_set():
            return _unavailable()
        try:
            metadata = await asyncio.wait_for(
                link.producer.send_and_wait(names.raw(source_id), body, key=partition_key(body), headers=headers),
                settings.gateway.kafka_timeout_s,
            )
        except (KafkaError, TimeoutError) as err:
            log.warning("Kafka did not acknowledge a notification from %s: %r", source_id, err)
            return _unavailable()
        metrics.EVENTS_RECEIVED.labels(source_id, "webhook").inc()
        return _reply(200, "accepted", partition=metadata.partition, offset=metadata.offset)

    async def peer_event(request: web.Request) -> web.Response:
        """A canonical event forwarded by another cluster's oscar-stream, for a service of this cluster."""
        token = settings.gateway.cluster_token
        header = request.headers.get("Authorization", "")
        offered = header[7:] if header.startswith("Bearer ") else ""
        if token is None or not hmac.compare_digest(offered.encode(), token.get_secret_value().encode()):
            return _reply(401, "missing or wrong cluster token")
        try:
            event = StorageEvent.from_json(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return _reply(413, f"body is over the limit of {limit} bytes")
        except InvalidEvent as err:
            return _reply(400, f"not a canonical event: {err}")
        link = request.app[LINK_KEY]
        if not link.started.is_set():
            return _unavailable()
        try:
            await asyncio.wait_for(
                link.producer.send_and_wait(names.events, event.to_json(), key=event.partition_key,
                                            headers=list(CLOUDEVENTS_HEADERS)),
                settings.gateway.kafka_timeout_s)
        except (KafkaError, TimeoutError):
            return _unavailable()
        metrics.EVENTS_RECEIVED.labels(event.storage, "cluster").inc()
        return _reply(200, "accepted", id=event.id)

    def ready() -> bool:
        link = app.get(LINK_KEY)
        return link is not None and link.started.is_set() and bool(link.producer.client.cluster.brokers())

    app.router.add_post("/webhook/{source}", webhook)
    app.router.add_post("/v1/events", peer_event)
    observability_routes(app, ready)
    return app


def run_gateway(settings: Settings) -> None:
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # HTTP parsing and sockets are its hot path
    app = create_gateway(settings)
    web.run_app(app, host=settings.gateway.host, port=settings.gateway.port, access_log=None,
                print=lambda msg: log.info("%s", msg))
