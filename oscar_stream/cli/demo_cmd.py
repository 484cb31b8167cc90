"""``oscar-stream demo``: the whole product on the local stack in a few minutes."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Literal

import click
from aiokafka.errors import KafkaError

from oscar_stream.cli.context import friendly_errors, quiet_kafka_client, settings_from
from oscar_stream.config import load_settings
from oscar_stream.demo.runner import Demo, DemoFailed, demo_config_file, format_summary
from oscar_stream.stack.process import StackError
from oscar_stream.storage.base import StorageError


@click.command("demo")
@click.option("--files", default=20, show_default=True, help="how many CSV files to upload")
@click.option("--keep", is_flag=True, help="leave the local stack running afterwards")
@click.option("--timeout", default=600, show_default=True, help="seconds to wait for the pipeline")
@click.option("--executor", type=click.Choice(["local", "kubernetes"]), default="local", show_default=True,
              help="run the jobs as local processes, or as Kubernetes Jobs on the local stack's real node")
@click.pass_context
@friendly_errors(DemoFailed, StackError, KafkaError, StorageError)
def demo(ctx: click.Context, files: int, keep: bool, timeout: int, executor: Literal["local", "kubernetes"]) -> None:
    """Upload generated CSV files and watch them run through a two-stage pipeline (OSCAR FDL): per-file
    statistics, then per-file reports; finally check every report and print a summary."""
    settings = settings_from(ctx)
    quiet_kafka_client()
    started = time.monotonic()

    def say(message: str) -> None:
        click.echo(f"[demo {time.monotonic() - started:6.1f}s] {message}")

    summary = asyncio.run(Demo(settings, files, keep, timeout, say, executor).run())
    click.echo(format_summary(summary, load_settings(demo_config_file(settings)), kept=keep))
    sys.exit(0 if summary.ok else 1)
