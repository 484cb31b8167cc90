"""S3-compatible stores (MinIO, AWS, versitygw, ...). An object's bytes go in and out through requests signed
here (:mod:`s3_objects`) when the store has keys; everything else, and any store without keys (botocore's chain
of credentials), goes through aiobotocore. One client of each per store, reused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from oscar_stream.config import StorageSettings
from oscar_stream.core.ids import normalize_etag
from oscar_stream.core.results import StoredObject
from oscar_stream.storage.base import StorageError
from oscar_stream.storage.s3_objects import S3Objects, S3Refused
from oscar_stream.storage.sigv4 import S3Signer, plain_path

_CHUNK = 1 << 20
_FAILURES = (ClientError, BotoCoreError, S3Refused, aiohttp.ClientError, TimeoutError)
_MISSING = ("NoSuchKey", "404", "NoSuchBucket")


class S3Store:
    def __init__(self, settings: StorageSettings) -> None:
        self.storage_id = settings.id
        self._settings = settings
        self._client: Any = None
        self._context: Any = None
        secret = settings.secret_key.get_secret_value() if settings.secret_key else None
        self._objects = S3Objects(settings.endpoint, S3Signer(settings.access_key, secret, settings.region),
                                  settings.verify_tls) if settings.access_key and secret else None

    def _signed(self, key: str) -> S3Objects | None:
        """The signed-request client, for a key whose path no URL normalization changes."""
        return self._objects if self._objects is not None and plain_path(key) else None

    async def _s3(self) -> Any:
        if self._client is None:
            s = self._settings
            self._context = get_session().create_client(
                "s3",
                endpoint_url=s.endpoint,
                region_name=s.region,
                aws_access_key_id=s.access_key,
                aws_secret_access_key=s.secret_key.get_secret_value() if s.secret_key else None,
                verify=s.verify_tls,
                config=AioConfig(
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": 5, "mode": "standard"},
                    max_pool_connections=32,
                ),
            )
            self._client = await self._context.__aenter__()
        return self._client

    async def prepare(self) -> None:
        await self._s3()  # botocore loads the service's model and endpoint rules: ~0.1 s of CPU
        if self._objects is not None:
            self._objects.open()

    async def download(self, bucket: str | None, key: str, dest: Path) -> int:
        if not bucket:
            raise StorageError(f"{self.storage_id}: an S3 object needs a bucket (key {key!r})")
        try:
            if signed := self._signed(key):
                return await signed.get_to_file(bucket, key, dest)
            response = await (await self._s3()).get_object(Bucket=bucket, Key=key)
            size = 0
            async with response["Body"] as body:
                with dest.open("wb") as out:
                    # a chunk goes to the page cache in microseconds: a thread hop per chunk would cost more
                    while chunk := await body.read(_CHUNK):
                        out.write(chunk)
                        size += len(chunk)
            return size
        except _FAILURES as err:
            raise StorageError(f"{self.storage_id}: download of s3://{bucket}/{key} failed: {err}") from err

    async def upload(self, source: Path, bucket: str | None, key: str) -> StoredObject:
        if not bucket:
            raise StorageError(f"{self.storage_id}: an S3 upload needs a bucket (key {key!r})")
        size = source.stat().st_size  # noqa: ASYNC240  # one stat: cheaper inline than a thread hop
        try:
            if size <= _CHUNK:
                data = source.read_bytes()  # noqa: ASYNC240  # from the page cache: cheaper than a thread hop
                return await self.put_bytes(data, bucket, key)
            with source.open("rb") as body:
                response = await (await self._s3()).put_object(Bucket=bucket, Key=key, Body=body)
        except (*_FAILURES, OSError) as err:
            raise StorageError(f"{self.storage_id}: upload to s3://{bucket}/{key} failed: {err}") from err
        return StoredObject(self.storage_id, bucket, key, size, normalize_etag(response.get("ETag")),
                            response.get("VersionId"))

    async def put_bytes(self, data: bytes, bucket: str, key: str) -> StoredObject:
        try:
            if signed := self._signed(key):
                etag, version = await signed.put(bucket, key, data)
            else:
                response = await (await self._s3()).put_object(Bucket=bucket, Key=key, Body=data)
                etag, version = response.get("ETag"), response.get("VersionId")
        except _FAILURES as err:
            raise StorageError(f"{self.storage_id}: upload to s3://{bucket}/{key} failed: {err}") from err
        return StoredObject(self.storage_id, bucket, key, len(data), normalize_etag(etag), version)

    async def get_bytes(self, bucket: str, key: str) -> bytes | None:
        """The object's content, or None if there is no such object."""
        try:
            if signed := self._signed(key):
                return await signed.get(bucket, key)
            response = await (await self._s3()).get_object(Bucket=bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
                return data
        except S3Refused as err:
            if err.code in _MISSING:
                return None
            raise StorageError(f"{self.storage_id}: download of s3://{bucket}/{key} failed: {err}") from err
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise StorageError(f"{self.storage_id}: download of s3://{bucket}/{key} failed: {err}") from err
        except _FAILURES as err:
            raise StorageError(f"{self.storage_id}: download of s3://{bucket}/{key} failed: {err}") from err

    async def delete(self, bucket: str, key: str) -> None:
        try:
            await (await self._s3()).delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as err:
            raise StorageError(f"{self.storage_id}: deleting s3://{bucket}/{key} failed: {err}") from err

    async def ensure_bucket(self, bucket: str) -> None:
        client = await self._s3()
        try:
            await client.head_bucket(Bucket=bucket)
        except ClientError:
            try:
                await client.create_bucket(Bucket=bucket)
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise StorageError(f"{self.storage_id}: cannot create bucket {bucket}: {err}") from err

    async def close(self) -> None:
        if self._objects is not None:
            await self._objects.close()
        if self._context is not None:
            await self._context.__aexit__(None, None, None)
            self._client = self._context = None
