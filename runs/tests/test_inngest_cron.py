"""RECONCILE_CRON's check reads schedules as Inngest does: what the server accepts, and nothing more."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runs.inngest_cron import cron_problem
from testsupport.registration import cron_problem as inngest_refuses

BOUNDS = [(0, 59, []), (0, 23, []), (1, 31, []), (1, 12, ["jan", "Jun", "DEC"]), (0, 6, ["sun", "Fri", "sat"])]
JUNK = st.sampled_from(
    ["L", "7W", "1#2", "-1", "x", "", "1-2-3", "1//2", "mon", "+5", "*-5", "?-1-2", "5-", "/2", "1/"]
)


def field(low: int, high: int, names: list[str]) -> st.SearchStrategy[str]:
    """Mostly what Inngest reads in the field, sometimes just outside it."""
    value = st.one_of(
        st.integers(low, high).map(str), st.sampled_from([*names, str(high + 1)]) if names else st.just(str(high + 1))
    )
    span = st.one_of(st.sampled_from(["*", "?"]), value, st.builds(lambda a, b: f"{a}-{b}", value, value))
    part = st.builds(lambda r, step: r + ("" if step is None else f"/{step}"), span, st.none() | st.integers(0, 20))
    return st.lists(st.one_of(part, part, part, JUNK), min_size=1, max_size=3).map(",".join)


ZONES = st.sampled_from(["", "", "TZ=UTC ", "TZ=Europe/Paris ", "CRON_TZ=America/New_York ", "TZ=Nowhere/Land "])
FIVE = st.tuples(*(field(*bounds) for bounds in BOUNDS)).map(" ".join)
SCHEDULES = st.builds(
    lambda zone, fields, extra: zone + fields + extra, ZONES, FIVE, st.sampled_from(["", "", "", " *", " 0 0"])
)


@given(SCHEDULES)
def test_cron_problem__refuses_exactly_what_inngest_refuses(schedule: str) -> None:
    assert bool(cron_problem(schedule)) == bool(inngest_refuses(schedule)), (cron_problem(schedule), schedule)


@pytest.mark.parametrize(
    "schedule",
    ["*/5 * * * *", "0 9 * * mon-fri", "TZ=Europe/Paris 30 2 1,15 * ?", "0 0 1 jan-jun/2 *", "5/15 * * * *"],
)
def test_cron_problem__reads_what_inngest_reads(schedule: str) -> None:
    assert (cron_problem(schedule), inngest_refuses(schedule)) == ("", "")


@pytest.mark.parametrize(
    "schedule",
    ["0 */5 * * * *", "@daily", "0 0 * * 7", "0 0 L * *", "0 0 * * 1#2", "60 * * * *", "* * * *", "*/0 * * * *"],
)
def test_cron_problem__refuses_what_inngest_refuses(schedule: str) -> None:
    assert cron_problem(schedule) and inngest_refuses(schedule)
