"""An object's bytes in and out of an S3 store with requests signed here (:mod:`sigv4`) and sent with aiohttp:
GET to a file or to memory, PUT of bytes. Transient failures (connection lost, timeouts, 429/5xx, SlowDown) are
tried again up to 5 times, as botocore's standard mode does; any other refusal is final and says what S3 said."""

from __future__ import annotations

import hashlib
import logging
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiohttp
import yarl

from oscar_stream.retry import RETRIABLE_HTTP, retrying
from oscar_stream.storage.sigv4 import EMPTY_SHA256, S3Signer, object_path

log = logging.getLogger(__name__)
T = TypeVar("T")
ATTEMPTS = 5
_CHUNK = 1 << 20
_RETRIABLE_CODES = frozenset({"SlowDown", "Throttling", "RequestTimeout", "InternalError", "ServiceUnavailable"})


class S3Refused(Exception):
    """The store answered with an error: its status, S3's error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code} ({status}): {message}" if message else f"{code} ({status})")
        self.status = status
        self.code = code

    @property
    def transient(self) -> bool:
        return self.status in RETRIABLE_HTTP or self.code in _RETRIABLE_CODES


def worth_retrying(err: BaseException) -> bool:
    if isinstance(err, S3Refused):
        return err.transient
    return isinstance(err, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError | TimeoutError)


def proxy_for(url: yarl.URL) -> str | None:
    """The proxy the environment gives for the store (``https_proxy``, ``no_proxy``, ...), read once: aiohttp's
    ``trust_env`` reads the environment and ``~/.netrc`` again on every request."""
    if urllib.request.proxy_bypass(url.host or ""):
        return None
    return urllib.request.getproxies().get(url.scheme)


async def _refusal(response: aiohttp.ClientResponse) -> S3Refused:
    text = await response.read()
    code, message = response.reason or "Error", ""
    try:
        root = ET.fromstring(text)
        code = root.findtext("Code") or code
        message = root.findtext("Message") or ""
    except ET.ParseError:
        message = text[:200].decode(errors="replace")
    return S3Refused(response.status, code, message)


class S3Objects:
    def __init__(self, endpoint: str, signer: S3Signer, verify_tls: bool, pool_size: int = 32) -> None:
        url = yarl.URL(endpoint)
        self._origin = str(url.origin())
        self._host = url.host_port_subcomponent or ""
        self._base_path = url.path
        self._signer = signer
        self._ssl = verify_tls  # True: the default context (certificates checked)
        self._pool_size = pool_size
        self._proxy = proxy_for(url)
        self._session: aiohttp.ClientSession | None = None

    def open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size, ssl=self._ssl),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=60),
                auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _request(self, method: str, bucket: str, key: str, payload_sha256: str
                 ) -> tuple[yarl.URL, dict[str, str]]:
        path = object_path(self._base_path, bucket, key)
        return (yarl.URL(self._origin + path, encoded=True),
                self._signer.headers(method, self._host, path, payload_sha256))

    async def _retried(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        return await retrying(operation, what=what, retryable=worth_retrying, attempts=ATTEMPTS, log=log)

    async def _get(self, bucket: str, key: str, take: Callable[[aiohttp.ClientResponse], Awaitable[T]]) -> T:
        async def once() -> T:
            url, headers = self._request("GET", bucket, key, EMPTY_SHA256)
            async with self.open().get(url, headers=headers, proxy=self._proxy) as response:
                if response.status != 200:
                    raise await _refusal(response)
                return await take(response)
        return await self._retried(once, f"GET s3://{bucket}/{key}")

    async def get_to_file(self, bucket: str, key: str, dest: Path) -> int:
        async def write(response: aiohttp.ClientResponse) -> int:
            size = 0
            with dest.open("wb") as out:  # truncated again if the GET is tried again
                # a chunk goes to the page cache in microseconds: a thread hop per chunk would cost more
                async for chunk in response.content.iter_chunked(_CHUNK):
                    out.write(chunk)
                    size += len(chunk)
            return size
        return await self._get(bucket, key, write)

    async def get(self, bucket: str, key: str) -> bytes:
        async def read(response: aiohttp.ClientResponse) -> bytes:
            return await response.read()
        return await self._get(bucket, key, read)

    async def put(self, bucket: str, key: str, data: bytes) -> tuple[str | None, str | None]:
        """Store ``data``; return the object's ETag and version id (None where the store gives none)."""
        digest = hashlib.sha256(data).hexdigest()

        async def once() -> tuple[str | None, str | None]:
            url, headers = self._request("PUT", bucket, key, digest)
            async with self.open().put(url, data=data, headers=headers, proxy=self._proxy) as response:
                if response.status != 200:
                    raise await _refusal(response)
                await response.read()
                return response.headers.get("ETag"), response.headers.get("x-amz-version-id")
        return await self._retried(once, f"PUT s3://{bucket}/{key}")
