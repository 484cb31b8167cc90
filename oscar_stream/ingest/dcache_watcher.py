"""The dCache watcher: a Server-Sent Events client of dCache's storage-events API, writing every message to the
source's raw topic.

Its position is durable without any local state: each raw record carries the SSE id, and on start the watcher
reads the last record of its topic and resumes with ``Last-Event-ID``, so a restart neither loses nor replays
events within dCache's cache window. The channel is found again by its client-id.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from oscar_stream import metrics
from oscar_stream.config import KafkaSettings, SourceSettings
from oscar_stream.core.errors import OscarStreamError
from oscar_stream.core.records import (
    H_DCACHE_CHANNEL,
    H_DCACHE_PATH,
    H_RECEIVED_AT,
    H_SOURCE,
    H_SSE_EVENT,
    H_SSE_ID,
    H_TRANSPORT,
    OutRecord,
)
from oscar_stream.core.times import now_rfc3339
from oscar_stream.ingest.sse import SseMessage, SseParser
from oscar_stream.kafka.clients import all_partitions, consumer
from oscar_stream.kafka.resilient_producer import ResilientProducer
from oscar_stream.retry import Backoff

log = logging.getLogger(__name__)
CHANNELS = "/api/v1/events/channels"


class DcacheError(OscarStreamError):
    pass


@dataclass
class ChannelState:
    url: str
    paths: dict[str, str] = field(default_factory=dict)  # subscription URL -> watched folder
    last_id: str | None = None


def _auth_headers(source: SourceSettings) -> dict[str, str]:
    if source.bearer_token is not None:
        return {"Authorization": f"Bearer {source.bearer_token.get_secret_value()}"}
    if source.username:
        password = source.password.get_secret_value() if source.password else ""
        return {"Authorization": aiohttp.encode_basic_auth(source.username, password)}
    return {}


class DcacheWatcher:
    def __init__(self, source: SourceSettings, kafka: KafkaSettings, topic: str, producer: ResilientProducer,
                 max_backoff_s: float = 30.0) -> None:
        if source.kind != "dcache" or not source.url:
            raise ValueError(f"source {source.id!r} is not a dcache source with a url")
        self.source = source
        self.kafka = kafka
        self.topic = topic
        self.producer = producer
        self.base = source.url.rstrip("/")
        self.max_backoff_s = max_backoff_s
        self.connected = asyncio.Event()
        self.state: ChannelState | None = None

    # --- channel and subscriptions --------------------------------------------------------------------

    async def _json(self, http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
        async with http.request(method, url, **kwargs) as response:
            if response.status == 401:
                raise DcacheError(f"dCache refused the credentials of source {self.source.id} (401)")
            if response.status >= 400:
                raise DcacheError(f"{method} {url} answered {response.status}: {await response.text()}")
            if response.status == 201:
                return response.headers.get("Location")
            text = await response.text()
            return orjson.loads(text) if text.strip() else None

    async def _channel(self, http: aiohttp.ClientSession) -> ChannelState:
        client_id = self.source.client_id
        if client_id:
            found = await self._json(http, "GET", f"{self.base}{CHANNELS}", params={"client-id": client_id})
            if isinstance(found, list) and found:
                state = ChannelState(url=str(found[0]))
                for sub in await self._json(http, "GET", f"{state.url}/subscriptions") or []:
                    selector = await self._json(http, "GET", str(sub))
                    if isinstance(selector, dict) and isinstance(selector.get("path"), str):
                        state.paths[str(sub)] = selector["path"]
                log.info("dCache channel %s found again by client-id", state.url)
                return state
        location = await self._json(http, "POST", f"{self.base}{CHANNELS}",
                                    json={"client-id": client_id} if client_id else {})
        if not location:
            raise DcacheError("dCache created a channel but sent no Location header")
        log.info("dCache channel %s created", location)
        return ChannelState(url=str(location))

    async def _subscribe(self, http: aiohttp.ClientSession, state: ChannelState) -> None:
        watched = set(state.paths.values())
        for wanted in self.source.subscriptions:
            if wanted.path in watched:
                continue
            location = await self._json(http, "POST", f"{state.url}/subscriptions/inotify",
                                        json={"path": wanted.path, "flags": wanted.flags})
            if not location:
                raise DcacheError(f"subscribing {wanted.path} returned no Location header")
            state.paths[str(location)] = wanted.path

    # --- durable position ----------------------------------------------------------------------------

    async def last_published_id(self, channel: str) -> str | None:
        """The SSE id of the newest raw record this channel produced, read back from Kafka."""
        reader = consumer(self.kafka, group_id=None)
        await reader.start()
        try:
            partitions = await all_partitions(self.kafka, self.topic)
            reader.assign(partitions)
            ends = await reader.end_offsets(partitions)
            best: int | None = None
            for tp in partitions:
                if ends[tp] == 0:
                    continue
                reader.seek(tp, ends[tp] - 1)
                batch = await reader.getmany(tp, timeout_ms=5000)
                for message in batch.get(tp, []):
                    headers = {k: v.decode() for k, v in message.headers or ()}
                    if headers.get(H_DCACHE_CHANNEL) == channel and headers.get(H_SSE_ID, "").isdigit():
                        best = max(best or 0, int(headers[H_SSE_ID]))
            return None if best is None else str(best)
        finally:
            await reader.stop()

    # --- streaming ------------------------------------------------------------------------------------

    async def _publish(self, state: ChannelState, message: SseMessage) -> None:
        path = None
        if message.event == "inotify":
            try:
                doc = orjson.loads(message.data)
                path = state.paths.get(str(doc.get("subscription"))) if isinstance(doc, dict) else None
            except orjson.JSONDecodeError:
                path = None  # published anyway: the normalizer dead-letters it with the reason
        elif message.event == "SYSTEM" and '"EVENT_LOSS"' in message.data:
            metrics.DCACHE_EVENTS_LOST.labels(self.source.id).inc()
            log.error("dCache reported EVENT_LOSS on %s: events were dropped by the server", state.url)
        headers: list[tuple[str, bytes]] = [
            (H_SOURCE, self.source.id.encode()),
            (H_RECEIVED_AT, now_rfc3339().encode()),
            (H_TRANSPORT, b"dcache"),
            (H_SSE_EVENT, message.event.encode()),
            (H_DCACHE_CHANNEL, state.url.encode()),
        ]
        if message.id is not None:
            headers.append((H_SSE_ID, message.id.encode()))
        if path is not None:
            headers.append((H_DCACHE_PATH, path.encode()))
        # Written before the next message is read: the position (Last-Event-ID) is what Kafka has.
        await self.producer.write_all([OutRecord(self.topic, state.url.encode(), message.data.encode(),
                                                 tuple(headers))])
        metrics.EVENTS_RECEIVED.labels(self.source.id, "dcache").inc()
        state.last_id = message.id or state.last_id

    async def _stream(self, http: aiohttp.ClientSession, state: ChannelState) -> None:
        headers = {"Accept": "text/event-stream"}
        if state.last_id:
            headers["Last-Event-ID"] = state.last_id
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30)
        async with http.get(state.url, headers=headers, timeout=timeout) as response:
            if response.status == 404:
                raise ChannelGone(state.url)
            if response.status != 200:
                raise DcacheError(f"GET {state.url} answered {response.status}")
            self.connected.set()
            parser = SseParser()
            parser.last_id = state.last_id
            async for chunk in response.content.iter_any():
                for message in parser.feed(chunk):
                    await self._publish(state, message)

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self.source.verify_tls)
        async with aiohttp.ClientSession(headers=_auth_headers(self.source), connector=connector) as http:
            backoff = Backoff(1.0, self.max_backoff_s)
            while True:
                try:
                    if self.state is None:
                        self.state = await self._channel(http)
                        await self._subscribe(http, self.state)
                        self.state.last_id = await asyncio.wait_for(self.last_published_id(self.state.url),
                                                                    self.kafka.delivery_timeout_s)
                    await self._stream(http, self.state)
                    backoff.reset()
                except ChannelGone:
                    log.error("dCache channel %s is gone (expired while disconnected?); events in between may be "
                              "lost; creating a new one", self.state.url if self.state else "?")
                    metrics.DCACHE_EVENTS_LOST.labels(self.source.id).inc()
                    self.state = None
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # dCache or Kafka away: reconnect, resuming after what Kafka has
                    log.warning("dCache stream of %s interrupted: %s: %s", self.source.id, type(err).__name__, err)
                self.connected.clear()
                metrics.DCACHE_RECONNECTS.labels(self.source.id).inc()
                await backoff.wait()


class ChannelGone(DcacheError):
    pass
