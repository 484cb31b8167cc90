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
from oscar_stream.launch.output_report import OUTPUT_LINE, output_report, output_row
from oscar_stream.route.model import OutputSpec
from oscar_stream.storage.base import StorageError
from oscar_stream.storage.registry import Stores


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise UserFacingError(f"{name} is not set; this command runs inside a Job created by oscar-stream")
    return value


@click.group("job")
def job_group() -> None:
    """In-pod helper: stage the input in, the outputs out."""


@job_group.command("fetch")
@click.option("--input-dir", type=click.Path(path_type=Path), default=INPUT_DIR, show_default=True)
@click.option("--output-dir", type=click.Path(path_type=Path), default=OUTPUT_DIR, show_default=True)
@click.pass_context
@friendly_errors(StorageError)
def fetch(ctx: click.Context, input_dir: Path, output_dir: Path) -> None:
    """Download the invocation's input object into INPUT_DIR, and make OUTPUT_DIR for the script."""
    invocation = Invocation.from_json(_env("OSCAR_STREAM_INVOCATION").encode())
    output_dir.mkdir(parents=True, exist_ok=True)
    output_dir.chmod(0o777)  # the user's image may run its script as any user
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
    for obj in uploaded:
        click.echo(f"uploaded {obj.storage}/{obj.bucket or ''}/{obj.key} ({obj.size} bytes)")
        click.echo(OUTPUT_LINE + orjson.dumps(output_row(obj)).decode())
    report.write_text(output_report(uploaded))
