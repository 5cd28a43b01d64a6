"""The Metrics section of docs/operations.md against what `/metrics` exports: its table, and its alert rules as
Prometheus reads them (YAML, then each expression parsed as PromQL: the metrics it selects and what encloses them).

The exported names come from a real scrape, read with prometheus-client's parser, once
ticks and jobs have happened.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import promql_parser
import pytest
import yaml
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from dispatch.registry import get_cron_job
from dispatch.services import dispatch_tick
from jobs.runner import jobs_run
from jobs.services import job_enqueue
from testsupport.event_api import EventAPI
from testsupport.procs import ROOT

pytestmark = pytest.mark.django_db(transaction=True)  # the events are counted as they commit

PAGE = ROOT / "docs" / "operations.md"
SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
OVER_RANGES = {"rate", "irate", "increase"}  # only a counter's (or a histogram series') rate means anything


def section() -> str:
    text = PAGE.read_text()
    return text[text.index("## Metrics\n") : text.index("## Logs\n")]


def rules() -> list[dict[str, Any]]:
    [block] = re.findall(r"```yaml\n(groups:.*?)```", section(), flags=re.DOTALL)
    [group] = yaml.safe_load(block)["groups"]
    found: list[dict[str, Any]] = group["rules"]
    return found


@pytest.fixture
def families(client: Client, settings: Any, event_api: EventAPI, now: datetime) -> dict[str, str]:
    """Every metric family `/metrics` answers once ticks and jobs happened, by name (a counter's without
    `_total`), with its type."""
    job = get_cron_job("background-jobs")
    assert job is not None
    assert dispatch_tick(job=job, now=now, source="cron", correlation_id="c").status_code == 202
    job_enqueue(kind="test.record", now=now)
    job_enqueue(kind="test.fail", max_attempts=1, now=now)
    jobs_run(budget_seconds=30, clock=lambda: now)
    settings.METRICS_TOKEN = "t"
    response = client.get("/metrics", headers={"Authorization": "Bearer t"})
    parsed = text_string_to_metric_families(response.content.decode())
    return {family.name: family.type for family in parsed if family.name.startswith("orchestrator_")}


@pytest.fixture
def exported(families: dict[str, str]) -> dict[str, str]:
    """Every sample name `/metrics` can answer under, with its family's type."""
    return {name + suffix: kind for name, kind in families.items() for suffix in SUFFIXES[kind]}


