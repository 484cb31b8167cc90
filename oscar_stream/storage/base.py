"""What the executors need from a storage system: fetch one object, store one file."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from oscar_stream.core.errors import OscarStreamError
from oscar_stream.core.results import StoredObject


class StorageError(OscarStreamError):
    """A download or upload failed; the message names the storage, the object and the cause."""


class ObjectStore(Protocol):
    storage_id: str

    async def download(self, bucket: str | None, key: str, dest: Path) -> int:
        """Write the object to ``dest``; return its size."""
        ...

    async def upload(self, source: Path, bucket: str | None, key: str) -> StoredObject: ...

    async def prepare(self) -> None:
        """Build the client now (no request is made): the first job must not pay for it."""
        ...

    async def close(self) -> None: ...
