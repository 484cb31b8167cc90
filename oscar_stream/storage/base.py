"""What the executors need from a storage system: fetch one object, store one file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class StorageError(Exception):
    """A download or upload failed; the message names the storage, the object and the cause."""


@dataclass(frozen=True)
class StoredObject:
    storage: str
    bucket: str | None
    key: str
    size: int
    etag: str | None
    version_id: str | None = None


class ObjectStore(Protocol):
    storage_id: str

    async def download(self, bucket: str | None, key: str, dest: Path) -> int:
        """Write the object to ``dest``; return its size."""
        ...

    async def upload(self, source: Path, bucket: str | None, key: str) -> StoredObject: ...

    async def close(self) -> None: ...
