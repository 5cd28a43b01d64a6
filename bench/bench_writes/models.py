"""The write jobs' row, on the table every system of the write drain inserts into (common.WRITES_DDL makes it)."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class BenchWrite(models.Model):
    job_id = models.BigIntegerField()
    written_at = models.DateTimeField(db_default=Now())

    class Meta:
        managed = False  # the same table for every system, made by the benchmark (common.WRITES_DDL)
        db_table = "bench_write"

    def __str__(self) -> str:
        return f"row of job {self.job_id}"
