"""Tables the test handlers write to, so a test can count what ran, and where."""

from __future__ import annotations

from django.db import models


class HandlerRun(models.Model):
    """One completed run of a test handler, committed with the job's own transaction."""

    job_id = models.BigIntegerField()
    attempt = models.PositiveSmallIntegerField()
    worker_pid = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"job {self.job_id} attempt {self.attempt}"


class CronRun(models.Model):
    """One run of the test cron job `counter`."""

    dispatch_key = models.CharField(max_length=200)
    params = models.JSONField(default=dict)
    source = models.CharField(max_length=16)
    worker_pid = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.dispatch_key


class HandlerNote(models.Model):
    """A note a test handler leaves on a run: its foreign key, as every one on PostgreSQL, is checked at COMMIT."""

    run = models.ForeignKey(HandlerRun, on_delete=models.CASCADE)

    def __str__(self) -> str:
        return f"note on run {self.run_id}"
