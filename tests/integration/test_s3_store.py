"""The S3 store against versitygw: objects written with the store's own signed requests read back with botocore
and the other way round (keys with every kind of character), what a refusal says, and a store that is away for
a moment (its connections cut) being tried again."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiobotocore.session import get_session
from pydantic import SecretStr

from oscar_stream.config import Settings, StorageSettings
from oscar_stream.storage.base import StorageError
from oscar_stream.storage.s3 import S3Store
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.stack

KEYS = ["plain.csv", "in/sample 1.dat", "ünïcødé/文件.txt", "odd/+&=?#%;,@$!'()*[]{}^`|<>.bin", "a~b/c-d_e.f",
        "deep/" * 20 + "leaf", "tricky/a//b", "tricky/./dot", "tricky/../up"]


async def _botocore(storage: StorageSettings):  # type: ignore[no-untyped-def]
    secret = storage.secret_key.get_secret_value() if storage.secret_key else None
    return get_session().create_client("s3", endpoint_url=storage.endpoint, region_name=storage.region,
                                       aws_access_key_id=storage.access_key, aws_secret_access_key=secret)


async def test_objects_round_trip_with_botocore_for_every_kind_of_key(settings: Settings, tmp_path: Path) -> None:
    storage = settings.storages[0]
    store = S3Store(storage)
    bucket = f"sig-{uuid.uuid4().hex[:8]}"
    await store.ensure_bucket(bucket)
    try:
        async with await _botocore(storage) as s3:
            for n, key in enumerate(KEYS):
                body = f"{n}: {key}".encode() * 50
                stored = await store.put_bytes(body, bucket, key)
                assert stored.size == len(body) and stored.etag
                answer = await s3.get_object(Bucket=bucket, Key=key)
                async with answer["Body"] as got:
                    assert await got.read() == body, key
                await s3.put_object(Bucket=bucket, Key=key, Body=body[::-1])
                assert await store.get_bytes(bucket, key) == body[::-1], key
                dest = tmp_path / f"{n}.dat"
                assert await store.download(bucket, key, dest) == len(body)
                assert dest.read_bytes() == body[::-1]
            big = tmp_path / "big.dat"
            big.write_bytes(uuid.uuid4().bytes * 100_000)  # 1.6 MB: botocore's streamed PUT
            await store.upload(big, bucket, "big.dat")
            assert await store.download(bucket, "big.dat", tmp_path / "big-back.dat") == big.stat().st_size
            assert (tmp_path / "big-back.dat").read_bytes() == big.read_bytes()
    finally:
        await store.close()


async def test_refusals_say_what_the_store_said(settings: Settings, tmp_path: Path) -> None:
    storage = settings.storages[0]
    store = S3Store(storage)
    wrong = S3Store(storage.model_copy(update={"secret_key": SecretStr("not-the-secret")}))
    bucket = f"sig-{uuid.uuid4().hex[:8]}"
    await store.ensure_bucket(bucket)
    try:
        assert await store.get_bytes(bucket, "never-written") is None
        assert await store.get_bytes(f"{bucket}-none", "k") is None
        with pytest.raises(StorageError, match=rf"download of s3://{bucket}/never-written failed: NoSuchKey \(404\)"):
            await store.download(bucket, "never-written", tmp_path / "x")
        with pytest.raises(StorageError, match=r"upload to s3://.*/k failed: SignatureDoesNotMatch \(403\)"):
            await wrong.put_bytes(b"x", bucket, "k")
    finally:
        await store.close()
        await wrong.close()


async def test_a_store_cut_off_for_a_moment_is_tried_again(settings: Settings) -> None:
    storage = settings.storages[0]
    host, port = storage.endpoint.removeprefix("http://").rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    store = S3Store(storage.model_copy(update={"endpoint": f"http://127.0.0.1:{proxy.port}"}))
    bucket = f"sig-{uuid.uuid4().hex[:8]}"
    try:
        await store.ensure_bucket(bucket)
        await store.put_bytes(b"before", bucket, "k")  # a pooled connection that the cut will break
        await proxy.cut()
        put = asyncio.create_task(store.put_bytes(b"during", bucket, "k"))
        await asyncio.sleep(0.5)
        assert not put.done()
        proxy.restore()
        stored = await asyncio.wait_for(put, 30)
        assert stored.size == len(b"during")
        assert await store.get_bytes(bucket, "k") == b"during"
        await proxy.cut()
        with pytest.raises(StorageError, match=r"upload to s3://.*/k failed"):
            await store.put_bytes(b"never", bucket, "k")  # five tries, then a clear error
    finally:
        await store.close()
        await proxy.stop()
