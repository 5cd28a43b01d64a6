"""`manage.py orchestrator_report [--since 24h] [--json]`: the SLO stop-gate of a rollout."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone

from core.errors import one_line
from core.timefmt import iso_utc
from orchestrator.slo import SloReport, parse_period, slo_report_build
from orchestrator.slo_metrics import Metric

NO_REPORT = 2  # the exit status when no report could be made; 1 is a crossed gate (argparse's own errors exit 2 too)


class Command(BaseCommand):
    help = (
        "Print the SLO figures (dispatch latency, enqueue failures, duplicate runs, backlog and lag, dead letters) "
        "beside their gates. Exits 1 when a gate is crossed, so a rollout can stop on it, and 2 when it cannot report "
        "(a bad argument, the database unreachable)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", default="24h", help="the period to report on, e.g. 15m, 24h or 7d (default 24h)")
        parser.add_argument("--json", action="store_true", help="print the report as one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            period = parse_period(options["since"])
        except ValueError as exc:
            raise CommandError(f"--since: {exc}", returncode=NO_REPORT) from exc
        now = timezone.now()
        try:
            report = slo_report_build(since=now - period, now=now)
        except DatabaseError as exc:
            raise CommandError(f"cannot read the ledger: {one_line(exc)}", returncode=NO_REPORT) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report.as_json() | {"period": options["since"].strip()}))
        else:
            self.stdout.write(render_text(report, period_text=options["since"].strip()))
        if not report.passed:
            raise SystemExit(1)


def render_text(report: SloReport, *, period_text: str) -> str:
    """Return the report as an aligned table with a verdict line."""
    rows = [("metric", "value", "gate", "result")]
    rows += [(metric.label, _value(metric), _gate(metric), _result(metric)) for metric in report.metrics]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [f"SLO report for {iso_utc(report.since)} .. {iso_utc(report.now)} ({period_text})", ""]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    ]
    lines.append("")
    if report.passed:
        lines.append("PASS: every gate holds.")
    else:
        crossed = ", ".join(metric.label for metric in report.metrics if metric.passed is False)
        lines.append(
            f"FAIL: {crossed} crossed the gate. Stop the rollout (docs/operations.md, 'Rolling out and rolling back')."
        )
    return "\n".join(lines)


def _value(metric: Metric) -> str:
    return "no data" if metric.value is None else _amount(metric.value, metric.unit)


def _gate(metric: Metric) -> str:
    return "-" if metric.threshold is None else f"<= {_amount(metric.threshold, metric.unit)}"


# A count of one is written in the singular: "1 job", not "1 jobs".
SINGULAR = {"jobs": "job", "runs": "run", "letters": "letter", "windows": "window", "ticks": "tick"}


def _amount(number: float, unit: str) -> str:
    if unit == "ratio":
        return f"{number:.2%}"
    if number == 1:
        unit = SINGULAR.get(unit, unit)
    text = f"{int(number):,}" if float(number).is_integer() else f"{number:,.3f}".rstrip("0").rstrip(".")
    return f"{text} {unit}".rstrip()


def _result(metric: Metric) -> str:
    return {True: "pass", False: "FAIL", None: "info"}[metric.passed]
