"""``/system/services``: OSCAR's service CRUD, on the same compacted services topic ``oscar-stream apply`` writes,
through the same validation; running workers pick changes up live."""

from __future__ import annotations

from dataclasses import replace

import orjson
from aiohttp import web

from oscar_stream.api.context import ApiContext, ensure_bucket
from oscar_stream.api.replies import empty, json_reply
from oscar_stream.api.service_json import InvalidService, describe_notes, service_from_json, service_to_json
from oscar_stream.core.ids import random_nonce
from oscar_stream.core.records import OutRecord
from oscar_stream.http_replies import read_body, reply, unavailable
from oscar_stream.kafka.link import KafkaUnavailable
from oscar_stream.route.model import ServiceSpec
from oscar_stream.storage.registry import Stores
from oscar_stream.storage.s3 import S3Store


class ServiceEndpoints:
    def __init__(self, api: ApiContext) -> None:
        self.api = api
        self.stores = Stores(api.settings.storages)

    async def close(self) -> None:
        await self.stores.close()

    async def list_services(self, request: web.BaseRequest) -> web.Response:
        table = self.api.services
        local = sorted((s for s in table.index.services() if table.is_local(s)), key=lambda s: s.name)
        return json_reply(200, [service_to_json(s, self.api.token(s), self.api.storage) for s in local])

    async def get(self, request: web.BaseRequest, name: str) -> web.Response:
        spec = self.api.local(name)
        if spec is None:
            return reply(404, f"no service {name!r}")
        return json_reply(200, service_to_json(spec, self.api.token(spec), self.api.storage))

    async def create(self, request: web.BaseRequest) -> web.Response:
        read = await self._read(request)
        if isinstance(read, web.Response):
            return read
        spec, notes = read
        if self.api.local(spec.name) is not None:
            return reply(409, "A service with the provided name already exists",
                         hint="update it with PUT /system/services, or delete it first")
        return await self._publish(replace(spec, token_nonce=random_nonce()), 201, notes)

    async def update(self, request: web.BaseRequest) -> web.Response:
        read = await self._read(request)
        if isinstance(read, web.Response):
            return read
        spec, notes = read
        existing = self.api.local(spec.name)
        if existing is None:
            return reply(404, f"no service {spec.name!r}", hint="create it with POST /system/services")
        return await self._publish(replace(spec, token_nonce=existing.token_nonce or random_nonce()), 204, notes)

    async def delete(self, request: web.BaseRequest, name: str) -> web.Response:
        if self.api.local(name) is None:
            return reply(404, f"no service {name!r}")
        try:
            await self.api.link.write([OutRecord(self.api.names.services, name.encode(), None)])
        except KafkaUnavailable:
            return unavailable()
        self.api.services.apply(name.encode(), None)
        return empty(204)

    async def _read(self, request: web.BaseRequest) -> tuple[ServiceSpec, dict[str, list[str]]] | web.Response:
        body = await read_body(request, self.api.body_limit)
        if isinstance(body, web.Response):
            return body
        try:
            spec, notes = service_from_json(orjson.loads(body or b"null"), self.api.settings.cluster_id)
        except orjson.JSONDecodeError as err:
            return reply(400, f"The service specification is not valid: not JSON: {err}")
        except InvalidService as err:
            return reply(400, "The service specification is not valid", problems=err.problems)
        return spec, describe_notes(notes)

    async def _publish(self, spec: ServiceSpec, status: int, notes: dict[str, list[str]]) -> web.Response:
        """The same path as ``oscar-stream apply``: the service's record on the services topic."""
        value = orjson.dumps(spec.to_record())
        try:
            await self.api.link.write([OutRecord(self.api.names.services, spec.name.encode(), value)])
        except KafkaUnavailable:
            return unavailable()
        self.api.services.apply(spec.name.encode(), value)  # this replica reads its own write at once
        places = {(i.storage, i.path.split("/")[0]) for i in spec.inputs}
        places |= {(o.storage, o.path.split("/")[0]) for o in spec.outputs}
        for storage, bucket in places:  # on S3 stores oscar-stream manages, the buckets the service needs
            store = self._managed_store(storage)
            if store is not None:
                await ensure_bucket(store, bucket)
        if status == 204 and not notes["warning"]:
            return empty(204)
        answer = {"name": spec.name, **{f"{level}s": texts for level, texts in notes.items()}}
        return json_reply(200 if status == 204 else status, answer)

    def _managed_store(self, storage: str) -> S3Store | None:
        settings = self.api.settings.storage(storage)
        if settings is None or settings.kind != "s3":
            return None
        store = self.stores.get(storage)
        return store if isinstance(store, S3Store) else None
