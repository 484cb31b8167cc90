"""10,000 malformed or mutated notifications to the gateway and 2,000 straight into a raw topic: no crash, no
hang, every request answered with the right status, every record that Kafka took turned into events or
dead-letters — exactly as many as the pure normalize stage gives for the same bytes."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from oscar_stream.core.records import Origin
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.normalize.records import normalize_record
from oscar_stream.stack.process import free_port
from oscar_stream.topics import TopicNames
from tests.support import fuzz
from tests.support.faults import Worker, until
from tests.support.kafka_io import produce_records, read_all
from tests.support.processes import CliProcess
from tests.support.stack import write_config

pytestmark = pytest.mark.stack
GATEWAY_PAYLOADS, RAW_PAYLOADS = 10_000, 2_000


async def _post_all(url: str, token: str, bodies: Iterator[bytes]) -> tuple[Counter[int], list[bytes]]:
    """Every answer's status, and the bodies answered 200 (the others are not kept: some are over 1 MB)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    answers: Counter[int] = Counter()
    taken: list[bytes] = []
    async with aiohttp.ClientSession() as http:
        async def post(body: bytes) -> None:
            async with http.post(url, data=body, headers=headers) as response:
                await response.read()
                answers[response.status] += 1
                if response.status == 200:
                    taken.append(body)

        while chunk := list(itertools.islice(bodies, 32)):
            await asyncio.gather(*(post(b) for b in chunk))
    return answers, taken


async def test_fuzzed_notifications_are_answered_or_dead_lettered_never_dropped(
        config: dict[str, Any], tmp_path: Path, figures: dict[str, Any]) -> None:
    port = free_port()
    config["gateway"] = {"port": port}
    settings = write_config(config, tmp_path / "oscar-stream.yaml")
    await apply_topics(settings)
    names = TopicNames(settings.kafka.topic_prefix)
    raw_topic = names.raw("minio.default")
    gateway = CliProcess(tmp_path / "oscar-stream.yaml", "gateway", log=tmp_path / "gateway.log")
    worker = Worker(config, tmp_path, "w1", "--roles", "normalize")
    worker.start()
    try:
        await asyncio.to_thread(gateway.wait_http, f"http://127.0.0.1:{port}/readyz")
        await worker.wait_ready()
        token = settings.sources[0].token.get_secret_value()  # type: ignore[union-attr]
        answered, taken = await _post_all(f"http://127.0.0.1:{port}/webhook/minio.default", token,
                                          fuzz.payloads(GATEWAY_PAYLOADS, seed=13))
        rng = random.Random(31)
        direct = [(body, fuzz.headers(rng)) for body in fuzz.payloads(RAW_PAYLOADS, seed=29)]
        await produce_records(settings, raw_topic, [(None, body, headers) for body, headers in direct])

        expected = Counter[str]()
        sources = {s.id: s for s in settings.sources}
        for body, headers in [*((b, []) for b in taken), *direct]:
            out = normalize_record(names, sources, Origin(raw_topic, 0, 0), body, headers)
            expected["events"] += len(out.events)
            expected["dead-letters"] += len(out.dead)
            expected["ignored"] += int(out.ignored)

        async def all_handled() -> bool:
            return (len(await read_all(settings, names.events)) >= expected["events"]
                    and len(await read_all(settings, names.deadletter)) >= expected["dead-letters"])

        await until(all_handled, timeout_s=180, every_s=1.0, what="every record handled")
        await asyncio.sleep(2)  # anything beyond the expected would arrive meanwhile
        events, dead = await read_all(settings, names.events), await read_all(settings, names.deadletter)
        raw = await read_all(settings, raw_topic)
        recoveries = await worker.metric("oscar_stream_stage_recoveries_total", stage="normalize")
        ready = await worker.ready_status()
    finally:
        gateway.stop()
        worker.stop()
    figures.update({"gateway requests": sum(answered.values()), "answers": dict(sorted(answered.items())),
                    "raw records (gateway + direct)": len(raw), "direct raw records": len(direct),
                    "events": len(events), "dead-letters": len(dead), "ignored (test messages)": expected["ignored"],
                    "expected events": expected["events"], "expected dead-letters": expected["dead-letters"],
                    "stage restarts": recoveries})
    assert set(answered) <= {200, 400, 413, 415} and answered[200] > 0 and answered[413] > 0
    assert len(raw) == answered[200] + len(direct)  # nothing acknowledged is missing, nothing refused is there
    assert (len(events), len(dead)) == (expected["events"], expected["dead-letters"])
    assert recoveries == 0 and ready == 200
