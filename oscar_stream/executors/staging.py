"""Stage-in (download the input) and stage-out (upload the outputs), shared by the local executor and the
in-pod helper, so both honour the same contract."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from oscar_stream.core.events import StorageEvent
from oscar_stream.core.results import StoredObject
from oscar_stream.launch.contract import input_file_name
from oscar_stream.route.model import OutputSpec
from oscar_stream.storage.registry import Stores


async def download_input(event: StorageEvent, stores: Stores, input_dir: Path) -> Path:
    input_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240  # cheaper inline than a thread hop
    dest = input_dir / input_file_name(event)
    await stores.get(event.storage).download(event.bucket, event.key, dest)
    return dest


def files_under(top: str, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(relative name, path) of every file under ``top``, in name order, without following links to folders.
    os.scandir: pathlib's rglob cost a noticeable part of a short job. No folder (a script removed it): none."""
    try:
        with os.scandir(top) as scanned:
            entries = sorted(scanned, key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from files_under(entry.path, f"{prefix}{entry.name}/")
        elif entry.is_file():
            yield f"{prefix}{entry.name}", entry.path


async def upload_outputs(output_dir: Path, outputs: Sequence[OutputSpec], stores: Stores) -> list[StoredObject]:
    """Upload every file under ``output_dir`` to each output whose filters accept its name."""
    uploads = []
    # Listed inline: a script's output folder is small, and a thread hop per job cost more than the listing.
    for relative, path in files_under(str(output_dir)):
        for output in outputs:
            if output.accepts(relative.rpartition("/")[2]):
                bucket, key = output.object_path(relative)
                uploads.append(stores.get(output.storage).upload(Path(path), bucket, key))
    return list(await asyncio.gather(*uploads))
