"""``oscar-stream top``: a live terminal view for people without Grafana at hand."""

from __future__ import annotations

import asyncio
import contextlib

import click
from aiokafka.errors import KafkaError

from oscar_stream.cli.context import friendly_errors, settings_from
from oscar_stream.observe.top import Sample, snapshot


@click.command("top")
@click.option("--metrics", "urls", multiple=True,
              help="a /metrics URL to read (repeat for several workers; default: this configuration's worker)")
@click.option("--interval", default=2.0, show_default=True, help="seconds between refreshes")
@click.option("--once", is_flag=True, help="print two snapshots --interval apart and exit (for scripts)")
@click.pass_context
@friendly_errors(KafkaError)
def top(ctx: click.Context, urls: tuple[str, ...], interval: float, once: bool) -> None:
    """Throughput, consumer lag, active jobs per service and recent failures, refreshed live."""
    settings = settings_from(ctx)
    targets = list(urls) or [f"http://{settings.metrics.host}:{settings.metrics.port}/metrics"]

    async def loop() -> None:
        previous: Sample | None = None
        rounds = 0
        while True:
            previous, screen = await snapshot(settings, targets, previous)
            rounds += 1
            if once:
                if rounds == 2:
                    click.echo(screen)
                    return
            else:
                click.echo("\x1b[2J\x1b[H" + screen)
            await asyncio.sleep(interval)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(loop())
