"""Routing throughput with 1, 1k and 10k services: the route agent's per-record work (parse the canonical
event, find the services in the trie, build and serialize the invocations), in one process, no I/O.

Every event matches exactly one service whatever the table size, so the runs differ only in the size of the
table; a scan over services would slow down ~10000x, the trie should not slow down at all. Two workloads:
``spread`` sends each event to a random one of the services (every event touches other memory), ``one
folder`` sends all events to the same service's folder (what the index itself costs as the table grows).

    taskset -c 1 .venv/bin/python -m benchmarks.routing_throughput [--events 50000] [--repeats 9]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

from benchmarks.common import bars_with_runs, write_results
from oscar_stream.core.events import CREATED, StorageEvent
from oscar_stream.core.ids import created_object_id
from oscar_stream.core.records import Origin
from oscar_stream.route.index import RoutingIndex
from oscar_stream.route.model import InputSpec, ServiceSpec
from oscar_stream.route.records import route_record
from oscar_stream.topics import TopicNames

SIZES = (1, 1000, 10000)


def table(size: int) -> list[ServiceSpec]:
    return [ServiceSpec(name=f"svc-{i:05d}", image="alpine:3", script="true",
                        inputs=(InputSpec("minio.default", f"lab/project-{i % 97}/dataset-{i:05d}",
                                          suffixes=(".h5", ".fits")),))
            for i in range(size)]


def events(size: int, count: int, spread: bool) -> list[bytes]:
    rng = random.Random(size)
    out = []
    for n in range(count):
        i = rng.randrange(size) if spread else size // 2
        key = f"project-{i % 97}/dataset-{i:05d}/run-{n:06d}/frame.h5"
        out.append(StorageEvent(created_object_id("minio.default", "lab", key, None, f"{n:032x}", None), CREATED,
                                "2026-01-01T00:00:00.000Z", "minio.default", "s3", "lab", key,
                                "s3:ObjectCreated:Put", size=1, etag=f"{n:032x}").to_json())
    return out


def measure(count: int, repeats: int) -> dict[str, Any]:
    names = TopicNames("bench")
    origin = Origin("bench.events", 0, 0)
    cases = {f"{size} {workload}": (RoutingIndex(table(size)), events(size, count, workload == "spread"))
             for size in SIZES for workload in ("spread", "one folder") if size > 1 or workload == "spread"}
    for index, payloads in cases.values():
        assert all(len(route_record(names, index, origin, p).records) == 1 for p in payloads)  # also the warm-up
    runs: dict[str, list[float]] = {size: [] for size in cases}
    for _ in range(repeats):  # sizes interleaved, so drift on the machine hits each of them alike
        for size, (index, payloads) in cases.items():
            started = time.perf_counter()
            for payload in payloads:
                route_record(names, index, origin, payload)
            runs[size].append(count / (time.perf_counter() - started))
    medians = {size: statistics.median(values) for size, values in runs.items()}
    return {"events": count, "repeats": repeats, "runs": runs, "events_per_second_median": medians,
            "ratio_10k_to_1": medians["10000 spread"] / medians["1 spread"],
            "ratio_10k_to_1_one_folder": medians["10000 one folder"] / medians["1 spread"]}


def plot(result: dict[str, Any], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    runs = {case.replace(" ", "\n", 1): values for case, values in result["runs"].items()}
    medians = result["events_per_second_median"]
    bars_with_runs(ax, runs, {case.replace(" ", "\n", 1): f"{medians[case]:,.0f}/s" for case in medians},
                   "events routed per second (one core)")
    ax.set_title(f"Routing: 10k/1 = {result['ratio_10k_to_1']:.2f} (spread), "
                 f"{result['ratio_10k_to_1_one_folder']:.2f} (one folder)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    result = measure(args.events, args.repeats)
    path = write_results("routing_throughput", result)
    plot(result, path.with_suffix(".png"))
    for case, rate in result["events_per_second_median"].items():
        print(f"{case:<18} services  {rate:10.0f} events/s")
    print(f"ratio 10k/1: {result['ratio_10k_to_1']:.2f} spread, {result['ratio_10k_to_1_one_folder']:.2f} one folder;"
          f" written to {path}")


if __name__ == "__main__":
    main()
