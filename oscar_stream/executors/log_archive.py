"""Keeping each job's log where every gateway replica can read it (OSCAR's ``GET /system/logs/<svc>/<job>``):
the S3 store of OSCAR's API, under ``logs/<service>/<job>.log`` of its bucket."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from oscar_stream.config import Settings
from oscar_stream.core.jobs import LogLocation
from oscar_stream.storage.base import StorageError
from oscar_stream.storage.s3 import S3Store

log = logging.getLogger(__name__)
MAX_LOG_BYTES = 8 * 1024 * 1024  # the tail is kept if a job writes more


def log_key(service: str, job: str) -> str:
    return f"logs/{service}/{job}.log"


class LogArchive:
    def __init__(self, store: S3Store, bucket: str) -> None:
        self.store = store
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: Settings) -> LogArchive | None:
        """An archive when OSCAR's API is on (there is nobody to read the logs otherwise)."""
        storage = settings.api_storage()
        if not settings.api.enabled or storage is None:
            return None
        return cls(S3Store(storage), settings.api.bucket)

    async def keep(self, service: str, job: str, text: bytes) -> LogLocation | None:
        """Store the log; a failure loses the copy (the job's result does not depend on it), and is logged."""
        key = log_key(service, job)
        try:
            await self.store.put_bytes(text[-MAX_LOG_BYTES:], self.bucket, key)
        except StorageError as err:
            log.warning("the log of job %s could not be kept: %s", job, err)
            return None
        return LogLocation(self.store.storage_id, self.bucket, key)

    async def keep_file(self, service: str, job: str, path: Path) -> LogLocation | None:
        try:
            return await self.keep(service, job, await asyncio.to_thread(path.read_bytes))
        except OSError as err:
            log.warning("the log of job %s could not be read: %s", job, err)
            return None
