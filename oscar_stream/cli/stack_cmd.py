"""``oscar-stream stack``: the local stack of real servers."""

from __future__ import annotations

import json
import sys

import click

from oscar_stream.cli.context import friendly_errors, settings_from
from oscar_stream.stack.process import StackError, log_tail
from oscar_stream.stack.stack import ALL_COMPONENTS, COMPONENTS, DEFAULT_COMPONENTS, Stack

_COMPONENT_HELP = f"components (default: {', '.join(DEFAULT_COMPONENTS)}; 'all' adds kubernetes)"


def _components(names: tuple[str, ...]) -> tuple[str, ...]:
    if not names:
        return DEFAULT_COMPONENTS
    if "all" in names:
        return ALL_COMPONENTS
    return names


@click.group("stack")
def stack_group() -> None:
    """Run the local stack: Kafka, versitygw (S3), Prometheus and, on request, Kubernetes."""


@stack_group.command("up")
@click.argument("components", nargs=-1, type=click.Choice([*COMPONENTS, "all"]))
@click.pass_context
@friendly_errors(StackError)
def up(ctx: click.Context, components: tuple[str, ...]) -> None:
    """Start COMPONENTS (building/downloading them once, cached). Idempotent."""
    stack = Stack(settings_from(ctx))
    stack.up(_components(components))
    _print_status(stack, as_json=False)


@stack_group.command("down")
@click.argument("components", nargs=-1, type=click.Choice([*COMPONENTS, "all"]))
@click.pass_context
@friendly_errors(StackError)
def down(ctx: click.Context, components: tuple[str, ...]) -> None:
    """Stop what 'up' started (all of it when no COMPONENTS are given)."""
    stopped = Stack(settings_from(ctx)).down(_components(components) if components else None)
    click.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@stack_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
@friendly_errors(StackError)
def status(ctx: click.Context, as_json: bool) -> None:
    """Show each component, its health and its log file. Exit 1 if a started component is unhealthy."""
    healthy = _print_status(Stack(settings_from(ctx)), as_json)
    sys.exit(0 if healthy else 1)


def _print_status(stack: Stack, as_json: bool) -> bool:
    rows = stack.status()
    if as_json:
        click.echo(json.dumps([
            {"component": r.name, "running": r.running, "detail": r.health.detail, "pids": r.pids, "log": r.log,
             "endpoints": r.health.endpoints} for r in rows
        ], indent=2))
    else:
        for r in rows:
            mark = "up  " if r.running else ("DOWN" if r.pids else "-   ")
            click.echo(f"{mark} {r.name:<11} {r.health.detail}")
            if r.pids and not r.running:
                click.echo(f"     log: {r.log}")
    return all(r.running for r in rows if r.pids)


@stack_group.command("logs")
@click.argument("component", type=click.Choice(list(COMPONENTS)))
@click.option("-n", "--lines", default=40, show_default=True)
@click.pass_context
@friendly_errors(StackError)
def logs(ctx: click.Context, component: str, lines: int) -> None:
    """Print the end of COMPONENT's log (and where the whole log is)."""
    path = Stack(settings_from(ctx)).log_path(component)
    click.echo(f"==> {path}")
    click.echo(log_tail(path, lines))
