"""Shared by the benchmark scripts: scratch databases, Django set-up, figures, BENCHMARKS.md sections."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import product

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
DEFAULT_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
T = TypeVar("T")
# The row each write job inserts (bench/write_drain.py): one table, the same for every system.
WRITES_TABLE = "bench_write"
WRITES_DDL = (
    f"CREATE TABLE IF NOT EXISTS {WRITES_TABLE} "
    "(id bigserial PRIMARY KEY, job_id bigint NOT NULL, written_at timestamptz NOT NULL DEFAULT now())"
)


def scratch_database(name: str) -> str:
    """Return the URL of a throwaway database `name`, (re)created empty on the benchmark server.

    The server is BENCH_POSTGRES_URL's (default: the local PostgreSQL, user postgres).
    """
    admin = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL)
    run_psql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    run_psql(admin, f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin)
    return urlunsplit(parts._replace(path=f"/{name}"))


def drop_database(name: str) -> None:
    admin = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL)
    run_psql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_psql(url: str, *statements: str) -> str:
    """Run each statement in its own transaction (VACUUM needs that); return the output."""
    command = ["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1"]
    for statement in statements:
        command += ["-c", statement]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"psql failed: {done.stderr.strip()}")
    return done.stdout.strip()


def setup_django(database_url: str, *, settings: str = product.SETTINGS, **env: str) -> None:
    """Configure Django for a benchmark process on `database_url`, with production settings (DEBUG off).

    `settings` is the product's settings module unless a bench one (bench_settings) is
    named. The cache is local memory unless REDIS_URL is given.
    """
    os.environ.update(DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE=settings, **env)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DEBUG", "false")  # production settings: no query log, no debug cursor
    os.environ.setdefault("SECRET_KEY", "benchmark-secret-key-" + "x" * 40)
    if "REDIS_URL" not in env:
        os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def prepare_tables(url: str, tables: Sequence[str]) -> None:
    """Vacuum and analyze freshly seeded `tables`, then checkpoint: every system starts from the same state.

    Autovacuum is off on the benchmark server, so without this a table's statistics
    are those of an empty table and a queue's fetch may scan and sort every row.
    """
    run_psql(url, *(f"VACUUM ANALYZE {table}" for table in tables), "CHECKPOINT")


def interleaved(configs: Sequence[T], repeat: int, measure: Callable[[T], float]) -> list[list[float]]:
    """Measure every config `repeat` times, round by round (A B C, A B C, ...); return each config's figures.

    Interleaving spreads the machine's drift over every config instead of letting it
    fall on whichever ran last.
    """
    figures: list[list[float]] = [[] for _ in configs]
    for _ in range(repeat):
        for index, config in enumerate(configs):
            figures[index].append(measure(config))
    return figures


def spread(values: Sequence[float], fmt: str = ",.0f") -> str:
    """Return `median (min–max)` of `values`, e.g. `2,094 (1,613–2,351)`."""
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(median(values), fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"


def load() -> str:
    """Return the machine's load averages (1, 5, 15 minutes) as `uptime` shows them."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `values` (fraction in 0..1): an observed value."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def best(medians: dict[str, float], system: str) -> str:
    """Return the key of `system`'s fastest configuration (keys start with the system's name)."""
    return max((key for key in medians if key.startswith(system)), key=medians.__getitem__)


def machine() -> str:
    """Return a one-line description of this machine: CPU, cores, memory, PostgreSQL, Python."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except OSError:
        memory = "unknown memory"
    postgres = run_psql(os.environ.get("BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL), "SHOW server_version")
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory}; PostgreSQL {postgres} and Redis on loopback; "
        f"Python {platform.python_version()}"
    )


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def write_section(script: str, lines: Sequence[str]) -> None:
    """Replace (or append) the section of BENCHMARKS.md that `script` owns, between its markers."""
    begin, end = f"<!-- {script}: begin -->", f"<!-- {script}: end -->"
    section = "\n".join([begin, *lines, end])
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    if begin in text:
        head, _, rest = text.partition(begin)
        text = head + section + rest.partition(end)[2]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    BENCHMARKS.write_text(text)


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """Yield a temporary `git worktree` of commit `ref` of this repository (removed at the end)."""
    parent = Path(tempfile.mkdtemp(prefix="orch-bench-baseline-"))
    tree = parent / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref], check=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
        parent.rmdir()
