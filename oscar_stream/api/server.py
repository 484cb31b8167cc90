"""OSCAR's Manager API on the gateway: ``/health``, ``/system/info``, ``/system/config``, service CRUD,
``POST /job/<svc>``, ``POST /run/<svc>`` and exposed services (api/warm_endpoints.py), and the job listings and
logs of ``/system/logs`` — answered from what every gateway replica reads from Kafka (the services, jobs and warm
topics) and the S3 store of the API, so any replica answers any request.

Authentication as OSCAR's: HTTP Basic (``api.username``/``api.password``, compared in constant time) for
``/system/...``; the service's token (``Authorization: Bearer``) for ``/job`` and ``/run``. OIDC bearer tokens
for ``/system/...`` would be checked in :meth:`OscarApi._admin`; they are not supported yet.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import platform
from collections.abc import Awaitable, Callable
from importlib.metadata import version

from aiohttp import web

from oscar_stream.api.context import ApiContext, ensure_bucket
from oscar_stream.api.job_endpoints import JobEndpoints
from oscar_stream.api.replies import json_reply, method_not_allowed, unauthorized
from oscar_stream.api.service_endpoints import ServiceEndpoints
from oscar_stream.api.warm_endpoints import WarmEndpoints
from oscar_stream.config import Settings
from oscar_stream.health import Component
from oscar_stream.http_replies import reply
from oscar_stream.kafka.link import KafkaLink
from oscar_stream.launch.exposed_path import exposed_prefix

API_PREFIXES = ("/system/", "/job/", "/run/")
Route = dict[str, Callable[..., Awaitable[web.StreamResponse]]]  # method -> handler(request, *path parts)


def is_api_path(path: str) -> bool:
    return path == "/health" or path.startswith(API_PREFIXES)


class OscarApi:
    def __init__(self, settings: Settings, link: KafkaLink) -> None:
        self.context = ApiContext(settings, link)
        self.services = ServiceEndpoints(self.context)
        self.jobs = JobEndpoints(self.context)
        self.warm = WarmEndpoints(self.context)
        self.health = {"services": Component("api-services"), "jobs": Component("api-jobs"),
                       "warm": Component("api-warm")}
        self.routes: dict[tuple[str, ...], Route] = {
            ("info",): {"GET": self._info},
            ("config",): {"GET": self._config},
            ("services",): {"GET": self.services.list_services, "POST": self.services.create,
                            "PUT": self.services.update},
            ("services", "*"): {"GET": self.services.get, "DELETE": self.services.delete},
            ("logs", "*"): {"GET": self.jobs.list_jobs, "DELETE": self.jobs.delete_all},
            ("logs", "*", "*"): {"GET": self.jobs.log, "DELETE": self.jobs.delete},
        }

    @property
    def ready(self) -> bool:
        context = self.context
        return context.services.ready.is_set() and context.jobs.ready.is_set() and context.warm.ready.is_set()

    async def run(self) -> None:
        if self.context.store is not None:
            await ensure_bucket(self.context.store, self.context.settings.api.bucket)
        await asyncio.gather(self.context.services.run(self.health["services"]),
                             self.context.jobs.run(self.health["jobs"]), self.context.warm.run(self.health["warm"]))

    async def close(self) -> None:
        if self.context.store is not None:
            await self.context.store.close()
        await self.services.close()
        await self.warm.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path, method = request.path.rstrip("/") or "/", request.method
        if path == "/health":
            return web.Response(text="Ok") if method == "GET" else method_not_allowed(path, "GET")
        parts = path.strip("/").split("/")
        if parts[0] in ("job", "run"):
            if len(parts) != 2:
                return reply(404, f"no endpoint {path}")
            if method != "POST":
                return method_not_allowed(path, "POST")
            return await (self.jobs.job if parts[0] == "job" else self.warm.run)(request, parts[1])
        if parts[:2] == ["system", "services"] and len(parts) >= 4 and parts[3] == "exposed":
            prefix = exposed_prefix(parts[2])
            rest = request.rel_url.raw_path[len(prefix):].removeprefix("/")  # as sent: encoded, trailing slash
            return await self.warm.exposed(request, parts[2], rest)  # its own auth (set_auth)
        if not self._admin(request):
            return unauthorized("Basic")
        arguments = parts[2:]
        route = self.routes.get((parts[1], *("*" for _ in arguments)) if len(parts) > 1 else ())
        if route is None:
            return reply(404, f"no endpoint {path}", hint="oscar-stream serves OSCAR's /system/info, /system/config, "
                         "/system/services, /system/logs, /job and /health")
        handler = route.get(method)
        if handler is None:
            return method_not_allowed(path, ", ".join(route))
        return await handler(request, *arguments)

    def _admin(self, request: web.BaseRequest) -> bool:
        api = self.context.settings.api
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic ") or api.username is None or api.password is None:
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user.encode(), api.username.encode()) & hmac.compare_digest(
            password.encode(), api.password.get_secret_value().encode())

    async def _info(self, request: web.BaseRequest) -> web.Response:
        return json_reply(200, {"version": version("oscar-stream"), "git_commit": "",
                                "architecture": platform.machine(), "kubernetes_version": ""})

    async def _config(self, request: web.BaseRequest) -> web.Response:
        """``minio_provider`` is the API's S3 store, so that oscar_python's storage client reaches it."""
        settings, store = self.context.settings, self.context.storage
        provider = {"endpoint": store.endpoint if store else "", "verify": store.verify_tls if store else True,
                    "access_key": store.access_key or "" if store else "",
                    "secret_key": store.secret_key.get_secret_value() if store and store.secret_key else "",
                    "region": store.region if store else ""}
        config = {"name": settings.api.name, "namespace": settings.kubernetes.namespace,
                  "services_namespace": settings.kubernetes.namespace, "gpu_available": False,
                  "interLink_available": False, "yunikorn_enable": False, "kueue_enable": False,
                  "volume_enable": False, "oidc_groups": [], "minio_quota_enabled": False}
        return json_reply(200, {"config": config, "minio_provider": provider, "allowed_image_repositories": []})
