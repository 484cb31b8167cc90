"""OSCAR's Manager API on the gateway: ``/health``, ``/system/info``, ``/system/config``, service CRUD,
``POST /job/<svc>``, and the job listings and logs of ``/system/logs`` — answered from what every gateway replica
reads from Kafka (the services and jobs topics) and the S3 store of the API, so any replica answers any request.

Authentication as OSCAR's: HTTP Basic (``api.username``/``api.password``, compared in constant time) for
``/system/...``; the service's token (``Authorization: Bearer``) for ``/job`` and ``/run``. OIDC bearer tokens
for ``/system/...`` would be checked in :meth:`OscarApi._admin`; they are not supported yet.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import platform
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from importlib.metadata import version
from typing import Any

import orjson
from aiohttp import web

from oscar_stream.api.service_json import InvalidService, describe_notes, service_from_json, service_to_json
from oscar_stream.api.tokens import same_token, service_token
from oscar_stream.config import Settings
from oscar_stream.core.errors import InvalidEvent, RecordTooLarge
from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.ids import created_object_id, random_nonce
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.jobs import JobRecord, job_name
from oscar_stream.core.records import OutRecord
from oscar_stream.core.times import now_rfc3339
from oscar_stream.health import Component
from oscar_stream.http_replies import bearer, read_body, reply, unavailable
from oscar_stream.kafka.link import KafkaLink, KafkaUnavailable
from oscar_stream.normalize.outcome import ParseError
from oscar_stream.normalize.s3_records import parse_s3_notification
from oscar_stream.route.model import ServiceSpec
from oscar_stream.storage.base import StorageError
from oscar_stream.storage.registry import Stores
from oscar_stream.storage.s3 import S3Store
from oscar_stream.topics import TopicNames
from oscar_stream.worker.jobs_table import JobsTable
from oscar_stream.worker.services_table import ServicesTable

log = logging.getLogger(__name__)
PAGE_SIZE = 70  # OSCAR's JOB_LISTING_LIMIT
API_PREFIXES = ("/system/", "/job/", "/run/")
JSON = "application/json"
Route = dict[str, Callable[..., Awaitable[web.StreamResponse]]]  # method -> handler(request, *path parts)


def is_api_path(path: str) -> bool:
    return path == "/health" or path.startswith(API_PREFIXES)


def _json(status: int, document: Any) -> web.Response:
    """Compact JSON, as OSCAR writes it (clients match substrings such as ``"name":"oscar"``)."""
    return web.Response(body=orjson.dumps(document), status=status, content_type=JSON, charset="utf-8")


def _empty(status: int) -> web.Response:
    return web.Response(status=status)


def _unauthorized(scheme: str) -> web.Response:
    return reply(401, "missing or wrong credentials",
                 headers={"WWW-Authenticate": f'{scheme} realm="oscar-stream"'})


class OscarApi:
    def __init__(self, settings: Settings, link: KafkaLink) -> None:
        self.settings = settings
        self.link = link
        self.names = TopicNames(settings.kafka.topic_prefix)
        self.services = ServicesTable(settings.kafka, self.names.services, settings.cluster_id)
        self.jobs = JobsTable(settings.kafka, self.names.jobs)
        storage = settings.api_storage()
        self.storage = storage
        self.store = S3Store(storage) if storage is not None else None
        self.stores = Stores(settings.storages)
        self.health = {"services": Component("api-services"), "jobs": Component("api-jobs")}
        self._limit = settings.gateway.max_body_bytes

    @property
    def ready(self) -> bool:
        return self.services.ready.is_set() and self.jobs.ready.is_set()

    async def run(self) -> None:
        if self.store is not None:
            await self._ensure_bucket(self.store, self.settings.api.bucket)
        await asyncio.gather(self.services.run(self.health["services"]), self.jobs.run(self.health["jobs"]))

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()
        await self.stores.close()

    # --- dispatch ----------------------------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path, method = request.path.rstrip("/") or "/", request.method
        if path == "/health":
            return web.Response(text="Ok") if method == "GET" else _method(path, "GET")
        parts = path.strip("/").split("/")
        if parts[0] in ("job", "run"):
            if len(parts) != 2:
                return reply(404, f"no endpoint {path}")
            if method != "POST":
                return _method(path, "POST")
            return await (self._job(request, parts[1]) if parts[0] == "job" else self._run(parts[1]))
        if not self._admin(request):
            return _unauthorized("Basic")
        routes: dict[tuple[str, ...], Route] = {
            ("info",): {"GET": self._info},
            ("config",): {"GET": self._config},
            ("services",): {"GET": self._list_services, "POST": self._create, "PUT": self._update},
        }
        route = routes.get(tuple(parts[1:]))
        if route is None and len(parts) == 3 and parts[1] == "services":
            route = {"GET": self._get_service, "DELETE": self._delete_service}
        elif route is None and len(parts) in (3, 4) and parts[1] == "logs":
            route = {"GET": self._list_jobs, "DELETE": self._delete_jobs} if len(parts) == 3 else {
                "GET": self._job_log, "DELETE": self._delete_job}
        if route is None:
            return reply(404, f"no endpoint {path}", hint="oscar-stream serves OSCAR's /system/info, /system/config, "
                         "/system/services, /system/logs, /job and /health")
        handler = route.get(method)
        if handler is None:
            return _method(path, ", ".join(route))
        return await handler(request, *parts[2:])

    def _admin(self, request: web.BaseRequest) -> bool:
        api = self.settings.api
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic ") or api.username is None or api.password is None:
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user.encode(), api.username.encode()) & hmac.compare_digest(
            password.encode(), api.password.get_secret_value().encode())

    # --- cluster -----------------------------------------------------------------------------------------

    async def _info(self, request: web.BaseRequest) -> web.Response:
        return _json(200, {"version": version("oscar-stream"), "git_commit": "", "architecture": platform.machine(),
                           "kubernetes_version": ""})

    async def _config(self, request: web.BaseRequest) -> web.Response:
        store = self.storage
        provider = {"endpoint": store.endpoint if store else "", "verify": store.verify_tls if store else True,
                    "access_key": store.access_key or "" if store else "",
                    "secret_key": store.secret_key.get_secret_value() if store and store.secret_key else "",
                    "region": store.region if store else ""}
        config = {"name": self.settings.api.name, "namespace": self.settings.kubernetes.namespace,
                  "services_namespace": self.settings.kubernetes.namespace, "gpu_available": False,
                  "interLink_available": False, "yunikorn_enable": False, "kueue_enable": False,
                  "volume_enable": False, "oidc_groups": [], "minio_quota_enabled": False}
        return _json(200, {"config": config, "minio_provider": provider, "allowed_image_repositories": []})

    # --- services ----------------------------------------------------------------------------------------

    def _local(self, name: str) -> ServiceSpec | None:
        spec = self.services.index.get(name)
        return spec if spec is not None and self.services.is_local(spec) else None

    def _token(self, spec: ServiceSpec) -> str:
        secret = self.settings.api.token_secret
        assert secret is not None  # the API is on only with a secret
        return service_token(secret, spec.name, spec.token_nonce or "")

    async def _list_services(self, request: web.BaseRequest) -> web.Response:
        local = sorted((s for s in self.services.index.services() if self.services.is_local(s)), key=lambda s: s.name)
        return _json(200, [service_to_json(s, self._token(s), self.storage) for s in local])

    async def _get_service(self, request: web.BaseRequest, name: str) -> web.Response:
        spec = self._local(name)
        if spec is None:
            return reply(404, f"no service {name!r}")
        return _json(200, service_to_json(spec, self._token(spec), self.storage))

    async def _read_service(self, request: web.BaseRequest) -> tuple[ServiceSpec, dict[str, list[str]]] | web.Response:
        body = await read_body(request, self._limit)
        if isinstance(body, web.Response):
            return body
        try:
            spec, notes = service_from_json(orjson.loads(body or b"null"), self.settings.cluster_id)
        except orjson.JSONDecodeError as err:
            return reply(400, f"The service specification is not valid: not JSON: {err}")
        except InvalidService as err:
            return reply(400, "The service specification is not valid", problems=err.problems)
        return spec, describe_notes(notes)

    async def _create(self, request: web.BaseRequest) -> web.Response:
        read = await self._read_service(request)
        if isinstance(read, web.Response):
            return read
        spec, notes = read
        if self._local(spec.name) is not None:
            return reply(409, "A service with the provided name already exists",
                         hint="update it with PUT /system/services, or delete it first")
        return await self._publish(replace(spec, token_nonce=random_nonce()), 201, notes)

    async def _update(self, request: web.BaseRequest) -> web.Response:
        read = await self._read_service(request)
        if isinstance(read, web.Response):
            return read
        spec, notes = read
        existing = self._local(spec.name)
        if existing is None:
            return reply(404, f"no service {spec.name!r}", hint="create it with POST /system/services")
        return await self._publish(replace(spec, token_nonce=existing.token_nonce or random_nonce()), 204, notes)

    async def _publish(self, spec: ServiceSpec, status: int, notes: dict[str, list[str]]) -> web.Response:
        """The same path as ``oscar-stream apply``: the service's record on the services topic."""
        value = orjson.dumps(spec.to_record())
        try:
            await self.link.write([OutRecord(self.names.services, spec.name.encode(), value)])
        except KafkaUnavailable:
            return unavailable()
        self.services.apply(spec.name.encode(), value)  # this replica reads its own write at once
        places = {(i.storage, i.path.split("/")[0]) for i in spec.inputs}
        places |= {(o.storage, o.path.split("/")[0]) for o in spec.outputs}
        for storage, bucket in places:  # on S3 stores oscar-stream manages, the buckets the service needs
            store = self._managed_store(storage)
            if store is not None:
                await self._ensure_bucket(store, bucket)
        if status == 204 and not notes["warning"]:
            return _empty(204)
        return _json(200 if status == 204 else status, {"name": spec.name, **{f"{k}s": v for k, v in notes.items()}})

    def _managed_store(self, storage: str) -> S3Store | None:
        settings = self.settings.storage(storage)
        if settings is None or settings.kind != "s3":
            return None
        store = self.stores.get(storage)
        return store if isinstance(store, S3Store) else None

    async def _ensure_bucket(self, store: S3Store, bucket: str) -> None:
        try:
            await store.ensure_bucket(bucket)
        except StorageError as err:
            log.warning("bucket %s could not be created: %s", bucket, err)

    async def _delete_service(self, request: web.BaseRequest, name: str) -> web.Response:
        if self._local(name) is None:
            return reply(404, f"no service {name!r}")
        try:
            await self.link.write([OutRecord(self.names.services, name.encode(), None)])
        except KafkaUnavailable:
            return unavailable()
        self.services.apply(name.encode(), None)
        return _empty(204)

    # --- jobs --------------------------------------------------------------------------------------------

    async def _run(self, name: str) -> web.Response:
        return reply(404, f"POST /run/{name}: synchronous invocations are not available in oscar-stream yet",
                     hint=f"invoke the service asynchronously with POST /job/{name}")

    async def _job(self, request: web.BaseRequest, name: str) -> web.Response:
        spec = self._local(name)
        offered = bearer(request)
        if spec is None or offered is None or not same_token(offered, self._token(spec)):
            return _unauthorized("Bearer")
        body = await read_body(request, self._limit)
        if isinstance(body, web.Response):
            return body
        try:
            events = await self._job_events(name, body)
        except StorageError as err:
            return reply(503, f"the job's input could not be stored: {err}", headers={"Retry-After": "5"})
        invocations = [Invocation.of(spec.name, spec.version, event) for event in events]
        records = [OutRecord(self.names.invocations, i.id.encode(), i.to_json()) for i in invocations]
        try:
            await self.link.write(records)
        except RecordTooLarge as err:
            return reply(413, f"the job does not fit in a Kafka record ({err})")
        except KafkaUnavailable:
            return unavailable()
        return web.Response(status=201, headers={"X-Oscar-Stream-Job": ",".join(
            job_name(i.service, i.id) for i in invocations)})

    async def _job_events(self, service: str, body: bytes) -> list[StorageEvent]:
        """A storage notification as body: its objects. Anything else (base64 or not): the job's input file,
        kept in the API's bucket first, so that both executors fetch it as they fetch any object."""
        if body.lstrip().startswith(b"{") and self.storage is not None:
            try:  # OSCAR's MinIO webhooks post here: MinIO's notifications, keys URL-encoded
                outcome = parse_s3_notification(body, self.storage.id, "url", now_rfc3339())
                if outcome.events:
                    return outcome.events
            except (ParseError, InvalidEvent):
                pass  # not a notification: a JSON payload
        if self.store is None:
            raise StorageError("no S3 storage is configured for OSCAR's API (api.storage)")
        try:
            payload = base64.b64decode(body, validate=True) if body.strip() else body
        except binascii.Error:
            payload = body
        key = f"jobs/{service}/{uuid.uuid4().hex}"
        stored = await self.store.put_bytes(payload, self.settings.api.bucket, key)
        now = now_rfc3339()
        return [StorageEvent(id=created_object_id(stored.storage, stored.bucket, stored.key, stored.version_id,
                                                  stored.etag, now), type=CREATED, time=now, storage=stored.storage,
                             kind="s3", bucket=stored.bucket, key=stored.key, action="s3:ObjectCreated:Put",
                             size=stored.size, etag=stored.etag, version_id=stored.version_id, received_at=now)]

    def _service_jobs(self, name: str) -> dict[str, JobRecord] | None:
        return self.jobs.jobs(name) if self._local(name) is not None else None

    async def _list_jobs(self, request: web.BaseRequest, name: str) -> web.Response:
        jobs = self._service_jobs(name)
        if jobs is None:
            return reply(404, f"no service {name!r}")
        ordered = sorted(jobs.values(), key=lambda r: (r.creation_time, r.job), reverse=True)
        start = _page_start(request.query.get("page", ""))
        page = ordered[start:start + PAGE_SIZE]
        answer: dict[str, Any] = {"jobs": {r.job: r.oscar_info() for r in page}}
        if start + PAGE_SIZE < len(ordered):
            answer["next_page"] = str(start + PAGE_SIZE)
            answer["remaining_jobs"] = len(ordered) - start - PAGE_SIZE
        return _json(200, answer)

    async def _job_log(self, request: web.BaseRequest, name: str, job: str) -> web.Response:
        record = (self._service_jobs(name) or {}).get(job)
        if record is None:
            return reply(404, f"no job {job!r} of service {name!r}")
        if record.logs is None or self.store is None:
            why = "the job has not ended yet" if not record.finished else "no log was kept for this job"
            return reply(404, f"no log of job {job!r}: {why}")
        text = await self.store.get_bytes(record.logs.bucket or "", record.logs.key)
        if text is None:
            return reply(404, f"the log of job {job!r} is gone from the store")
        return web.Response(body=text, content_type="text/plain", charset="utf-8")

    async def _delete_job(self, request: web.BaseRequest, name: str, job: str) -> web.Response:
        record = (self._service_jobs(name) or {}).get(job)
        if record is None:
            return reply(404, f"no job {job!r} of service {name!r}")
        if not record.finished:
            return reply(409, f"job {job!r} has not ended yet; delete it once it has")
        return await self._forget([record])

    async def _delete_jobs(self, request: web.BaseRequest, name: str) -> web.Response:
        jobs = self._service_jobs(name)
        if jobs is None:
            return reply(404, f"no service {name!r}")
        everything = request.query.get("all", "").lower() == "true"
        ended = [r for r in jobs.values() if r.status == "Succeeded" or (everything and r.finished)]
        return await self._forget(ended)

    async def _forget(self, records: list[JobRecord]) -> web.Response:
        """Jobs that have ended: their records (tombstones on the jobs topic) and their logs."""
        if records:
            try:
                await self.link.write([OutRecord(self.names.jobs, r.job.encode(), None) for r in records])
            except KafkaUnavailable:
                return unavailable()
        for record in records:
            self.jobs.apply(record.job.encode(), None)
            if record.logs is not None and self.store is not None:
                try:
                    await self.store.delete(record.logs.bucket or "", record.logs.key)
                except StorageError as err:
                    log.warning("the log of job %s could not be deleted: %s", record.job, err)
        return _empty(204)


def _page_start(page: str) -> int:
    return int(page) if page.isdigit() else 0


def _method(path: str, allowed: str) -> web.Response:
    return reply(405, f"{path} accepts {allowed} only", headers={"Allow": allowed})
