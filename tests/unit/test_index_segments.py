"""Window totals kept as disjoint segments (stream/kpi/index.py): the segments at hand-worked
instants, and a ticket counted while the segments slide counts in every window once."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from kpi_helpers import utc_ms

from stream.kpi.contrib import Layout, contribution
from stream.kpi.index import KpiIndex, segments_of
from stream.kpi.sla import SlaPolicy
from stream.kpi.ticket import Ticket
from stream.kpi.windows import bucket, window_buckets

MINUTE = 60_000


@pytest.mark.parametrize(
    ("now", "zone", "starts_before_now"),
    [
        # 10:30 UTC: today began 630 minutes ago, between the 24h and 1h starts.
        pytest.param("2026-11-22T10:30:00Z", "UTC", (1439, 630, 59, 14), id="mid-morning"),
        # 00:10 UTC: today began 10 minutes ago, after the 15m start.
        pytest.param("2026-11-22T00:10:00Z", "UTC", (1439, 59, 14, 10), id="after-midnight"),
        # 00:14 UTC: today and 15m begin at the same bucket: an empty segment between them.
        pytest.param("2026-11-22T00:14:00Z", "UTC", (1439, 59, 14, 14), id="today-meets-15m"),
        # Berlin's 25-hour day (clocks back at 03:00 CEST): at 23:30 CET today began 1470
        # minutes ago (00:00 CEST = 22:00 UTC the day before), before the 24h window.
        pytest.param(
            "2026-10-25T22:30:00Z", "Europe/Berlin", (1470, 1439, 59, 14), id="25-hour-day"
        ),
    ],
)
def test_segments_cut_the_windows_at_their_starts(
    now: str, zone: str, starts_before_now: tuple[int, ...]
) -> None:
    last = bucket(utc_ms(now))
    starts = [last - minutes for minutes in starts_before_now]
    expected = [
        (starts[0], starts[1] - 1),
        (starts[1], starts[2] - 1),
        (starts[2], starts[3] - 1),
        (starts[3], last),
    ]
    assert segments_of(window_buckets(utc_ms(now), ZoneInfo(zone))) == expected


def test_a_ticket_counts_once_in_each_window_holding_it_while_segments_slide() -> None:
    """Opened 20 minutes before 10:30 UTC and replied 5 minutes before: at 10:30 the
    opening is in the 1h, 24h and today windows, the reply in all four; 50 minutes later
    the reply is out of 15m, the opening out of 1h as well."""
    policy = SlaPolicy()
    layout = Layout(policy)
    now = utc_ms("2026-11-22T10:30:00Z")
    index = KpiIndex(policy, layout, ZoneInfo("UTC"))
    index.snapshot(now - 30 * MINUTE)  # segments placed before the ticket comes
    ticket = Ticket(
        opened_at=now - 20 * MINUTE,
        queue="billing",
        channel="email",
        priority="normal",
        first_reply_at=now - 5 * MINUTE,
        first_reply_event_id="r",
    )
    opened_only = Ticket(
        opened_at=ticket.opened_at, queue="billing", channel="email", priority="normal"
    )
    index.update(None, contribution(opened_only, policy, layout))
    index.update(contribution(opened_only, policy, layout), contribution(ticket, policy, layout))
    dims = ("billing", "email", "normal")
    counts = {
        minutes: {
            name: (cells[dims][Layout.OPENED], cells[dims][Layout.FRT_COUNT])
            for name, cells in index.snapshot(now + minutes * MINUTE).windows.items()
        }
        for minutes in (0, 50)
    }
    assert counts[0] == {"15m": (0, 1), "1h": (1, 1), "24h": (1, 1), "today": (1, 1)}
    # At 11:20 the opening (10:10) is 70 minutes old, the reply (10:25) 55 minutes.
    assert counts[50] == {"15m": (0, 0), "1h": (0, 1), "24h": (1, 1), "today": (1, 1)}
