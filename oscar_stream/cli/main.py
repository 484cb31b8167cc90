"""Entry point: ``oscar-stream [--config FILE] COMMAND``."""

from __future__ import annotations

from pathlib import Path

import click

from oscar_stream import __version__
from oscar_stream.cli.demo_cmd import demo
from oscar_stream.cli.events_cmd import events_group
from oscar_stream.cli.ingest_cmd import dcache_watch, gateway
from oscar_stream.cli.job_cmd import job_group
from oscar_stream.cli.pipeline_cmd import apply, route, services_group, validate
from oscar_stream.cli.stack_cmd import stack_group
from oscar_stream.cli.top_cmd import top
from oscar_stream.cli.topics_cmd import topics_group
from oscar_stream.cli.warm_cmd import warm_replica
from oscar_stream.cli.worker_cmd import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", type=click.Path(path_type=Path), envvar="OSCAR_STREAM_CONFIG",
              help="YAML configuration file (env: OSCAR_STREAM_CONFIG)")
@click.version_option(__version__, prog_name="oscar-stream")
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """oscar-stream: storage events -> Kafka -> Kubernetes Jobs, for scientific pipelines."""
    ctx.ensure_object(dict)["config"] = config


for command in (stack_group, topics_group, events_group, validate, apply, services_group, route, worker, gateway,
                dcache_watch, job_group, warm_replica, demo, top):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="oscar-stream")
