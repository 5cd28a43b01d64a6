"""The jobs table tells idle workers when a job becomes pending (PostgreSQL's NOTIFY; jobs.waker).

A row trigger sends `NOTIFY orchestrator_jobs, '<queue>'` in the transaction that makes
a job pending: its enqueue, a retry scheduled, a claim given back, an operator's retry.
It fires only for rows that are pending after the statement (`WHEN`), so the claim and
the finishing updates, the runner's hot path, never call it. PostgreSQL delivers the
notification when that transaction commits, once per distinct payload. SQLite has no
NOTIFY: its workers poll.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

CREATE = """
CREATE FUNCTION jobs_backgroundjob_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('orchestrator_jobs', NEW.queue);
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_backgroundjob_notify
    AFTER INSERT OR UPDATE OF status, run_after ON jobs_backgroundjob
    FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION jobs_backgroundjob_notify();
"""
DROP = """
DROP TRIGGER IF EXISTS jobs_backgroundjob_notify ON jobs_backgroundjob;
DROP FUNCTION IF EXISTS jobs_backgroundjob_notify();
"""


def _on_postgresql(sql: str) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("jobs", "0005_running_index")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP), elidable=False)]
