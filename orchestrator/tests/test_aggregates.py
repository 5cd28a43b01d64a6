from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from core.aggregates import PercentileDisc, percentiles, percentiles_by, percentiles_by_offset
from dispatch.models import DispatchWindow

pytestmark = pytest.mark.django_db

FRACTIONS = (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0)
DATASETS = {
    "one": [7],
    "two": [5, 1],
    "ties": [3, 3, 3, 9, 9],
    "twenty": list(range(200, 0, -10)),
    "skewed": [1] * 95 + [1000] * 5,
    "odd": [13, 2, 8, 21, 1, 34, 5, 3, 55],
}


@pytest.fixture
def windows(make_window: Callable[..., DispatchWindow]) -> None:
    for job, latencies in DATASETS.items():
        for latency in latencies:
            make_window(job=job, latency_ms=latency)
        make_window(job=job, latency_ms=None, status="pending")  # NULLs are ignored, as percentile_disc does.


@pytest.mark.usefixtures("windows")
@pytest.mark.parametrize("job", DATASETS)
def test_percentiles__postgres_and_the_offset_fallback_agree(job: str) -> None:
    queryset = DispatchWindow.objects.filter(job=job)

    in_sql = percentiles(queryset, "latency_ms", FRACTIONS)
    by_offset = percentiles_by_offset(queryset, "latency_ms", FRACTIONS)

    assert in_sql == by_offset
    ordered = sorted(DATASETS[job])
    assert (in_sql[0.0], in_sql[1.0]) == (ordered[0], ordered[-1])


@pytest.mark.usefixtures("windows")
def test_percentiles_by__one_grouped_query_agrees_with_each_groups_offsets(
    django_assert_num_queries: Callable[..., Any],
) -> None:
    queryset = DispatchWindow.objects.all()

    with django_assert_num_queries(1):
        grouped = percentiles_by(queryset, "job", "latency_ms", FRACTIONS)

    assert grouped == {
        job: percentiles_by_offset(queryset.filter(job=job), "latency_ms", FRACTIONS) for job in DATASETS
    }


@pytest.mark.usefixtures("windows")
def test_percentiles__known_values() -> None:
    skewed = percentiles(DispatchWindow.objects.filter(job="skewed"), "latency_ms", (0.5, 0.95, 0.96))

    assert skewed == {0.5: 1, 0.95: 1, 0.96: 1000}


def test_percentiles__none_for_an_empty_queryset() -> None:
    empty = DispatchWindow.objects.none()

    assert percentiles(DispatchWindow.objects.all(), "latency_ms", (0.5,)) == {0.5: None}
    assert percentiles_by_offset(empty, "latency_ms", (0.5,)) == {0.5: None}


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_percentile_disc__refuses_a_fraction_outside_0_1(fraction: float) -> None:
    with pytest.raises(ValueError, match="must be between 0 and 1"):
        PercentileDisc("latency_ms", fraction=fraction)
    with pytest.raises(ValueError, match="must be between 0 and 1"):
        percentiles_by_offset(DispatchWindow.objects.all(), "latency_ms", (fraction,))
