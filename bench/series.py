"""What a cron job's first tick in a process costs in metric series, for bench/dispatch_latency.py.

    python bench/series.py JOBS

Run by bench/dispatch_latency.py with the server's environment and a metrics directory of
its own (PROMETHEUS_MULTIPROC_DIR): for JOBS new job names it counts, through the
product's own functions, what a fresh dispatch of each counts (its window enqueued, its
publish, its dispatch latency, its tick lateness), as one process's first tick of each
job does, and prints `RESULT {"jobs": …, "series": <per job>, "bytes": <per job, in the
files>, "ms": <per job>, "gcMaxMs": <the longest full garbage collection>}`.
"""

from __future__ import annotations

import gc
import json
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import setup_django  # noqa: E402


def main() -> None:
    jobs = int(sys.argv[1])
    setup_django(os.environ["DATABASE_URL"], settings="bench_settings")
    from dispatch.metrics import dispatch_latency_observe, publish_count, tick_lateness_observe, windows_count

    full_collections: list[float] = []
    started = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            full_collections.append(time.perf_counter() - started[0])

    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    before = _series(directory)
    gc.callbacks.append(timed)
    began = time.perf_counter()
    for number in range(jobs):
        job = f"series-{number:06d}"
        tick_lateness_observe(job, lateness_ms=120)
        publish_count(job, failed=False)
        dispatch_latency_observe(job, latency_ms=3)
        windows_count(job, "enqueued")
    elapsed = time.perf_counter() - began
    gc.callbacks.remove(timed)
    series, size = _series(directory), sum(_used(path) for path in directory.glob("*.db"))
    result = {
        "jobs": jobs,
        "series": (series - before) / jobs,
        "bytes": size / jobs,
        "ms": elapsed * 1000 / jobs,
        "gcMaxMs": max(full_collections, default=0.0) * 1000,
    }
    print("RESULT " + json.dumps(result), flush=True)


def _used(path: Path) -> int:
    """Return how many bytes of a metrics file its values use (the file grows by doubling, ahead of them)."""
    with path.open("rb") as file:
        used: int = struct.unpack("i", file.read(4))[0]
    return used


def _series(directory: Path) -> int:
    """Return how many values the metrics files in `directory` hold (each bucket of a histogram is one)."""
    from prometheus_client.mmap_dict import MmapedDict

    values: list[object] = []
    for path in directory.glob("*.db"):
        values += MmapedDict.read_all_values_from_file(path)  # type: ignore[no-untyped-call]
    return len(values)


if __name__ == "__main__":
    main()
