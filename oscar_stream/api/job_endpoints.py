"""``POST /job/<svc>`` and ``/system/logs``: invoking a service, the jobs of a
service with their status and times, and their logs — from the jobs topic and the API's S3 store, so any gateway
replica answers for jobs any worker ran."""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from typing import Any

from aiohttp import web

from oscar_stream.api.context import ApiContext
from oscar_stream.api.replies import empty, json_reply, unauthorized
from oscar_stream.api.tokens import same_token
from oscar_stream.core.errors import InvalidEvent, RecordTooLarge
from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.ids import created_object_id
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.jobs import JobRecord, job_name
from oscar_stream.core.records import OutRecord
from oscar_stream.core.times import now_rfc3339
from oscar_stream.http_replies import bearer, read_body, reply, unavailable
from oscar_stream.kafka.link import KafkaUnavailable
from oscar_stream.normalize.outcome import ParseError
from oscar_stream.normalize.s3_records import parse_s3_notification
from oscar_stream.storage.base import StorageError

log = logging.getLogger(__name__)
PAGE_SIZE = 70  # OSCAR's JOB_LISTING_LIMIT


class JobEndpoints:
    def __init__(self, api: ApiContext) -> None:
        self.api = api

    async def job(self, request: web.BaseRequest, name: str) -> web.Response:
        """201 once the invocations are on Kafka (acks=all), with the jobs' names in ``X-Oscar-Stream-Job``."""
        spec = self.api.local(name)
        offered = bearer(request)
        if spec is None or offered is None or not same_token(offered, self.api.token(spec)):
            return unauthorized("Bearer")
        body = await read_body(request, self.api.body_limit)
        if isinstance(body, web.Response):
            return body
        try:
            events = await self._events(name, body)
        except StorageError as err:
            return reply(503, f"the job's input could not be stored: {err}", headers={"Retry-After": "5"})
        invocations = [Invocation.of(spec.name, spec.version, event) for event in events]
        records = [OutRecord(self.api.names.invocations, i.id.encode(), i.to_json()) for i in invocations]
        try:
            await self.api.link.write(records)
        except RecordTooLarge as err:
            return reply(413, f"the job does not fit in a Kafka record ({err})")
        except KafkaUnavailable:
            return unavailable()
        return web.Response(status=201, headers={"X-Oscar-Stream-Job": ",".join(
            job_name(i.service, i.id) for i in invocations)})

    async def _events(self, service: str, body: bytes) -> list[StorageEvent]:
        """A storage notification as body: its objects. Anything else (base64 or not): the job's input file,
        kept in the API's bucket first, so that both executors fetch it as they fetch any object."""
        storage, store = self.api.storage, self.api.store
        if body.lstrip().startswith(b"{") and storage is not None:
            try:  # OSCAR's MinIO webhooks post here: MinIO's notifications, keys URL-encoded
                outcome = parse_s3_notification(body, storage.id, "url", now_rfc3339())
                if outcome.events:
                    return outcome.events
            except (ParseError, InvalidEvent):
                pass  # not a notification: a JSON payload
        if store is None:
            raise StorageError("no S3 storage is configured for OSCAR's API (api.storage)")
        try:
            payload = base64.b64decode(body, validate=True) if body.strip() else body
        except binascii.Error:
            payload = body
        stored = await store.put_bytes(payload, self.api.settings.api.bucket, f"jobs/{service}/{uuid.uuid4().hex}")
        now = now_rfc3339()
        return [StorageEvent(id=created_object_id(stored.storage, stored.bucket, stored.key, stored.version_id,
                                                  stored.etag, now), type=CREATED, time=now, storage=stored.storage,
                             kind="s3", bucket=stored.bucket, key=stored.key, action="s3:ObjectCreated:Put",
                             size=stored.size, etag=stored.etag, version_id=stored.version_id, received_at=now)]

    def _service_jobs(self, name: str) -> dict[str, JobRecord] | None:
        return self.api.jobs.jobs(name) if self.api.local(name) is not None else None

    async def list_jobs(self, request: web.BaseRequest, name: str) -> web.Response:
        jobs = self._service_jobs(name)
        if jobs is None:
            return reply(404, f"no service {name!r}")
        ordered = sorted(jobs.values(), key=lambda r: (r.creation_time, r.job), reverse=True)
        page = request.query.get("page", "")
        start = int(page) if page.isdigit() else 0
        answer: dict[str, Any] = {"jobs": {r.job: r.oscar_info() for r in ordered[start:start + PAGE_SIZE]}}
        if start + PAGE_SIZE < len(ordered):
            answer["next_page"] = str(start + PAGE_SIZE)
            answer["remaining_jobs"] = len(ordered) - start - PAGE_SIZE
        return json_reply(200, answer)

    async def log(self, request: web.BaseRequest, name: str, job: str) -> web.Response:
        record = (self._service_jobs(name) or {}).get(job)
        if record is None:
            return reply(404, f"no job {job!r} of service {name!r}")
        if record.logs is None or self.api.store is None:
            why = "the job has not ended yet" if not record.finished else "no log was kept for this job"
            return reply(404, f"no log of job {job!r}: {why}")
        text = await self.api.store.get_bytes(record.logs.bucket or "", record.logs.key)
        if text is None:
            return reply(404, f"the log of job {job!r} is gone from the store")
        return web.Response(body=text, content_type="text/plain", charset="utf-8")

    async def delete(self, request: web.BaseRequest, name: str, job: str) -> web.Response:
        record = (self._service_jobs(name) or {}).get(job)
        if record is None:
            return reply(404, f"no job {job!r} of service {name!r}")
        if not record.finished:
            return reply(409, f"job {job!r} has not ended yet; delete it once it has")
        return await self._forget([record])

    async def delete_all(self, request: web.BaseRequest, name: str) -> web.Response:
        """OSCAR's semantics: the succeeded jobs; with ``?all=true`` every job that has ended."""
        jobs = self._service_jobs(name)
        if jobs is None:
            return reply(404, f"no service {name!r}")
        everything = request.query.get("all", "").lower() == "true"
        return await self._forget([r for r in jobs.values() if r.status == "Succeeded" or (everything and r.finished)])

    async def _forget(self, records: list[JobRecord]) -> web.Response:
        """Jobs that have ended: their records (tombstones on the jobs topic) and their logs."""
        if records:
            try:
                await self.api.link.write([OutRecord(self.api.names.jobs, r.job.encode(), None) for r in records])
            except KafkaUnavailable:
                return unavailable()
        for record in records:
            self.api.jobs.apply(record.job.encode(), None)
            if record.logs is not None and self.api.store is not None:
                try:
                    await self.api.store.delete(record.logs.bucket or "", record.logs.key)
                except StorageError as err:
                    log.warning("the log of job %s could not be deleted: %s", record.job, err)
        return empty(204)
