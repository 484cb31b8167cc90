"""The demo's input files and what the pipeline must compute from them (pure, deterministic per seed)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Expected:
    sha256: str
    rows: int
    mean: float
    minimum: float
    maximum: float


def csv_file(seed: str, index: int) -> bytes:
    """A CSV of sensor readings: ``id,station,value`` with 50-500 rows."""
    rng = random.Random(f"{seed}-{index}")
    rows = ["id,station,value"]
    for row in range(rng.randint(50, 500)):
        rows.append(f"{row},{rng.choice(['north', 'south', 'east', 'west'])},{rng.uniform(-40, 60):.3f}")
    return ("\n".join(rows) + "\n").encode()


def expected(content: bytes) -> Expected:
    values = [float(line.split(",")[2]) for line in content.decode().splitlines()[1:]]
    return Expected(
        sha256=hashlib.sha256(content).hexdigest(),
        rows=len(values),
        mean=sum(values) / len(values),
        minimum=min(values),
        maximum=max(values),
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[rank]
