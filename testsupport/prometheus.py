"""`/metrics` read as Prometheus reads it: prometheus-client's own parser, samples by (name, labels)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples_of(exposition: str) -> Samples:
    """Return every sample of a Prometheus text exposition by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """Return the sample `orchestrator_<name>` with exactly `labels` (0 when it is absent: a counter not yet moved)."""
    return samples.get((f"orchestrator_{name}", frozenset(labels.items())), 0.0)
