"""``oscar-stream worker``: run the stream agents."""

from __future__ import annotations

import click
import faust

from oscar_stream.cli.context import friendly_errors, settings_from
from oscar_stream.worker.app import ROLES, build_worker
from oscar_stream.worker.child_watcher import wait_for_children_on_the_loop


@click.command("worker")
@click.option("--roles", default=",".join(ROLES), show_default=True,
              help="comma-separated agents to run: normalize, route, launch")
@click.option("--executor", type=click.Choice(["local", "kubernetes"]), default=None,
              help="where jobs run (default: worker.executor in the configuration)")
@click.option("--loglevel", default="info", show_default=True)
@click.pass_context
@friendly_errors(ValueError)
def worker(ctx: click.Context, roles: str, executor: str | None, loglevel: str) -> None:
    """Run the normalize, route and launch agents until stopped (SIGTERM / Ctrl-C)."""
    settings = settings_from(ctx)
    if executor:
        settings.worker.executor = executor  # type: ignore[assignment]
    chosen = [r.strip() for r in roles.split(",") if r.strip()]
    built = build_worker(settings, chosen)
    wait_for_children_on_the_loop()
    faust.Worker(built.app, loglevel=loglevel, quiet=True).execute_from_commandline()
