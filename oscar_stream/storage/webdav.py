"""WebDAV doors (dCache): inputs are read with GET, outputs written with PUT (parent folders made with MKCOL)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

import aiohttp

from oscar_stream.config import StorageSettings
from oscar_stream.core.ids import normalize_etag
from oscar_stream.core.results import StoredObject
from oscar_stream.storage.base import StorageError

_CHUNK = 1 << 20


class WebDavStore:
    def __init__(self, settings: StorageSettings) -> None:
        self.storage_id = settings.id
        self._base = settings.endpoint.rstrip("/")
        password = settings.password.get_secret_value() if settings.password else ""
        self._headers = {"Authorization": aiohttp.encode_basic_auth(settings.username, password)} if (
            settings.username) else {}
        self._ssl = settings.verify_tls
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers,
                                                  timeout=aiohttp.ClientTimeout(total=None, sock_read=300))
        return self._session

    async def prepare(self) -> None:
        self._http()

    def _url(self, key: str) -> str:
        return f"{self._base}{quote('/' + key.lstrip('/'))}"

    async def download(self, bucket: str | None, key: str, dest: Path) -> int:
        size = 0
        try:
            async with self._http().get(self._url(key), ssl=self._ssl) as response:
                if response.status != 200:
                    raise StorageError(f"{self.storage_id}: GET {key} answered {response.status}")
                with dest.open("wb") as out:
                    async for chunk in response.content.iter_chunked(_CHUNK):
                        await asyncio.to_thread(out.write, chunk)
                        size += len(chunk)
        except aiohttp.ClientError as err:
            raise StorageError(f"{self.storage_id}: GET {key} failed: {err}") from err
        return size

    async def _mkcol_parents(self, key: str) -> None:
        parts = [p for p in key.split("/") if p][:-1]
        for depth in range(1, len(parts) + 1):
            async with self._http().request("MKCOL", self._url("/".join(parts[:depth])) + "/",
                                            ssl=self._ssl) as response:
                if response.status not in (201, 405, 301):  # 405: it exists already
                    raise StorageError(f"{self.storage_id}: MKCOL {'/'.join(parts[:depth])} answered "
                                       f"{response.status}")

    async def upload(self, source: Path, bucket: str | None, key: str) -> StoredObject:
        try:
            await self._mkcol_parents(key)
            with source.open("rb") as body:
                async with self._http().put(self._url(key), data=body, ssl=self._ssl) as response:
                    if response.status not in (200, 201, 204):
                        raise StorageError(f"{self.storage_id}: PUT {key} answered {response.status}")
                    etag = normalize_etag(response.headers.get("ETag"))
        except aiohttp.ClientError as err:
            raise StorageError(f"{self.storage_id}: PUT {key} failed: {err}") from err
        size = (await asyncio.to_thread(source.stat)).st_size
        return StoredObject(self.storage_id, None, "/" + key.lstrip("/"), size, etag)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
