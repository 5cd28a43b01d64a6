"""Benchmark: this machine's PostgreSQL limit — single-row insert-commit transactions per second.

    python bench/pg_limit.py

pgbench runs a one-line script (`INSERT INTO t (v) VALUES (1)`, one commit per
transaction) against a scratch database, with one client and with eight. Prints
`RESULT {...}`; bench/run.py reports drain and dispatch throughput as a fraction of it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import drop_database, run_psql, scratch_database  # noqa: E402

SECONDS = int(os.environ.get("BENCH_PGBENCH_SECONDS", "10"))


def main() -> dict[str, float]:
    database = "orch_bench_pgbench"
    url = scratch_database(database)
    run_psql(url, "CREATE TABLE t (id bigserial PRIMARY KEY, v int)")
    results = {}
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
        script.write("INSERT INTO t (v) VALUES (1);\n")
        script.flush()
        for clients in (1, 8):
            done = subprocess.run(
                ["pgbench", "-n", "-f", script.name, "-T", str(SECONDS), "-c", str(clients), "-j", "2", url],
                capture_output=True,
                text=True,
                check=True,
            )
            match = re.search(r"tps = ([0-9.]+)", done.stdout)
            assert match is not None, done.stdout
            results[f"tps{clients}"] = float(match.group(1))
            print(f"pgbench, {clients} client(s): {results[f'tps{clients}']:.0f} commits/s", flush=True)
    drop_database(database)
    print("RESULT " + json.dumps(results), flush=True)
    return results


if __name__ == "__main__":
    main()
