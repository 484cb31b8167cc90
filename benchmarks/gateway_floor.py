"""The webhook gateway against its floor, with the same wrk command in the same run:

* floor: a minimal aiohttp handler (uvloop, one process, like the gateway) that writes the request's body to
  Kafka with acks=all and idempotence and answers 200 after the acknowledgement;
* ``oscar-stream gateway``: token check, size caps, the same write (shared batches), metrics;
* two ``oscar-stream gateway`` processes (two ports, wrk's 64 connections split between them): does a second
  process add throughput on this machine?

Only the gateways run (no worker): requests/s are wrk's answered requests (all 2xx) over its duration.

    .venv/bin/python -m benchmarks.gateway_floor [--seconds 8] [--repeats 5]

The floor's own rate moves by a fifth between repeats (its batches grow when the broker is slower), so a run's
verdict is the median of its repeats' ratios, each repeat running the three scenarios back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from benchmarks.common import Process, bench_settings, plot_runs, write_results, wrk_posts
from benchmarks.ingest_throughput import notification
from oscar_stream.cli.context import quiet_kafka_client
from oscar_stream.config import load_settings
from oscar_stream.kafka.clients import reliable_producer
from oscar_stream.kafka.topics_admin import apply_topics
from oscar_stream.observe.cpu import machine_busy_seconds, process_cpu_seconds
from oscar_stream.stack.process import ProcessRecord, free_port, spawn, terminate, wait_until
from oscar_stream.stack.stack import DEFAULT_COMPONENTS, Stack
from oscar_stream.topics import TopicNames
from tests.support.stack import ISSUED_PREFIXES, delete_topics_of, ensure_stack

FLOOR, ONE, TWO = "floor (aiohttp + send_and_wait)", "oscar-stream gateway", "two gateway processes"


def serve_floor(config: Path, port: int) -> None:
    """The floor's process: ``python -m benchmarks.gateway_floor --serve-floor CONFIG PORT``."""
    import uvloop

    settings = load_settings(config)
    topic = TopicNames(settings.kafka.topic_prefix).raw(settings.sources[0].id)

    async def main() -> None:
        producer = reliable_producer(settings.kafka)
        await producer.start()

        async def post(request: web.Request) -> web.Response:
            await producer.send_and_wait(topic, await request.read())
            return web.Response(text="ok")

        async def ready(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/webhook/{source}", post)
        app.router.add_get("/readyz", ready)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    uvloop.run(main())


async def _posts(urls: list[str], token: str, seconds: float, work: Path) -> int:
    body = notification(0).replace(b"frame-0000000", b"frame-FRAMEID")
    folders = [work / f"wrk-{n}" for n in range(len(urls))]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    answered = await asyncio.gather(*(wrk_posts(url, body, f"Bearer {token}", seconds, folder, connections=64 //
                                                len(urls)) for url, folder in zip(urls, folders, strict=True)))
    return sum(answered)


def _cpu(pids: dict[str, list[int]]) -> dict[str, float]:
    return {"machine": machine_busy_seconds(), **{part: sum(map(process_cpu_seconds, ps)) for part, ps in pids.items()}}


async def _rate(stack: Stack, work: Path, scenario: str, seconds: float) -> tuple[float, dict[str, float]]:
    """Requests/s, and the CPU each answered request cost (µs): the machine, the server processes, the broker."""
    ports = [free_port() for _ in range(2 if scenario == TWO else 1)]
    settings, config = bench_settings(stack, work, gateway={"port": ports[0]})
    await apply_topics(settings)
    processes: list[Process | ProcessRecord] = []
    try:
        for n, port in enumerate(ports):
            if scenario == FLOOR:
                record = spawn("floor", [sys.executable, "-m", "benchmarks.gateway_floor", "--serve-floor",
                                         str(config), str(port)], work / "floor.log")
                processes.append(record)
                wait_until(record, functools.partial(_answers, port), 30, "the floor's /readyz")
            else:
                own = config if n == 0 else _with_port(config, port, work / f"gateway-{n}.yaml")
                gateway = Process(own, "gateway", log=work / f"gateway-{n}.log")
                processes.append(gateway)
                await asyncio.to_thread(gateway.wait_http, f"http://127.0.0.1:{port}/readyz")
        token = settings.sources[0].token.get_secret_value()  # type: ignore[union-attr]
        pids = {"servers": [p.proc.pid if isinstance(p, Process) else p.pid for p in processes],
                "broker": next(c.pids for c in stack.status() if c.name == "kafka")}
        before = _cpu(pids)
        answered = await _posts([f"http://127.0.0.1:{p}/webhook/minio.default" for p in ports], token, seconds, work)
        after = _cpu(pids)
        return answered / seconds, {part: (after[part] - before[part]) / answered * 1e6 for part in before}
    finally:
        for process in processes:
            if isinstance(process, Process):
                process.stop()
            else:
                terminate(process)


def _answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _with_port(config: Path, port: int, path: Path) -> Path:
    import yaml

    document = yaml.safe_load(config.read_text())
    document["gateway"]["port"] = port
    path.write_text(yaml.safe_dump(document))
    return path


async def measure(stack: Stack, seconds: float, repeats: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="oscar-bench-gateway-"))
    runs: dict[str, list[float]] = {FLOOR: [], ONE: [], TWO: []}
    cpu_us: dict[str, list[dict[str, float]]] = {FLOOR: [], ONE: [], TWO: []}
    for repeat in range(repeats):
        for scenario in runs:
            rate, cpu = await _rate(stack, work / f"{repeat}-{len(runs[scenario])}-{scenario[:5]}", scenario,
                                    seconds)
            runs[scenario].append(rate)
            cpu_us[scenario].append(cpu)
        print(", ".join(f"{k}: {v[-1]:.0f} req/s" for k, v in runs.items()), flush=True)
        print("  CPU per request: " + "; ".join(
            f"{k}: " + ", ".join(f"{part} {us:.0f} µs" for part, us in v[-1].items()) for k, v in cpu_us.items()),
            flush=True)
    await delete_topics_of(stack.settings.kafka.bootstrap_servers, ISSUED_PREFIXES)
    paired = [g / f for f, g in zip(runs[FLOOR], runs[ONE], strict=True)]
    return {
        "seconds": seconds, "repeats": repeats, "runs": runs,
        "requests_per_second_median": {k: statistics.median(v) for k, v in runs.items()},
        "cpu_us_per_request": cpu_us,
        "ratio_gateway_to_floor_per_run": paired,
        "median_of_paired_ratios": statistics.median(paired),
        "ratio_two_to_one_per_run": [t / g for g, t in zip(runs[ONE], runs[TWO], strict=True)],
    }


def plot(result: dict[str, Any], path: Path) -> None:
    ratios = ", ".join(f"{r:.2f}" for r in result["ratio_gateway_to_floor_per_run"])
    plot_runs(result["runs"], result["requests_per_second_median"], "requests per second",
              f"gateway / floor per run: {ratios}", path)


def main() -> None:
    if sys.argv[1:2] == ["--serve-floor"]:
        serve_floor(Path(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    quiet_kafka_client()
    stack = ensure_stack(DEFAULT_COMPONENTS)  # before the event loop: starting Kafka applies the topics
    result = asyncio.run(measure(stack, args.seconds, args.repeats))
    path = write_results("gateway_floor", result)
    plot(result, path.with_suffix(".png"))
    print(f"gateway / floor per run: {', '.join(f'{r:.2f}' for r in result['ratio_gateway_to_floor_per_run'])} "
          f"(median {result['median_of_paired_ratios']:.2f}); "
          f"two gateways / one: {', '.join(f'{r:.2f}' for r in result['ratio_two_to_one_per_run'])}; {path}")


if __name__ == "__main__":
    main()
