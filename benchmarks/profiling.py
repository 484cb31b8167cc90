"""py-spy on a process of the benchmark while it runs, and the functions that hold most of its samples."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path


@asynccontextmanager
async def py_spy(pid: int, raw: Path) -> AsyncIterator[None]:
    """Samples of ``pid`` holding the GIL (its own Python work, not its waits), 200 per second, into ``raw``."""
    spy = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--format", "raw", "--gil",
        "--rate", "200", "--output", str(raw), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        await asyncio.wait_for(spy.wait(), 60)


def top_functions(raw: Path, count: int = 15, within: str | None = None) -> list[tuple[str, float]]:
    """The functions that hold most of py-spy's samples: as their own (the leaf of each stack), or, with
    ``within`` (e.g. ``oscar_stream/``), the functions of those files with everything they call."""
    held: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack:
            continue
        total += int(samples)
        frames = stack.split(";")
        if within is None:
            held[frames[-1]] += int(samples)
        else:
            for frame in set(frames):
                if within in frame:
                    held[frame] += int(samples)
    return [(name, samples / max(total, 1)) for name, samples in held.most_common(count)]


def write_top(raw: Path, path: Path, count: int = 25) -> list[tuple[str, float]]:
    """The top functions by their own samples, then oscar-stream's functions with what they call."""
    own = top_functions(raw, count)
    ours = top_functions(raw, count, within="oscar_stream/")
    path.write_text("own samples (GIL held):\n" + _lines(own)
                    + "\noscar-stream's functions, with what they call:\n" + _lines(ours))
    return own


def _lines(top: list[tuple[str, float]]) -> str:
    return "".join(f"{share * 100:5.1f}%  {name}\n" for name, share in top)