def selectors(expr: promql_parser.Expr) -> Iterator[tuple[str | None, list[promql_parser.Expr]]]:
    """Yield each metric selector of `expr`: its metric name (None when a matcher does not fix one), and the
    expressions enclosing it, innermost first."""
    found: list[tuple[str | None, list[promql_parser.Expr]]] = []
    around: list[promql_parser.Expr] = []

    def enter(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append((_name(node), around[::-1]))
        around.append(node)

    def leave(node: promql_parser.Expr) -> None:
        around.pop()

    promql_parser.walk(expr, enter, leave)
    return iter(found)


def _name(selector: promql_parser.VectorSelector) -> str | None:
    if selector.name:
        return selector.name
    equal = [
        m.value for m in selector.matchers.matchers if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal
    ]
    return equal[0] if equal else None


def _calls(around: list[promql_parser.Expr]) -> list[str]:
    return [node.func.name for node in around if isinstance(node, promql_parser.Call)]


def _keeps_le(node: promql_parser.AggregateExpr) -> bool:
    """Return whether aggregating by `node` keeps the bucket label `le`."""
    if node.modifier is None:
        return False
    by: bool = node.modifier.type == promql_parser.AggModifierType.By
    return ("le" in node.modifier.labels) is by


def problems(expr: str, exported: dict[str, str]) -> list[str]:
    """Return what is wrong with the alert expression `expr` against the metrics `exported` (nothing: it holds)."""
    try:
        parsed = promql_parser.parse(expr)
    except ValueError as exc:
        return [f"not PromQL: {exc}"]
    found, named = [], False
    for name, around in selectors(parsed):
        if name is None:
            found.append("a selector without a metric name cannot be checked")
            continue
        named = True
        if name not in exported:
            found.append(f"{name} is not exported")
            continue
        calls = _calls(around)
        if exported[name] == "gauge":
            if OVER_RANGES & set(calls):
                found.append(f"rate() over the gauge {name}")
        elif not calls or calls[0] not in OVER_RANGES:
            found.append(f"{name} outside rate()")
        if name.endswith("_bucket"):
            found.extend(_bucket_problems(name, around))
        elif "histogram_quantile" in calls:
            found.append(f"histogram_quantile() over {name}, not a histogram's _bucket")
    if not named:
        found.append("no metric is selected")
    return found


def _bucket_problems(name: str, around: list[promql_parser.Expr]) -> list[str]:
    """Return what is wrong with the histogram series `name` enclosed by `around`: it must reach a
    histogram_quantile() with its `le` label kept by every aggregation on the way."""
    quantiles = [index for index, node in enumerate(around) if _is_call(node, "histogram_quantile")]
    if not quantiles:
        return [f"{name} without histogram_quantile()"]
    inside = [node for node in around[: quantiles[0]] if isinstance(node, promql_parser.AggregateExpr)]
    return [] if all(_keeps_le(node) for node in inside) else [f"{name} aggregated without its le label"]


def _is_call(node: promql_parser.Expr, name: str) -> bool:
    return isinstance(node, promql_parser.Call) and node.func.name == name


def test_metrics_page__documents_every_exported_metric_and_no_other(families: dict[str, str]) -> None:
    table = re.findall(r"^\| `(orchestrator_[a-z0-9_]+)` \| (counter|histogram|gauge) \|", section(), flags=re.M)

    assert {name.removesuffix("_total"): kind for name, kind in table} == families


def test_alert_rules__select_exported_metrics_with_rate_over_counters_and_quantiles_over_buckets(
    exported: dict[str, str],
) -> None:
    used: set[str] = set()

    for rule in rules():
        assert rule["alert"].startswith("Orchestrator") and rule["annotations"]["summary"]
        assert problems(rule["expr"], exported) == [], rule["alert"]
        used.update(call for _, around in selectors(promql_parser.parse(rule["expr"])) for call in _calls(around))

    assert {"rate", "increase", "histogram_quantile"} <= used


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("sum(rate(orchestrator_windows_skipped_total[5m])) > 0", "orchestrator_windows_skipped_total is not exported"),
        ("rate(orchestrator_jobs_finished[5m]) > 0", "orchestrator_jobs_finished is not exported"),
        ("rate(orchestrator_queue_lag_seconds[5m]) > 0", "rate() over the gauge orchestrator_queue_lag_seconds"),
        ("sum(orchestrator_publishes_total) > 10", "orchestrator_publishes_total outside rate()"),
        (
            "sum(rate(orchestrator_job_run_seconds_bucket[5m])) > 0",
            "orchestrator_job_run_seconds_bucket without histogram_quantile()",
        ),
        (
            "histogram_quantile(0.95, sum by (kind) (rate(orchestrator_job_run_seconds_bucket[5m]))) > 1",
            "orchestrator_job_run_seconds_bucket aggregated without its le label",
        ),
        (
            "histogram_quantile(0.95, rate(orchestrator_job_run_seconds_count[5m])) > 1",
            "histogram_quantile() over orchestrator_job_run_seconds_count, not a histogram's _bucket",
        ),
        ('{__name__=~"orchestrator_.+"} > 0', "a selector without a metric name cannot be checked"),
        ("rate(orchestrator_publishes_total[5m]", "not PromQL: unclosed left parenthesis"),
    ],
)
def test_alert_rules__a_rule_naming_what_is_not_exported_or_misreading_a_type_is_refused(
    exported: dict[str, str], expr: str, problem: str
) -> None:
    assert problem in problems(expr, exported)
