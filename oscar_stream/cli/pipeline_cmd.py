"""``validate``, ``apply``, ``services`` and ``route``: routing tables from files to the running system."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click
from aiokafka.errors import KafkaError

from oscar_stream.cli.context import friendly_errors, settings_from
from oscar_stream.cli.events_cmd import SOURCE_KINDS, parse_payload_file
from oscar_stream.route.files import LoadedTable, load_routing_files
from oscar_stream.route.index import RoutingIndex
from oscar_stream.route.problems import RoutingFileError
from oscar_stream.worker.publish import AmbiguousServices, apply_services, current_services, delete_service

_FILES = click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))


def _load(files: tuple[Path, ...]) -> LoadedTable:
    loaded = load_routing_files(files)
    for note in loaded.notes:
        click.echo(f"{note.level}: {note}", err=True)
    return loaded


@click.command("validate")
@_FILES
@friendly_errors(RoutingFileError)
def validate(files: tuple[Path, ...]) -> None:
    """Check routing files (OSCAR FDL or oscar-stream YAML); report every problem at once."""
    loaded = _load(files)
    for service in loaded.table.services:
        where = loaded.origins[service.qualified]
        click.echo(f"ok  {service.qualified:<32} {service.image}  ({where[0]}:{where[1]}, "
                   f"{len(service.inputs)} input(s), {len(service.outputs)} output(s))")


@click.command("apply")
@_FILES
@click.pass_context
@friendly_errors(RoutingFileError, KafkaError, AmbiguousServices)
def apply(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Validate FILES, then publish their services; running workers pick them up without a restart."""
    loaded = _load(files)
    for name, action in asyncio.run(apply_services(settings_from(ctx), loaded.table.services)):
        click.echo(f"{action:<9} {name}")


@click.group("services")
def services_group() -> None:
    """Services currently published (the live routing table)."""


@services_group.command("list")
@click.pass_context
@friendly_errors(KafkaError)
def services_list(ctx: click.Context) -> None:
    services = asyncio.run(current_services(settings_from(ctx)))
    if not services:
        click.echo("no services (publish some with: oscar-stream apply FILE...)")
    for name in sorted(services):
        s = services[name]
        inputs = ", ".join(f"{i.storage}:{i.path}" for i in s.inputs) or "-"
        click.echo(f"{name:<24} cluster={s.cluster or '-':<12} version={s.version[:8]}  inputs: {inputs}")


@services_group.command("get")
@click.argument("name")
@click.pass_context
@friendly_errors(KafkaError)
def services_get(ctx: click.Context, name: str) -> None:
    """Print one service as JSON (secret values are masked)."""
    service = asyncio.run(current_services(settings_from(ctx))).get(name)
    if service is None:
        click.echo(f"error: no service {name!r}", err=True)
        sys.exit(1)
    click.echo(json.dumps(service.redacted(), indent=2))


@services_group.command("delete")
@click.argument("name")
@click.pass_context
@friendly_errors(KafkaError)
def services_delete(ctx: click.Context, name: str) -> None:
    if not asyncio.run(delete_service(settings_from(ctx), name)):
        click.echo(f"error: no service {name!r}", err=True)
        sys.exit(1)
    click.echo(f"deleted {name}")


@click.command("route")
@click.option("--config", "configs", multiple=True, required=True, type=click.Path(path_type=Path),
              help="routing file (FDL or oscar-stream YAML); repeat for several")
@click.argument("event_file", type=click.Path(exists=True, path_type=Path))
@click.option("--source", "kind", type=click.Choice(SOURCE_KINDS), default="minio", show_default=True)
@click.option("--storage", default=None, help="storage id of the source (default: minio.default, or "
                                               "webdav.dcache for dcache)")
@click.option("--dcache-path", default=None, help="the folder the dCache subscription watches")
@friendly_errors(RoutingFileError)
def route(configs: tuple[Path, ...], event_file: Path, kind: str, storage: str | None,
          dcache_path: str | None) -> None:
    """Dry run: the services each event of EVENT_FILE triggers, with invocation ids (JSON lines)."""
    index = RoutingIndex(_load(configs).table.services)
    events, failures = parse_payload_file(event_file, kind, storage, dcache_path)
    for event in events:
        invocations = index.route(event)
        click.echo(json.dumps({
            "event_id": event.id, "storage": event.storage, "path": event.path, "type": event.type,
            "services": [i.service for i in invocations],
            "invocations": [{"service": i.service, "id": i.id} for i in invocations],
        }, ensure_ascii=False))
    for failure in failures:
        click.echo(f"dead-letter: {failure}", err=True)
    sys.exit(1 if failures and not events else 0)
