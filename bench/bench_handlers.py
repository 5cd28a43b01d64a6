"""Bench-only job handlers, registered through JOB_HANDLER_MODULES in bench_settings.py."""

from __future__ import annotations

import time
from typing import Any

import product
from bench_writes.models import BenchWrite
from stamps import stamp


@product.job_handler("bench.pickup")
def pickup(ctx: Any) -> None:
    """Stamp when this job's handler started (bench/pickup_latency.py)."""
    started = time.monotonic()
    stamp(int(ctx.payload["n"]), started)


@product.job_handler("bench.write")
def write(ctx: Any) -> None:
    """Insert one row through the ORM: the work of a job that writes (bench/write_drain.py)."""
    BenchWrite.objects.create(job_id=ctx.job_id)
