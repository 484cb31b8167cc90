"""Storage id -> client, built from the configured storages and kept open for the life of a process."""

from __future__ import annotations

from collections.abc import Iterable

from oscar_stream.config import StorageSettings
from oscar_stream.storage.base import ObjectStore, StorageError
from oscar_stream.storage.s3 import S3Store
from oscar_stream.storage.webdav import WebDavStore


class Stores:
    def __init__(self, storages: Iterable[StorageSettings]) -> None:
        self._settings = {s.id: s for s in storages}
        self._open: dict[str, ObjectStore] = {}

    def get(self, storage_id: str) -> ObjectStore:
        if storage_id not in self._open:
            settings = self._settings.get(storage_id)
            if settings is None:
                raise StorageError(
                    f"no credentials for storage {storage_id!r}; add it under 'storages' in the configuration"
                )
            self._open[storage_id] = S3Store(settings) if settings.kind == "s3" else WebDavStore(settings)
        return self._open[storage_id]

    async def prepare(self) -> None:
        """A client for every configured storage, built before the first job needs one."""
        for storage_id in self._settings:
            await self.get(storage_id).prepare()

    async def close(self) -> None:
        for store in self._open.values():
            await store.close()
        self._open.clear()
