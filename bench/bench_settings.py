"""Settings for bench/dispatch_latency.py: production settings plus many registered cron jobs.

Every request of the fresh-window benchmark ticks a different cron job, so each one
claims a new window; BENCH_CRON_JOBS says how many jobs `bench-00000`... to register.
"""

from __future__ import annotations

import os

from orchestrator.settings import *  # noqa: F403
from orchestrator.settings import CRON_JOBS

CRON_JOBS = [
    *CRON_JOBS,
    *(
        {"name": f"bench-{number:05d}", "window_seconds": 60, "callable": "runs.units.maintain"}
        for number in range(int(os.environ.get("BENCH_CRON_JOBS", "100")))
    ),
]
