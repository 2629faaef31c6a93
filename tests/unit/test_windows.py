"""Contract section 4: minute buckets and the windows 15m / 1h / 24h / today."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kpi_helpers import MINUTE, utc_ms

from stream.kpi.windows import WINDOWS, bucket, from_ms, to_ms, window_buckets


def test_windows_are_the_contract_names() -> None:
    assert WINDOWS == ("15m", "1h", "24h", "today")


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        pytest.param(0, 0, id="epoch"),
        pytest.param(59_999, 0, id="last-ms-of-first-minute"),
        pytest.param(60_000, 1, id="first-ms-of-second-minute"),
        pytest.param(utc_ms("2026-11-22T10:00:00Z"), 29_922_360, id="on-the-minute"),
        pytest.param(utc_ms("2026-11-22T10:00:59.999Z"), 29_922_360, id="end-of-that-minute"),
        pytest.param(utc_ms("2026-11-22T10:00:00.250+01:00"), 29_922_300, id="offset-irrelevant"),
    ],
)
def test_bucket_is_floor_of_t_over_60s(instant: int, expected: int) -> None:
    assert bucket(instant) == expected


@pytest.mark.parametrize(
    ("moment", "expected_ms"),
    [
        pytest.param(datetime(1970, 1, 1, tzinfo=UTC), 0, id="epoch"),
        pytest.param(datetime(2026, 11, 22, 10, tzinfo=UTC), 1_795_341_600_000, id="utc"),
        pytest.param(
            datetime(2026, 11, 22, 11, tzinfo=ZoneInfo("Europe/Berlin")),
            1_795_341_600_000,
            id="zoned",
        ),
        pytest.param(
            datetime(2026, 11, 22, 10, 0, 0, 999_999, tzinfo=UTC),
            1_795_341_600_999,
            id="micros-floored",
        ),
    ],
)
def test_to_ms_is_exact_epoch_milliseconds(moment: datetime, expected_ms: int) -> None:
    assert to_ms(moment) == expected_ms
    assert from_ms(expected_ms) == moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@pytest.mark.parametrize(
    "now",
    [
        pytest.param("2026-11-22T10:00:00Z", id="on-the-minute"),
        pytest.param("2026-11-22T10:00:59.999Z", id="end-of-minute"),
        pytest.param("2026-11-22T00:00:30Z", id="just-after-midnight"),
    ],
)
@pytest.mark.parametrize(("window", "minutes"), [("15m", 15), ("1h", 60), ("24h", 1440)])
def test_rolling_window_holds_the_last_n_buckets_through_bucket_now(
    now: str, window: str, minutes: int
) -> None:
    now_ms = utc_ms(now)
    first, last = window_buckets(now_ms, ZoneInfo("UTC"))[window]
    assert last == bucket(now_ms)
    assert last - first + 1 == minutes


@pytest.mark.parametrize(
    ("zone", "now", "local_midnight"),
    [
        pytest.param("UTC", "2026-11-22T10:00:30Z", "2026-11-22T00:00:00Z", id="utc"),
        pytest.param("UTC", "2026-11-22T00:00:00Z", "2026-11-22T00:00:00Z", id="utc-at-midnight"),
        pytest.param(
            "UTC", "2026-11-21T23:59:59.999Z", "2026-11-21T00:00:00Z", id="utc-last-ms-of-day"
        ),
        pytest.param(
            "Europe/Berlin", "2026-11-22T10:00:00Z", "2026-11-21T23:00:00Z", id="berlin-winter"
        ),
        pytest.param(
            "Europe/Berlin",
            "2026-03-29T00:30:00Z",
            "2026-03-28T23:00:00Z",
            id="berlin-spring-before-the-jump",
        ),
        pytest.param(
            "Europe/Berlin",
            "2026-03-29T10:00:00Z",
            "2026-03-28T23:00:00Z",
            id="berlin-spring-23h-day",
        ),
        pytest.param(
            "Europe/Berlin",
            "2026-03-30T10:00:00Z",
            "2026-03-29T22:00:00Z",
            id="berlin-day-after-spring",
        ),
        pytest.param(
            "Europe/Berlin",
            "2026-10-25T00:30:00Z",
            "2026-10-24T22:00:00Z",
            id="berlin-autumn-first-0230",
        ),
        pytest.param(
            "Europe/Berlin",
            "2026-10-25T01:30:00Z",
            "2026-10-24T22:00:00Z",
            id="berlin-autumn-second-0230",
        ),
        pytest.param(
            "Europe/Berlin",
            "2026-10-25T22:59:00Z",
            "2026-10-24T22:00:00Z",
            id="berlin-autumn-25h-day-last-minute",
        ),
        pytest.param(
            "Europe/Berlin",
            "2026-10-25T23:00:00Z",
            "2026-10-25T23:00:00Z",
            id="berlin-after-autumn-midnight",
        ),
        pytest.param(
            "America/New_York",
            "2026-03-08T16:00:00Z",
            "2026-03-08T05:00:00Z",
            id="new-york-spring",
        ),
        pytest.param(
            "America/New_York",
            "2026-03-08T04:59:00Z",
            "2026-03-07T05:00:00Z",
            id="new-york-last-minute-before-spring-day",
        ),
        pytest.param(
            "America/New_York",
            "2026-11-01T06:30:00Z",
            "2026-11-01T04:00:00Z",
            id="new-york-autumn-second-0130",
        ),
        pytest.param(
            "America/New_York",
            "2026-11-01T17:00:00Z",
            "2026-11-01T04:00:00Z",
            id="new-york-autumn-25h-day",
        ),
        pytest.param(
            "America/Santiago",
            "2026-09-05T15:00:00Z",
            "2026-09-05T04:00:00Z",
            id="santiago-day-before-skipped-midnight",
        ),
        pytest.param(
            "America/Santiago",
            "2026-09-06T04:00:00Z",
            "2026-09-06T04:00:00Z",
            id="santiago-day-starts-at-0100-exactly",
        ),
        pytest.param(
            "America/Santiago",
            "2026-09-06T15:00:00Z",
            "2026-09-06T04:00:00Z",
            id="santiago-midnight-skipped",
        ),
        pytest.param(
            "America/Santiago",
            "2026-04-05T03:30:00Z",
            "2026-04-04T03:00:00Z",
            id="santiago-repeated-2330-belongs-to-saturday",
        ),
        pytest.param(
            "America/Santiago",
            "2026-04-05T15:00:00Z",
            "2026-04-05T04:00:00Z",
            id="santiago-after-autumn",
        ),
        pytest.param(
            "Asia/Beirut",
            "2026-03-29T09:00:00Z",
            "2026-03-28T22:00:00Z",
            id="beirut-midnight-skipped",
        ),
        pytest.param(
            "Asia/Beirut", "2026-03-28T21:59:00Z", "2026-03-27T22:00:00Z", id="beirut-day-before"
        ),
        pytest.param(
            "America/Havana",
            "2026-03-08T12:00:00Z",
            "2026-03-08T05:00:00Z",
            id="havana-midnight-skipped",
        ),
        pytest.param(
            "Africa/Cairo",
            "2026-04-24T10:00:00Z",
            "2026-04-23T22:00:00Z",
            id="cairo-midnight-skipped",
        ),
        pytest.param(
            "Asia/Kolkata", "2026-11-22T10:00:00Z", "2026-11-21T18:30:00Z", id="half-hour-offset"
        ),
        pytest.param(
            "Asia/Kathmandu", "2026-11-22T10:00:00Z", "2026-11-21T18:15:00Z", id="45-minute-offset"
        ),
        pytest.param(
            "Australia/Lord_Howe",
            "2026-10-04T12:00:00Z",
            "2026-10-03T13:30:00Z",
            id="lord-howe-30-minute-dst",
        ),
        pytest.param(
            "Pacific/Kiritimati", "2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z", id="plus-14"
        ),
        pytest.param(
            "Pacific/Pago_Pago", "2026-11-22T10:00:00Z", "2026-11-21T11:00:00Z", id="minus-11"
        ),
    ],
)
def test_today_starts_at_local_midnight_in_the_configured_zone(
    zone: str, now: str, local_midnight: str
) -> None:
    now_ms = utc_ms(now)
    assert window_buckets(now_ms, ZoneInfo(zone))["today"] == (
        bucket(utc_ms(local_midnight)),
        bucket(now_ms),
    )


def test_rolling_windows_ignore_the_zone() -> None:
    now_ms = utc_ms("2026-03-29T10:00:00Z")
    utc = window_buckets(now_ms, ZoneInfo("UTC"))
    berlin = window_buckets(now_ms, ZoneInfo("Europe/Berlin"))
    assert {w: utc[w] for w in ("15m", "1h", "24h")} == {w: berlin[w] for w in ("15m", "1h", "24h")}


DST_ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "Asia/Beirut",
    "America/Havana",
    "Africa/Cairo",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
]
TRANSITION_DAYS = [
    datetime(2026, 3, 29, tzinfo=UTC),
    datetime(2026, 10, 25, tzinfo=UTC),
    datetime(2026, 3, 8, tzinfo=UTC),
    datetime(2026, 11, 1, tzinfo=UTC),
    datetime(2026, 9, 6, tzinfo=UTC),
    datetime(2026, 4, 5, tzinfo=UTC),
    datetime(2026, 4, 24, tzinfo=UTC),
    datetime(2026, 10, 4, tzinfo=UTC),
]


def first_minute_of_local_day(now: datetime, tz: ZoneInfo) -> datetime:
    """Brute force: walk back minute by minute while the local date stays the same."""
    day = now.astimezone(tz).date()
    minute = now.replace(second=0, microsecond=0)
    while (minute - timedelta(minutes=1)).astimezone(tz).date() == day:
        minute -= timedelta(minutes=1)
    return minute


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(DST_ZONES),
    day=st.sampled_from(TRANSITION_DAYS),
    offset_min=st.integers(min_value=-36 * 60, max_value=36 * 60),
)
def test_today_matches_a_brute_force_walk_through_local_dates(
    zone: str, day: datetime, offset_min: int
) -> None:
    tz = ZoneInfo(zone)
    now = day + timedelta(minutes=offset_min, seconds=17)
    first, last = window_buckets(to_ms(now), tz)["today"]
    assert last == bucket(to_ms(now))
    assert first * MINUTE == to_ms(first_minute_of_local_day(now, tz))
