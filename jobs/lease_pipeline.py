"""A group's starts on the lease connection: renewed together before the group, stamped one by one without waiting.

Before its handler, every job's lease is renewed and its `started_at` stamped, in a
transaction of its own on the lease connection (jobs.lease). Waiting for that round
trip before each handler is most of what a short job costs (BENCHMARKS.md). So a
group of jobs (jobs.group) is started in two steps:

1. When the group opens, one statement renews the leases of the jobs it will start
   (at most JOBS_GROUP_MAX_JOBS), each through its claim, and says which still hold.
   A job that does not is skipped, its handler never run.
2. Just before each handler, its stamp (the lease renewed again, `started_at`) is
   sent in pipeline mode, in a transaction of its own (a Sync after it), and flushed
   to the server, without waiting for the answer: the server runs it while the
   handler runs. The answers are read before the group's success marks are written,
   before a failure is recorded and before any other statement on the connection.

Why a job is still never started on a lease it lost: the group renews its leases,
through each claim, at most JOBS_GROUP_MAX_MS before it starts the group's last job
(a group still open after that commits before the next job starts, and the next
group renews again). The renewal sets the expiry to the runner's clock plus
JOBS_LEASE_SECONDS; maintenance takes a job back only once its own clock is past
that expiry; so between the renewal and the start no one takes the job back unless
the judging clock runs more than JOBS_LEASE_SECONDS - JOBS_GROUP_MAX_MS ahead of the
runner's (the drain budgets already rest on the clocks agreeing far better than
that). Should a stamp still match nothing, its answer says so before the group
commits: the group is rolled back and run again one job at a time, each start
awaited (jobs.group).

Why `started_at` still tells a started job from one that was not: a stamp is on the
server's socket before its handler starts, and the server runs what it has received
even when the runner dies right after, so a job whose handler started is stamped;
and only the job about to start is stamped, never the rest of its group. The stamp
commits without waiting for its WAL flush, so a crash of the database server itself
can lose it, together with every later commit (its group's among them): a runner that
outlives the crash knows which jobs it started (jobs.recovery.claims_take_back); what
the loss costs when the runner dies with the server is in docs/jobs.md ("What a
database crash can lose").

The stamp skips a row another transaction holds locked (SKIP LOCKED) instead of
waiting for it: the lock may be the group's own (a handler that updated its own job
row), which is released only when the group commits, after the stamp's answer is
read. A skipped stamp counts as a lost lease: the group runs again, one job at a
time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import generators, pq

from core.sql import ASYNC_COMMIT
from jobs.models import BackgroundJob

_TABLE = BackgroundJob._meta.db_table
_RUNNING = BackgroundJob.Status.RUNNING
_STAMP_NAME = b"orchestrator_job_start"
_STAMP_SQL = (
    f"UPDATE {_TABLE} AS job SET lease_expires_at = $1, started_at = $2 FROM {ASYNC_COMMIT}, "  # noqa: S608
    f"(SELECT id FROM {_TABLE} WHERE id = $3 AND status = '{_RUNNING}' AND attempts = $4 AND locked_by = $5 "
    "FOR UPDATE SKIP LOCKED) AS mine WHERE job.id = mine.id"
).encode()
_CLAIMS = "unnest(%(ids)s::bigint[], %(attempts)s::integer[], %(workers)s::text[]) AS held(id, attempts, locked_by)"
_HELD = (
    "job.id = held.id AND job.status = %(running)s AND job.attempts = held.attempts AND job.locked_by = held.locked_by"
)
_RENEW_ALL_SQL = (
    f"UPDATE {_TABLE} AS job SET lease_expires_at = %(expires)s FROM {ASYNC_COMMIT}, {_CLAIMS} "  # noqa: S608
    f"WHERE {_HELD} RETURNING job.id"
)
# A heartbeat renews while its group is open, whose transaction holds locked the rows it wrote: those of
# its failed jobs (their retry or burial) and any a handler updated. Waiting for them would wait for the
# group, which waits for the heartbeat: so it skips locked rows (none is taken back while locked: lease
# recovery skips them too), and a claim matching as the statement began still holds, renewed or not.
_HEARTBEAT_SQL = (
    f"WITH free AS (SELECT job.id FROM {_TABLE} AS job, {_CLAIMS} WHERE {_HELD} "  # noqa: S608 (constants only)
    "FOR UPDATE OF job SKIP LOCKED), "
    f"renewed AS (UPDATE {_TABLE} AS job SET lease_expires_at = %(expires)s FROM {ASYNC_COMMIT}, free "
    f"WHERE job.id = free.id) SELECT job.id FROM {_TABLE} AS job, {_CLAIMS} WHERE {_HELD}"
)


class StampPipeline:
    """The pipelined starts of one psycopg connection (autocommit): send stamps, then settle their answers."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection
        self._sent: list[int] = []  # the jobs whose stamps are sent and not yet answered, in order
        self._unmatched: list[int] = []  # answered, matching nothing, not yet taken by settle()
        self._prepared = False

    def renew_all(self, jobs: Sequence[BackgroundJob], *, expires: datetime, beat: bool = False) -> set[int]:
        """Renew the leases of `jobs` through their claims in one statement; return the ids of those still held.

        A heartbeat (`beat`) skips the rows another transaction holds locked (its group's own, above all).
        """
        self.read_answers()
        params = {
            "expires": expires,
            "ids": [job.pk for job in jobs],
            "attempts": [job.attempts for job in jobs],
            "workers": [job.locked_by for job in jobs],
            "running": _RUNNING,
        }
        rows = self.connection.execute(_HEARTBEAT_SQL if beat else _RENEW_ALL_SQL, params).fetchall()
        return {row[0] for row in rows}

    def send(self, job: BackgroundJob, *, expires: datetime, now: datetime) -> None:
        """Send `job`'s stamp, in a transaction of its own, and return once the server has it (not its answer)."""
        pgconn = self.connection.pgconn
        if not self._prepared:
            self.read_answers()
            pgconn.send_prepare(_STAMP_NAME, _STAMP_SQL)
            _raise_on_error(self.connection, self.connection.wait(generators.execute(pgconn)))
            self._prepared = True
        if pgconn.pipeline_status == pq.PipelineStatus.OFF:
            pgconn.enter_pipeline_mode()
        params = [expires.isoformat().encode(), now.isoformat().encode(), b"%d" % job.pk, b"%d" % job.attempts]
        pgconn.send_query_prepared(_STAMP_NAME, [*params, job.locked_by.encode()])
        pgconn.pipeline_sync()
        self.connection.wait(generators.send(pgconn))
        self._sent.append(job.pk)

    def settle(self) -> list[int]:
        """Read the answers of the stamps sent; return the ids of the jobs whose stamps matched nothing, since last."""
        self.read_answers()
        unmatched, self._unmatched = self._unmatched, []
        return unmatched

    def read_answers(self) -> None:
        """Read the answers of the stamps sent (keeping which matched nothing) and leave pipeline mode."""
        pgconn = self.connection.pgconn
        error: Exception | None = None
        while self._sent:
            job_id = self._sent.pop(0)
            for result in self.connection.wait(generators.fetch_many(pgconn)):
                if result.status == pq.ExecStatus.FATAL_ERROR and error is None:
                    error = pg_errors.error_from_result(result, encoding=self.connection.info.encoding)
                elif result.status == pq.ExecStatus.COMMAND_OK and result.command_tuples != 1:
                    self._unmatched.append(job_id)
            self.connection.wait(generators.fetch_many(pgconn))  # the Sync's own answer
        if pgconn.pipeline_status != pq.PipelineStatus.OFF:
            pgconn.exit_pipeline_mode()
        if error is not None:
            raise error


def _raise_on_error(connection: psycopg.Connection[Any], results: list[Any]) -> None:
    for result in results:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise pg_errors.error_from_result(result, encoding=connection.info.encoding)
