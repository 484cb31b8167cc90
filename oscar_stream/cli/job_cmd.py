"""``oscar-stream job fetch | upload``: the in-pod helper (the oscar-stream image's init and main container).

It reads the invocation and the service's outputs from the environment (OSCAR_STREAM_INVOCATION,
OSCAR_STREAM_OUTPUTS) and storage credentials from the configuration file (OSCAR_STREAM_CONFIG).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click
import orjson

from oscar_stream.cli.context import UserFacingError, friendly_errors, settings_from
from oscar_stream.core.invocation import Invocation
from oscar_stream.core.results import StoredObject
from oscar_stream.executors.staging import download_input, upload_outputs
from oscar_stream.launch.job_spec import INPUT_DIR, OUTPUT_DIR
from oscar_stream.route.model import OutputSpec
from oscar_stream.storage.base import StorageError
from oscar_stream.storage.registry import Stores

REPORT_LIMIT = 4096  # Kubernetes keeps at most 4 KiB of a termination message


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise UserFacingError(f"{name} is not set; this command runs inside a Job created by oscar-stream")
    return value


def output_report(objects: list[StoredObject]) -> str:
    """Compact rows for the termination message; as many as fit in its size limit."""
    rows: list[list[object]] = []
    for o in objects:
        candidate: list[list[object]] = [*rows, [o.storage, o.bucket, o.key, o.size, o.etag, o.version_id]]
        if len(orjson.dumps(candidate)) > REPORT_LIMIT:
            break
        rows = candidate
    return orjson.dumps(rows).decode()


@click.group("job")
def job_group() -> None:
    """In-pod helper: stage the input in, the outputs out."""


@job_group.command("fetch")
@click.option("--input-dir", type=click.Path(path_type=Path), default=INPUT_DIR, show_default=True)
@click.pass_context
@friendly_errors(StorageError)
def fetch(ctx: click.Context, input_dir: Path) -> None:
    """Download the invocation's input object into INPUT_DIR."""
    invocation = Invocation.from_json(_env("OSCAR_STREAM_INVOCATION").encode())
    stores = Stores(settings_from(ctx).storages)

    async def run() -> Path:
        try:
            return await download_input(invocation.event, stores, input_dir)
        finally:
            await stores.close()

    click.echo(f"fetched {invocation.event.storage}/{invocation.event.path} -> {asyncio.run(run())}")


@job_group.command("upload")
@click.option("--output-dir", type=click.Path(path_type=Path), default=OUTPUT_DIR, show_default=True)
@click.option("--report", type=click.Path(path_type=Path), default=Path("/dev/termination-log"),
              show_default=True, help="where to write the uploaded objects (JSON rows)")
@click.pass_context
@friendly_errors(StorageError)
def upload(ctx: click.Context, output_dir: Path, report: Path) -> None:
    """Upload the files the script wrote to OUTPUT_DIR to the service's outputs."""
    outputs = [OutputSpec(storage=o["storage"], path=o["path"], prefixes=tuple(o.get("prefixes", ())),
                          suffixes=tuple(o.get("suffixes", ()))) for o in orjson.loads(_env("OSCAR_STREAM_OUTPUTS"))]
    stores = Stores(settings_from(ctx).storages)

    async def run() -> list[StoredObject]:
        try:
            return await upload_outputs(output_dir, outputs, stores)
        finally:
            await stores.close()

    uploaded = asyncio.run(run())
    report.write_text(output_report(uploaded))
    for obj in uploaded:
        click.echo(f"uploaded {obj.storage}/{obj.bucket or ''}/{obj.key} ({obj.size} bytes)")
