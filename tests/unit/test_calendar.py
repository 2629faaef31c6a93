"""Contract section 10: business time under a calendar (timezone, weekday hours, holidays).

Hand-worked cases, then a brute-force minute-by-minute reference for random calendars.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kpi_helpers import HOUR, MINUTE, utc_ms

from stream.config import parse_kpi_config
from stream.kpi.calendar import Calendar
from stream.kpi.windows import from_ms


def calendar(timezone: str = "Europe/Stockholm", **days: list[str]) -> Calendar:
    """A calendar parsed from its policy-file table, as start-up does."""
    table = {"timezone": timezone, **days}
    return parse_kpi_config({"calendars": {"c": table}}).calendars["c"]


OFFICE = {day: ["08:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
ALL_DAY = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}

CASES = [
    # (calendar, start, end, expected business time) -- worked out by hand
    pytest.param(
        calendar(**OFFICE),
        "2026-11-24T10:00:00+01:00",
        "2026-11-24T12:30:00+01:00",
        2 * HOUR + 30 * MINUTE,
        id="inside-one-day",
    ),
    pytest.param(
        calendar(**OFFICE),
        "2026-11-24T16:00:00+01:00",
        "2026-11-25T09:00:00+01:00",
        2 * HOUR,
        id="overnight-office",  # Tue 16-17 and Wed 08-09
    ),
    pytest.param(
        calendar(**{d: ["00:00-06:00", "20:00-24:00"] for d in ("tue", "wed")}),
        "2026-11-24T19:00:00+01:00",
        "2026-11-25T07:00:00+01:00",
        10 * HOUR,
        id="overnight-shift-across-midnight",  # Tue 20-24 (4 h) and Wed 00-06 (6 h)
    ),
    pytest.param(
        calendar(**OFFICE),
        "2026-11-27T16:00:00+01:00",
        "2026-11-30T09:00:00+01:00",
        2 * HOUR,
        id="weekend",  # Fri 16-17, Mon 08-09
    ),
    pytest.param(
        calendar(**OFFICE),
        "2026-11-28T10:00:00+01:00",
        "2026-11-30T08:00:00+01:00",
        0,
        id="opened-saturday-clock-not-started-at-monday-8",
    ),
    pytest.param(
        calendar(**OFFICE, holidays=["2026-12-24", "2026-12-25"]),
        "2026-12-23T16:00:00+01:00",
        "2026-12-28T09:00:00+01:00",
        2 * HOUR,
        id="holidays",  # Wed 16-17; Thu, Fri holidays; weekend; Mon 08-09
    ),
    pytest.param(
        calendar(**ALL_DAY),
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
        23 * HOUR,
        id="spring-forward-day-has-23-hours",
    ),
    pytest.param(
        calendar(sun=["02:00-03:00"]),
        "2026-03-28T00:00:00Z",
        "2026-03-30T00:00:00Z",
        0,
        id="skipped-hour-is-never-open",
    ),
    pytest.param(
        calendar(sun=["01:00-04:00"]),
        "2026-03-28T00:00:00Z",
        "2026-03-30T00:00:00Z",
        2 * HOUR,
        id="interval-across-spring-forward",
    ),
    pytest.param(
        calendar(**ALL_DAY),
        "2026-10-25T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
        25 * HOUR,
        id="fall-back-day-has-25-hours",
    ),
    pytest.param(
        calendar(sun=["02:00-03:00"]),
        "2026-10-24T00:00:00Z",
        "2026-10-26T00:00:00Z",
        2 * HOUR,
        id="repeated-hour-is-open-twice",
    ),
    pytest.param(
        calendar(sun=["02:30-04:00"]),
        "2026-10-24T00:00:00Z",
        "2026-10-26T00:00:00Z",
        2 * HOUR,
        id="interval-starting-in-repeated-hour",  # 02:30-03:00 CEST, 02:30-04:00 CET
    ),
    pytest.param(
        calendar(sun=["08:00-17:00"]),
        "2026-10-25T07:00:00+01:00",
        "2026-10-25T18:00:00+01:00",
        9 * HOUR,
        id="office-hours-on-fall-back-day",
    ),
    pytest.param(
        calendar("America/New_York", sun=["00:00-24:00"]),
        "2026-03-08T00:00:00-05:00",
        "2026-03-09T00:00:00-04:00",
        23 * HOUR,
        id="new-york-spring-forward",
    ),
    pytest.param(
        calendar("America/New_York", sun=["00:00-24:00"]),
        "2026-11-01T00:00:00-04:00",
        "2026-11-02T00:00:00-05:00",
        25 * HOUR,
        id="new-york-fall-back",
    ),
    pytest.param(
        calendar(tue=["08:00-12:00", "12:00-17:00"]),
        "2026-11-24T11:00:00+01:00",
        "2026-11-24T13:00:00+01:00",
        2 * HOUR,
        id="touching-intervals",
    ),
    pytest.param(
        calendar(fri=["20:00-24:00"], sat=["00:00-02:00"]),
        "2026-11-27T23:00:00+01:00",
        "2026-11-28T01:30:00+01:00",
        2 * HOUR + 30 * MINUTE,
        id="24:00-touches-next-midnight",
    ),
    pytest.param(
        calendar(**OFFICE),
        "2026-11-24T12:00:00+01:00",
        "2026-11-24T11:00:00+01:00",
        0,
        id="end-before-start",
    ),
    pytest.param(
        calendar(),
        "2026-11-24T12:00:00+01:00",
        "2026-12-24T12:00:00+01:00",
        0,
        id="never-open",
    ),
    pytest.param(
        calendar("Asia/Kathmandu", mon=["09:00-10:00"]),
        "2026-11-23T03:00:00Z",
        "2026-11-23T04:00:00Z",
        45 * MINUTE,  # open from 03:15Z (09:00 +05:45) until 04:00Z
        id="quarter-hour-offset",
    ),
]


@pytest.mark.parametrize(("cal", "start", "end", "expected"), CASES)
def test_business_time_hand_worked(cal: Calendar, start: str, end: str, expected: int) -> None:
    assert cal.business_ms(utc_ms(start), utc_ms(end)) == expected


def test_clock_keeps_its_origin_when_asked_far_outside_what_it_built() -> None:
    cal = calendar(**OFFICE)
    later = utc_ms("2026-11-24T12:00:00+01:00")
    first = cal.clock(later)
    year_before = utc_ms("2025-11-24T12:00:00+01:00")
    assert cal.clock(year_before) < first
    assert cal.clock(later) == first  # unchanged by the rebuild
    fresh = calendar(**OFFICE)
    assert cal.business_ms(year_before, later) == fresh.business_ms(year_before, later)


ZONES = (
    "UTC",
    "Europe/Stockholm",
    "America/New_York",
    "America/Santiago",  # changes at local midnight
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Kathmandu",
    "Pacific/Chatham",
)
# Around the DST changes of these zones in 2026, and an ordinary week.
STARTS = (
    "2026-03-07T00:00:00Z",
    "2026-03-27T00:00:00Z",
    "2026-04-03T00:00:00Z",
    "2026-09-04T00:00:00Z",
    "2026-09-25T00:00:00Z",
    "2026-10-02T00:00:00Z",
    "2026-10-23T00:00:00Z",
    "2026-10-30T00:00:00Z",
    "2026-11-23T00:00:00Z",
)


@st.composite
def day_hours(draw: st.DrawFn) -> list[str]:
    """Random non-overlapping intervals of one day in whole minutes, some touching."""
    points = sorted(draw(st.sets(st.integers(0, 1440), max_size=6)))
    pairs = list(zip(points[::2], points[1::2], strict=False))
    intervals: list[tuple[int, int]] = []
    for start, end in pairs:
        touching = intervals and draw(st.booleans())
        intervals.append((intervals[-1][1] if touching else start, end))
    return [f"{s // 60:02}:{s % 60:02}-{e // 60:02}:{e % 60:02}" for s, e in intervals]


def reference_business_minutes(cal: Calendar, start_ms: int, end_ms: int) -> int:
    """Minute by minute: is the wall clock at the minute's start inside open hours?"""
    open_minutes = 0
    for minute_ms in range(start_ms, end_ms, MINUTE):
        local = from_ms(minute_ms).astimezone(cal.timezone)
        if local.date() in cal.holidays:
            continue
        of_day = local.hour * 60 + local.minute
        if any(s <= of_day < e for s, e in cal.week[local.weekday()]):
            open_minutes += 1
    return open_minutes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone=st.sampled_from(ZONES),
    week=st.lists(day_hours(), min_size=7, max_size=7),
    holiday_offsets=st.sets(st.integers(0, 5), max_size=2),
    start=st.sampled_from(STARTS),
    start_minutes=st.integers(0, 2 * 1440),
    length_minutes=st.integers(0, 3 * 1440),
    split=st.floats(0, 1),
)
def test_business_time_matches_a_minute_by_minute_reference(
    zone: str,
    week: list[list[str]],
    holiday_offsets: set[int],
    start: str,
    start_minutes: int,
    length_minutes: int,
    split: float,
) -> None:
    begin = utc_ms(start) + start_minutes * MINUTE
    end = begin + length_minutes * MINUTE
    first_day = datetime.fromisoformat(start).date()
    holidays = [str(first_day + timedelta(days=n)) for n in sorted(holiday_offsets)]
    days = dict(zip(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), week, strict=True))
    cal = calendar(zone, **days, holidays=holidays)
    assert cal.business_ms(begin, end) == reference_business_minutes(cal, begin, end) * MINUTE
    # Business time adds up over a split point, whatever order the clock was asked in.
    middle = begin + round(length_minutes * split) * MINUTE
    assert cal.business_ms(begin, middle) + cal.business_ms(middle, end) == cal.business_ms(
        begin, end
    )


def test_holiday_is_a_local_date() -> None:
    # 2026-11-24 is a Tuesday; in Auckland (+13:00) it starts at 11:00Z the day before.
    cal = calendar("Pacific/Auckland", mon=["00:00-24:00"], tue=["00:00-24:00"])
    closed = calendar(
        "Pacific/Auckland", mon=["00:00-24:00"], tue=["00:00-24:00"], holidays=["2026-11-24"]
    )
    start, end = utc_ms("2026-11-23T11:00:00Z"), utc_ms("2026-11-24T11:00:00Z")
    assert cal.business_ms(start, end) == 24 * HOUR
    assert closed.business_ms(start, end) == 0
    assert closed.holidays == {date(2026, 11, 24)}
    assert closed.timezone == ZoneInfo("Pacific/Auckland")
