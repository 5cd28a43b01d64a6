"""The Metrics section of docs/operations.md against what `/metrics` exports: its table, and its alert rules as
Prometheus reads them (YAML, then each expression's metric names and the functions around them)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from testsupport.procs import ROOT

pytestmark = pytest.mark.django_db

PAGE = ROOT / "docs" / "operations.md"
NAME = re.compile(r"\borchestrator_[a-z_]+")
CALL = re.compile(r"([a-z_]+)\s*\($")
SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}


def section() -> str:
    text = PAGE.read_text()
    return text[text.index("## Metrics\n") : text.index("## Logs\n")]


def families(client: Client, settings: Any) -> dict[str, str]:
    """Return every metric family `/metrics` answers, by name (a counter's without `_total`), with its type."""
    settings.METRICS_TOKEN = "t"
    response = client.get("/metrics", headers={"Authorization": "Bearer t"})
    parsed = text_string_to_metric_families(response.content.decode())
    return {family.name: family.type for family in parsed if family.name.startswith("orchestrator_")}


def sample_names(client: Client, settings: Any) -> dict[str, str]:
    """Return every sample name `/metrics` can answer under, with its family's type."""
    return {name + suffix: kind for name, kind in families(client, settings).items() for suffix in SUFFIXES[kind]}


def rules() -> list[dict[str, Any]]:
    [block] = re.findall(r"```yaml\n(groups:.*?)```", section(), flags=re.DOTALL)
    [group] = yaml.safe_load(block)["groups"]
    found: list[dict[str, Any]] = group["rules"]
    return found


def calls_around(expr: str, position: int) -> list[str]:
    """Return the functions whose parentheses enclose `position` in `expr`, innermost first."""
    calls, depth = [], 0
    for index in range(position - 1, -1, -1):
        if expr[index] == ")":
            depth += 1
        elif expr[index] == "(":
            if depth:
                depth -= 1
            elif match := CALL.search(expr[: index + 1]):
                calls.append(match.group(1))
    return calls


def test_metrics_page__documents_every_exported_metric_and_no_other(client: Client, settings: Any) -> None:
    table = re.findall(r"^\| `(orchestrator_[a-z_]+)` \| (counter|histogram|gauge) \|", section(), flags=re.M)

    assert {name.removesuffix("_total"): kind for name, kind in table} == families(client, settings)


def test_alert_rules__name_exported_metrics_with_rate_over_counters_and_quantiles_over_buckets(
    client: Client, settings: Any
) -> None:
    names = sample_names(client, settings)
    used: set[str] = set()

    for rule in rules():
        expr = rule["expr"]
        assert rule["alert"].startswith("Orchestrator") and rule["annotations"]["summary"]
        for match in NAME.finditer(expr):
            name, calls = match.group(), calls_around(expr, match.start())
            assert name in names, f"{rule['alert']}: {name} is not exported"
            used.update(calls)
            if names[name] == "gauge":
                assert not {"rate", "increase"} & set(calls), f"{rule['alert']}: rate() over the gauge {name}"
            else:  # a counter, or a histogram's series: only their rate means anything
                assert calls[0] in ("rate", "increase"), f"{rule['alert']}: {name} outside rate()"
            if name.endswith("_bucket"):
                assert "histogram_quantile" in calls and "le" in expr, f"{rule['alert']}: {name} without quantile"

    assert {"rate", "increase", "histogram_quantile"} <= used
