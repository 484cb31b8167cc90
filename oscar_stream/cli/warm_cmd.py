"""``oscar-stream warm-replica``: the dispatcher container of a warm service's pod (warm/dispatcher.py). It reads
the service and its address from OSCAR_STREAM_WARM_SERVICE, its token from OSCAR_STREAM_WARM_TOKEN and storage
credentials from the configuration file (OSCAR_STREAM_CONFIG)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import click
import orjson

from oscar_stream.cli.context import UserFacingError, friendly_errors, settings_from
from oscar_stream.launch.warm_objects import WARM_DIR
from oscar_stream.route.model import ServiceSpec
from oscar_stream.storage.registry import Stores
from oscar_stream.warm.dispatcher import Dispatcher


@click.command("warm-replica")
@click.option("--folder", type=click.Path(path_type=Path), default=WARM_DIR, show_default=True,
              help="the folder shared with the runner container")
@click.pass_context
@friendly_errors()
def warm_replica(ctx: click.Context, folder: Path) -> None:
    """In-pod dispatcher of a warm service: requests over HTTP, the script run by the runner container."""
    raw, token = os.environ.get("OSCAR_STREAM_WARM_SERVICE"), os.environ.get("OSCAR_STREAM_WARM_TOKEN")
    if not raw or not token:
        raise UserFacingError("OSCAR_STREAM_WARM_SERVICE and OSCAR_STREAM_WARM_TOKEN must be set; this command runs "
                              "inside a warm service's pod made by oscar-stream")
    settings = orjson.loads(raw)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    dispatcher = Dispatcher(ServiceSpec.from_record(settings["service"]), token,
                            Stores(settings_from(ctx).storages), folder)
    asyncio.run(dispatcher.serve(settings["host"], int(settings["port"])))
