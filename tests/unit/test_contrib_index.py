"""Contract sections 2-4: a ticket's contribution to minute buckets, and the KPI index."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from kpi_helpers import (
    DAY,
    HOUR,
    MINUTE,
    NOW,
    SECOND,
    first_reply,
    merge,
    opened,
    resolved,
    survey,
    to_event,
    utc_ms,
)

from stream.kpi.contrib import Contribution, Layout, contribution, nps_category
from stream.kpi.index import KpiIndex
from stream.kpi.sla import SlaPolicy
from stream.kpi.snapshot import Live
from stream.kpi.ticket import Ticket
from stream.kpi.types import UNKNOWN_DIMS
from stream.kpi.windows import bucket

POLICY = SlaPolicy()
LAYOUT = Layout(POLICY)
T0 = utc_ms("2026-11-22T08:00:00Z")
URGENT = ("billing", "email", "urgent")
NAMED_SLOTS = {
    Layout.OPENED: "opened",
    Layout.FRT_COUNT: "frt_count",
    Layout.FRT_SUM_MS: "frt_sum_ms",
    Layout.FRT_BREACHES: "frt_breaches",
    Layout.RES_COUNT: "res_count",
    Layout.RES_SUM_MS: "res_sum_ms",
    Layout.RES_BREACHES: "res_breaches",
    Layout.CSAT_COUNT: "csat_count",
    Layout.CSAT_SATISFIED: "csat_satisfied",
    Layout.NPS: "nps_promoter",
    Layout.NPS + 1: "nps_passive",
    Layout.NPS + 2: "nps_detractor",
    Layout.RES_ONE_TOUCH: "res_one_touch",
    Layout.RES_REOPENED: "res_reopened",
    Layout.RES_REPLIES_SUM: "res_replies",
}


def slot_name(slot: int, layout: Layout = LAYOUT) -> str:
    if slot in NAMED_SLOTS:
        return NAMED_SLOTS[slot]
    if layout.frt_hist <= slot < layout.res_hist:
        return f"frt_le_{_le(layout.frt_bounds_ms, slot - layout.frt_hist)}"
    return f"res_le_{_le(layout.res_bounds_ms, slot - layout.res_hist)}"


def _le(bounds_ms: tuple[int, ...], position: int) -> str:
    return "inf" if position == len(bounds_ms) else str(bounds_ms[position] // SECOND)


def described(found: Contribution) -> dict[int, dict[str, int]]:
    """Non-zero increments by minute offset from T0, with readable slot names."""
    parts: dict[int, dict[str, int]] = {}
    for b, _, increments in found.parts:
        named = parts.setdefault(b - bucket(T0), {})
        for slot, amount in increments:
            if amount:
                named[slot_name(slot)] = named.get(slot_name(slot), 0) + amount
    return parts


def ticket_of(*events: dict[str, Any]) -> Ticket:
    ticket: Ticket | None = None
    for event in events:
        ticket, _ = merge(ticket, to_event(event))
    assert ticket is not None
    return ticket


def at(minutes: float) -> int:
    return T0 + round(minutes * MINUTE)


def urgent_opened(ticket_id: str = "t", when: int = T0) -> dict[str, Any]:
    return opened(ticket_id, when, priority="urgent")


CONTRIBUTIONS = [
    # (events, dims, parts by minute offset, open, awaiting since)
    pytest.param(
        [urgent_opened()], URGENT, {0: {"opened": 1}}, True, T0, id="opened-awaits-first-reply"
    ),
    pytest.param(
        [urgent_opened(), first_reply("t", at(10))],
        URGENT,
        {0: {"opened": 1}, 10: {"frt_count": 1, "frt_sum_ms": 600_000, "frt_le_900": 1}},
        True,
        None,
        id="answered-in-600s-within-target",
    ),
    pytest.param(
        [urgent_opened(), first_reply("t", at(15))],
        URGENT,
        {0: {"opened": 1}, 15: {"frt_count": 1, "frt_sum_ms": 900_000, "frt_le_900": 1}},
        True,
        None,
        id="answered-exactly-at-target-no-breach",
    ),
    pytest.param(
        [urgent_opened(), first_reply("t", T0 + 900_001)],
        URGENT,
        {
            0: {"opened": 1},
            15: {"frt_count": 1, "frt_sum_ms": 900_001, "frt_breaches": 1, "frt_le_1800": 1},
        },
        True,
        None,
        id="answered-1ms-over-target-breaches",
    ),
    pytest.param(
        [urgent_opened(), first_reply("t", at(1))],
        URGENT,
        {0: {"opened": 1}, 1: {"frt_count": 1, "frt_sum_ms": 60_000, "frt_le_60": 1}},
        True,
        None,
        id="answered-in-60s-le-60",
    ),
    pytest.param(
        [urgent_opened(), first_reply("t", at(4 * 24 * 60))],
        URGENT,
        {
            0: {"opened": 1},
            5760: {
                "frt_count": 1,
                "frt_sum_ms": 4 * DAY,
                "frt_breaches": 1,
                "frt_le_inf": 1,
            },
        },
        True,
        None,
        id="answered-after-4-days-le-inf",
    ),
    pytest.param(
        [urgent_opened(), first_reply("t", at(-5))],
        URGENT,
        {0: {"opened": 1}, -5: {"frt_count": 1, "frt_le_60": 1}},
        True,
        None,
        id="reply-before-opened-clamped-to-0-in-reply-bucket",
    ),
    pytest.param(
        [urgent_opened(), first_reply("t", at(5)), resolved("t", at(60))],
        URGENT,
        {
            0: {"opened": 1},
            5: {"frt_count": 1, "frt_sum_ms": 300_000, "frt_le_300": 1},
            60: {
                "res_count": 1,
                "res_sum_ms": HOUR,
                "res_le_3600": 1,
                "res_one_touch": 1,
                "res_replies": 1,
            },
        },
        False,
        None,
        id="resolved-is-no-longer-open",
    ),
    pytest.param(
        [urgent_opened(), resolved("t", T0 + 4 * HOUR + 1)],
        URGENT,
        {
            0: {"opened": 1},
            240: {
                "res_count": 1,
                "res_sum_ms": 4 * HOUR + 1,
                "res_breaches": 1,
                "res_le_28800": 1,
            },
        },
        False,
        None,
        id="resolved-without-reply-over-target",
    ),
    pytest.param(
        [urgent_opened(), resolved("t", at(-1))],
        URGENT,
        {0: {"opened": 1}, -1: {"res_count": 1, "res_le_900": 1}},
        False,
        None,
        id="resolved-before-opened-clamped-to-0",
    ),
    pytest.param(
        [survey("t", at(30), "csat", 4)],
        UNKNOWN_DIMS,
        {30: {"csat_count": 1, "csat_satisfied": 1}},
        False,
        None,
        id="survey-of-never-opened-under-unknown",
    ),
    pytest.param(
        [survey("t", at(30), "nps", 9), urgent_opened()],
        URGENT,
        {0: {"opened": 1}, 30: {"nps_promoter": 1}},
        True,
        T0,
        id="survey-moves-once-opened-arrives",
    ),
    pytest.param(
        [urgent_opened(), survey("t", at(30), "csat", 3), survey("t", at(40), "nps", 7)],
        URGENT,
        {0: {"opened": 1}, 30: {"csat_count": 1}, 40: {"nps_passive": 1}},
        True,
        T0,
        id="both-surveys-in-their-own-buckets",
    ),
]


@pytest.mark.parametrize(("events", "dims", "parts", "is_open", "awaiting"), CONTRIBUTIONS)
def test_contribution_of_a_ticket(
    events: list[dict[str, Any]],
    dims: tuple[str, str, str],
    parts: dict[int, dict[str, int]],
    is_open: bool,
    awaiting: int | None,
) -> None:
    found = contribution(ticket_of(*events), POLICY, LAYOUT)
    assert found is not None
    assert found.dims == dims
    assert described(found) == parts
    # 24/7 policy: the SLA clock is the instant itself.
    assert (found.open, found.awaiting) == (is_open, awaiting)  # calendar time: opened_at


@pytest.mark.parametrize(
    "events",
    [
        pytest.param([first_reply("t", T0)], id="first-reply-without-opened"),
        pytest.param([resolved("t", T0)], id="resolved-without-opened"),
        pytest.param([first_reply("t", T0), resolved("t", at(9))], id="both-ends-missing-opened"),
    ],
)
def test_measurement_needs_the_opened_event(events: list[dict[str, Any]]) -> None:
    assert contribution(ticket_of(*events), POLICY, LAYOUT) is None


@pytest.mark.parametrize(
    ("score", "satisfied"), [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1)], ids=lambda v: str(v)
)
def test_csat_satisfied_when_score_at_least_4(score: int, satisfied: int) -> None:
    found = contribution(ticket_of(survey("t", T0, "csat", score)), POLICY, LAYOUT)
    assert found is not None
    assert described(found) == {
        0: {"csat_count": 1, "csat_satisfied": satisfied} if satisfied else {"csat_count": 1}
    }


@pytest.mark.parametrize(
    ("score", "category"),
    [
        *[(s, "detractor") for s in range(7)],
        (7, "passive"),
        (8, "passive"),
        (9, "promoter"),
        (10, "promoter"),
    ],
)
def test_nps_category_by_score(score: int, category: str) -> None:
    found = contribution(ticket_of(survey("t", T0, "nps", score)), POLICY, LAYOUT)
    assert found is not None
    assert described(found) == {0: {f"nps_{category}": 1}}
    assert ("promoter", "passive", "detractor")[nps_category(score)] == category


def test_default_histogram_bounds_are_the_contract_le_values() -> None:
    frt = [60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200]
    res = [900, 3600, 14400, 28800, 86400, 172800, 259200, 604800]
    assert LAYOUT.frt_bounds_ms == tuple(s * SECOND for s in frt)
    assert LAYOUT.res_bounds_ms == tuple(s * SECOND for s in res)


def test_configured_targets_become_histogram_bounds() -> None:
    policy = SlaPolicy(
        first_response_ms={"urgent": 600_000, "high": 3_600_000, "normal": 1_500, "low": 60_000},
        resolution_ms={"urgent": 7_200_000, "high": 1, "normal": 259_200_000, "low": 2 * DAY},
    )
    layout = Layout(policy)
    assert layout.frt_bounds_ms == (
        1_500, 60_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000,
        14_400_000, 28_800_000, 86_400_000, 259_200_000,
    )  # fmt: skip
    assert layout.res_bounds_ms == (
        1, 900_000, 3_600_000, 7_200_000, 14_400_000, 28_800_000, 86_400_000,
        172_800_000, 259_200_000, 604_800_000,
    )  # fmt: skip
    assert layout.size == layout.res_hist + len(layout.res_bounds_ms) + 1
    assert layout.res_hist == layout.frt_hist + len(layout.frt_bounds_ms) + 1


# --- KpiIndex ---------------------------------------------------------------------------


def index_of(*events: dict[str, Any], tz: str = "UTC", policy: SlaPolicy = POLICY) -> KpiIndex:
    """An index fed with the tickets the events make up."""
    tickets: dict[str, Ticket] = {}
    for event in events:
        tickets[event["ticket_id"]], _ = merge(tickets.get(event["ticket_id"]), to_event(event))
    index = KpiIndex(policy, Layout(policy), ZoneInfo(tz))
    for ticket in tickets.values():
        index.update(None, contribution(ticket, policy, index.layout))
    return index


def first_responses(index: KpiIndex, now: int, dims: tuple[str, str, str]) -> dict[str, int]:
    snapshot = index.snapshot(now)
    return {
        w: cells[dims][Layout.FRT_COUNT] for w, cells in snapshot.windows.items() if dims in cells
    }


BILLING = ("billing", "email", "normal")


@pytest.mark.parametrize(
    ("reply_at", "windows"),
    [
        pytest.param("2026-11-22T10:00:00Z", {"15m", "1h", "24h", "today"}, id="bucket-now"),
        pytest.param("2026-11-22T09:46:00Z", {"15m", "1h", "24h", "today"}, id="15m-first"),
        pytest.param("2026-11-22T09:45:59.999Z", {"1h", "24h", "today"}, id="15m-just-out"),
        pytest.param("2026-11-22T09:01:00Z", {"1h", "24h", "today"}, id="1h-first"),
        pytest.param("2026-11-22T09:00:59.999Z", {"24h", "today"}, id="1h-just-out"),
        pytest.param("2026-11-22T00:00:00Z", {"24h", "today"}, id="today-first"),
        pytest.param("2026-11-21T23:59:59.999Z", {"24h"}, id="yesterday"),
        pytest.param("2026-11-21T10:01:00Z", {"24h"}, id="24h-first"),
        pytest.param("2026-11-21T10:00:59.999Z", set(), id="24h-just-out"),
        pytest.param("2026-11-22T10:04:00Z", set(), id="ahead-of-now"),
    ],
)
def test_measurement_counts_in_the_windows_holding_its_bucket(
    reply_at: str, windows: set[str]
) -> None:
    reply_ms = utc_ms(reply_at)
    index = index_of(opened("t", reply_ms - 3 * DAY), first_reply("t", reply_ms))
    counts = first_responses(index, NOW, BILLING)
    assert {w for w, n in counts.items() if n} == windows
    assert set(counts.values()) <= {0, 1}


@pytest.mark.parametrize(
    ("zone", "in_today"),
    [("UTC", False), ("Europe/Berlin", True), ("America/New_York", False), ("Asia/Tokyo", True)],
)
def test_today_window_follows_the_configured_zone(zone: str, in_today: bool) -> None:
    reply_ms = utc_ms("2026-11-21T23:30:00Z")  # 00:30 in Berlin, 18:30 in New York
    index = index_of(opened("t", reply_ms - HOUR), first_reply("t", reply_ms), tz=zone)
    assert first_responses(index, NOW, BILLING)["today"] == int(in_today)


def test_late_event_updates_the_bucket_of_its_own_event_time() -> None:
    index = index_of(opened("a", NOW - 5 * MINUTE), first_reply("a", NOW - MINUTE))
    assert first_responses(index, NOW, BILLING) == {"15m": 1, "1h": 1, "24h": 1, "today": 1}
    late = ticket_of(opened("b", NOW - 4 * HOUR), first_reply("b", NOW - 2 * HOUR))
    index.update(None, contribution(late, POLICY, LAYOUT))
    assert first_responses(index, NOW, BILLING) == {"15m": 1, "1h": 1, "24h": 2, "today": 2}


def test_update_replaces_the_old_contribution_with_the_new() -> None:
    index = index_of()
    before = ticket_of(opened("t", NOW - 3 * HOUR), first_reply("t", NOW - 5 * MINUTE))
    after, _ = merge(before, to_event(first_reply("t", NOW - 2 * HOUR)))  # an earlier reply
    index.update(None, contribution(before, POLICY, LAYOUT))
    index.snapshot(NOW)
    index.update(contribution(before, POLICY, LAYOUT), contribution(after, POLICY, LAYOUT))
    snapshot = index.snapshot(NOW)
    assert first_responses(index, NOW, BILLING) == {"15m": 0, "1h": 0, "24h": 1, "today": 1}
    assert snapshot.windows["24h"][BILLING][Layout.FRT_SUM_MS] == HOUR


def test_removing_every_contribution_leaves_an_empty_snapshot() -> None:
    ticket = ticket_of(opened("t", NOW - HOUR), first_reply("t", NOW - MINUTE))
    index = index_of()
    index.update(None, contribution(ticket, POLICY, LAYOUT))
    index.snapshot(NOW)
    index.update(contribution(ticket, POLICY, LAYOUT), None)
    snapshot = index.snapshot(NOW)
    assert snapshot.live == {}
    assert all(cells == {} for cells in snapshot.windows.values())


@pytest.mark.parametrize(
    ("age_minutes", "exported"),
    [
        pytest.param(25 * 60, True, id="25h"),
        pytest.param(26 * 60 - 1, True, id="25h59m"),
        pytest.param(26 * 60, False, id="26h"),
        pytest.param(27 * 60, False, id="27h"),
    ],
)
def test_label_set_seen_in_last_26h_is_exported_with_zeros(
    age_minutes: int, exported: bool
) -> None:
    when = (bucket(NOW) - age_minutes) * MINUTE
    index = index_of(survey("t", when, "csat", 5))
    snapshot = index.snapshot(NOW)
    for window in ("15m", "1h", "24h", "today"):
        cells = snapshot.windows[window]
        if exported:
            assert cells == {UNKNOWN_DIMS: LAYOUT.zeros()}, window
        else:
            assert cells == {}, window
    assert (UNKNOWN_DIMS in snapshot.live) is exported


def test_open_ticket_older_than_26h_still_shows_in_live_gauges() -> None:
    index = index_of(opened("t", NOW - 30 * HOUR, priority="low"))
    snapshot = index.snapshot(NOW)
    dims = ("billing", "email", "low")
    assert snapshot.windows["24h"] == {}
    assert snapshot.live == {dims: Live(open=1, breached=1, oldest_awaiting=NOW - 30 * HOUR)}


def urgent_at(ticket_id: str, minutes_ago: float) -> dict[str, Any]:
    return opened(ticket_id, NOW - round(minutes_ago * MINUTE), priority="urgent")


def test_live_counts_open_and_awaiting_tickets_by_sla_state() -> None:
    index = index_of(
        urgent_at("ok", 10),  # 600 s < 675 s
        urgent_at("risk-edge", 11.25),  # exactly 75 % of 900 s
        urgent_at("risk-target", 15),  # exactly the target: not yet breached
        urgent_at("late", 15.5),
        urgent_at("answered", 40),
        first_reply("answered", NOW - 30 * MINUTE),
        urgent_at("closed", 50),
        resolved("closed", NOW - MINUTE),
    )
    snapshot = index.snapshot(NOW)
    assert snapshot.live[URGENT] == Live(
        open=5, ok=1, at_risk=2, breached=1, oldest_awaiting=NOW - 930 * SECOND
    )


def test_live_state_moves_with_the_clock_without_events() -> None:
    index = index_of(urgent_at("t", 0))
    states = []
    for minutes in (0, 11, 12, 15, 16, 600):
        live = index.snapshot(NOW + minutes * MINUTE).live[URGENT]
        states.append((live.ok, live.at_risk, live.breached))
    assert states == [(1, 0, 0), (1, 0, 0), (0, 1, 0), (0, 1, 0), (0, 0, 1), (0, 0, 1)]


def test_live_counts_are_per_label_set() -> None:
    index = index_of(
        opened("a", NOW - HOUR, queue="sales", priority="high"),
        opened("b", NOW - 2 * HOUR, queue="sales", priority="high"),
        opened("c", NOW - 3 * HOUR, queue="support", channel="chat", priority="low"),
    )
    live = index.snapshot(NOW).live
    assert live[("sales", "email", "high")] == Live(
        open=2, ok=0, at_risk=1, breached=1, oldest_awaiting=NOW - 2 * HOUR
    )
    assert live[("support", "chat", "low")] == Live(open=1, ok=1, oldest_awaiting=NOW - 3 * HOUR)


def busy_index() -> KpiIndex:
    events: list[dict[str, Any]] = []
    for n in range(0, 30 * 60, 37):
        ticket_id = f"t{n}"
        events += [
            opened(ticket_id, NOW - n * MINUTE - HOUR, queue=f"q{n % 3}"),
            first_reply(ticket_id, NOW - n * MINUTE),
            survey(ticket_id, NOW - n * MINUTE + 5 * MINUTE, "nps", n % 11),
        ]
    return index_of(*events, tz="Europe/Berlin")


@pytest.mark.parametrize(
    "gap_minutes",
    [
        pytest.param(1, id="1min"),
        pytest.param(14, id="14min"),
        pytest.param(119, id="119min"),
        pytest.param(120, id="120min"),
        pytest.param(121, id="121min"),
        pytest.param(200, id="200min"),
        pytest.param(1439, id="1439min"),
        pytest.param(1441, id="1441min"),
        pytest.param(3000, id="3000min"),
    ],
)
def test_index_advanced_across_a_gap_equals_a_fresh_index(gap_minutes: int) -> None:
    """Window totals slid from an earlier snapshot must equal totals built from scratch."""
    index = busy_index()
    index.snapshot(NOW)
    later = NOW + gap_minutes * MINUTE
    assert index.snapshot(later) == busy_index().snapshot(later)


def test_24h_window_drops_buckets_that_left_it_while_unscraped_for_over_2h() -> None:
    """KpiIndex.advance drops buckets older than 26 h before it slides the 24h window, so
    buckets that leave the window between two snapshots more than 120 min apart are never
    subtracted: the 24h totals keep counting them."""
    old_reply = NOW - 1400 * MINUTE
    new_reply = NOW + 100 * MINUTE
    events = [
        opened("old", old_reply - MINUTE),
        first_reply("old", old_reply),
        opened("new", new_reply - MINUTE),
        first_reply("new", new_reply),
    ]
    index = index_of(*events)
    assert first_responses(index, NOW, BILLING)["24h"] == 1
    later = NOW + 200 * MINUTE  # the old reply is now 1600 min old: outside 24h
    assert first_responses(index, later, BILLING)["24h"] == 1
