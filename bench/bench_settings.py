"""Settings for the benchmarks' product processes: production settings plus bench-only additions.

- many registered cron jobs: every request of the fresh-window benchmark ticks a
  different one, so each claims a new window; BENCH_CRON_JOBS says how many jobs
  `bench-00000`... to register;
- the bench URLconf (bench_urls.py): the product's URLs plus the dispatch floor;
- the bench job handlers (bench_handlers.py) beside the product's own, and the table
  the write jobs insert into (bench_writes).
"""

from __future__ import annotations

import os

# The one place the settings name the product's settings module (see product.py).
from orchestrator.settings import *  # noqa: F403
from orchestrator.settings import CRON_JOBS, INSTALLED_APPS, JOB_HANDLER_MODULES

CRON_JOBS = [
    *CRON_JOBS,
    *(
        {"name": f"bench-{number:05d}", "window_seconds": 60, "callable": "runs.units.maintain"}
        for number in range(int(os.environ.get("BENCH_CRON_JOBS", "100")))
    ),
]
ROOT_URLCONF = "bench_urls"
JOB_HANDLER_MODULES = [*JOB_HANDLER_MODULES, "bench_handlers"]
INSTALLED_APPS = [*INSTALLED_APPS, "bench_writes"]
