"""A small server following dCache's storage-events protocol (frontend REST API + Server-Sent Events), for
testing the watcher: channels (findable by client-id), inotify subscriptions, SYSTEM messages, and replay of
cached messages after a reconnect with ``Last-Event-ID``. Authentication is HTTP basic, as dCache refuses
anonymous access."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson
from aiohttp import web

BASE = "/api/v1/events/channels"


@dataclass
class Channel:
    id: str
    client_id: str | None
    messages: list[tuple[int, str, bytes]] = field(default_factory=list)  # (id, event, data)
    subscriptions: dict[str, str] = field(default_factory=dict)  # subscription id -> path
    streams: list[web.StreamResponse] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    next_id: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class DcacheServer:
    def __init__(self, username: str = "beamline", password: str = "secret-pw") -> None:
        self.credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.channels: dict[str, Channel] = {}
        self.ids = itertools.count(1)
        self.url = ""
        self.connects = 0
        self.last_event_ids: list[str | None] = []
        self._runner: web.AppRunner | None = None

    # --- control from the test --------------------------------------------------------------------------

    def channel(self) -> Channel:
        [only] = self.channels.values()
        return only

    def subscription_url(self, channel: Channel, path: str) -> str:
        sid = next(s for s, p in channel.subscriptions.items() if p == path)
        return f"{self.url}{BASE}/{channel.id}/subscriptions/inotify/{sid}"

    def emit(self, path: str, name: str, mask: list[str], cookie: str | None = None) -> int:
        channel = self.channel()
        event: dict[str, object] = {"name": name, "mask": mask}
        if cookie:
            event["cookie"] = cookie
        return self._push(channel, "inotify", {"event": event, "subscription": self.subscription_url(channel, path)})

    def emit_system(self, kind: str) -> int:
        return self._push(self.channel(), "SYSTEM", {"type": kind})

    def _push(self, channel: Channel, event: str, data: object) -> int:
        message_id = next(channel.next_id)
        channel.messages.append((message_id, event, orjson.dumps(data)))
        channel.changed.set()
        return message_id

    async def drop_connections(self) -> None:
        """Like a network cut: every open stream ends; the watcher must reconnect."""
        for channel in self.channels.values():
            for stream in list(channel.streams):
                if stream.prepared:
                    stream.force_close()
                    transport = stream._req.transport if stream._req else None
                    if transport is not None:
                        transport.close()
            channel.streams.clear()
            channel.changed.set()

    # --- HTTP -----------------------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Basic {self.credentials}":
            return web.json_response({"errors": [{"message": "anonymous access is not allowed"}]}, status=401)
        return await handler(request)

    async def _create_channel(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        channel = Channel(id=f"ch{next(self.ids)}", client_id=body.get("client-id"))
        self.channels[channel.id] = channel
        return web.Response(status=201, headers={"Location": f"{self.url}{BASE}/{channel.id}"})

    async def _list_channels(self, request: web.Request) -> web.Response:
        wanted = request.query.get("client-id")
        return web.json_response([f"{self.url}{BASE}/{c.id}" for c in self.channels.values()
                                  if wanted is None or c.client_id == wanted])

    def _find(self, request: web.Request) -> Channel:
        channel = self.channels.get(request.match_info["channel"])
        if channel is None:
            raise web.HTTPNotFound(text="no such channel")
        return channel

    async def _subscribe(self, request: web.Request) -> web.Response:
        channel = self._find(request)
        body = await request.json()
        if not isinstance(body.get("path"), str):
            return web.json_response({"errors": [{"message": "path is required"}]}, status=400)
        sid = f"sub{next(self.ids)}"
        channel.subscriptions[sid] = body["path"]
        url = f"{self.url}{BASE}/{channel.id}/subscriptions/inotify/{sid}"
        self._push(channel, "SYSTEM", {"type": "NEW_SUBSCRIPTION", "subscription": url})
        return web.Response(status=201, headers={"Location": url})

    async def _list_subscriptions(self, request: web.Request) -> web.Response:
        channel = self._find(request)
        return web.json_response([f"{self.url}{BASE}/{channel.id}/subscriptions/inotify/{sid}"
                                  for sid in channel.subscriptions])

    async def _get_subscription(self, request: web.Request) -> web.Response:
        channel = self._find(request)
        path = channel.subscriptions.get(request.match_info["sid"])
        if path is None:
            raise web.HTTPNotFound()
        return web.json_response({"path": path})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        channel = self._find(request)
        if "text/event-stream" not in request.headers.get("Accept", ""):
            return web.json_response({"id": channel.id})
        last = request.headers.get("Last-Event-ID")
        self.connects += 1
        self.last_event_ids.append(last)
        position = int(last) if last and last.isdigit() else 0
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        channel.streams.append(response)
        try:
            while response in channel.streams:
                channel.changed.clear()
                for message_id, event, data in channel.messages:
                    if message_id > position:
                        await response.write(f"event: {event}\nid: {message_id}\ndata: ".encode() + data + b"\n\n")
                        position = message_id
                await channel.changed.wait()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def start(self) -> str:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post(BASE, self._create_channel)
        app.router.add_get(BASE, self._list_channels)
        app.router.add_get(f"{BASE}/{{channel}}", self._stream)
        app.router.add_post(f"{BASE}/{{channel}}/subscriptions/inotify", self._subscribe)
        app.router.add_get(f"{BASE}/{{channel}}/subscriptions", self._list_subscriptions)
        app.router.add_get(f"{BASE}/{{channel}}/subscriptions/inotify/{{sid}}", self._get_subscription)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        await self.drop_connections()
        if self._runner is not None:
            await self._runner.cleanup()
