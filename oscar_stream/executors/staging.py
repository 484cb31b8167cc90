"""Stage-in (download the input) and stage-out (upload the outputs), shared by the local executor and the
in-pod helper, so both honour the same contract."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
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


def _output_files(output_dir: Path) -> list[Path]:
    return sorted(p for p in output_dir.rglob("*") if p.is_file())


async def upload_outputs(output_dir: Path, outputs: Sequence[OutputSpec], stores: Stores) -> list[StoredObject]:
    """Upload every file under ``output_dir`` to each output whose filters accept its name."""
    files = await asyncio.to_thread(_output_files, output_dir)
    uploads = []
    for file in files:
        relative = file.relative_to(output_dir).as_posix()
        for output in outputs:
            if output.accepts(file.name):
                bucket, key = output.object_path(relative)
                uploads.append(stores.get(output.storage).upload(file, bucket, key))
    return list(await asyncio.gather(*uploads))
