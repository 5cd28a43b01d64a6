"""Pickup stamps for bench/pickup_latency.py: when each job's handler started, on one clock.

Every time is `time.monotonic()`, which on Linux is CLOCK_MONOTONIC: one clock for
every process of the machine, so an enqueue stamped in one process and a handler
start stamped in another can be subtracted. A handler appends `<job number> <time>`
to the file named by BENCH_STAMPS (one small write, atomic with O_APPEND).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

_fd: int | None = None


def stamp(number: int, started: float) -> None:
    """Record that job `number`'s handler started at `started` (call it with the handler's first reading)."""
    global _fd
    if _fd is None:
        _fd = os.open(os.environ["BENCH_STAMPS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd, f"{number} {started:.6f}\n".encode())


def read_stamps(path: Path) -> dict[int, float]:
    """Return each job number's first handler start (a retried job keeps its first)."""
    starts: dict[int, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            number, started = line.split()
            starts.setdefault(int(number), float(started))
    return starts


def paced(count: int, interval: float) -> Iterator[int]:
    """Yield 0..count-1, each at its slot `interval` seconds after the previous one's."""
    start = time.monotonic()
    for number in range(count):
        delay = start + number * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield number


async def apaced(count: int, interval: float) -> AsyncIterator[int]:
    """Like paced(), for an event loop."""
    import asyncio

    start = time.monotonic()
    for number in range(count):
        delay = start + number * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield number
