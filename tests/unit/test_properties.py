"""Properties of the whole KPI core (hypothesis): order independence, exact incremental
updates, snapshot hand-over, and a direct reading of the contract as an oracle."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kpi_helpers import (
    DAY,
    HOUR,
    MINUTE,
    NOW,
    SECOND,
    exported,
    key,
    line,
    merge,
    opened,
    report,
)

from stream.events import decode
from stream.kpi.contrib import Layout, contribution
from stream.kpi.event import Event
from stream.kpi.index import KpiIndex
from stream.kpi.settings import KpiConfig
from stream.kpi.sla import SlaPolicy
from stream.kpi.snapshot import Snapshot
from stream.kpi.ticket import Ticket
from stream.kpi.windows import from_ms
from stream.report import prometheus_text, samples

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# Rendering and parsing the text format costs ~20 ms per label set: fewer examples there.
EXPOSITION_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=100)
QUEUES = ["billing", "sales", 'vip "gold"\\\n<b>😀</b>']
CHANNELS = ["phone", "email", "chat", "social", "web", "other"]
PRIORITIES = ["low", "normal", "high", "urgent"]
ZONES = ["UTC", "Europe/Berlin", "America/Santiago"]
OFFSETS_MIN = [0, 60, -300, 330, 840, -660]
KINDS = ["opened", "first_reply", "resolved", "csat", "nps", "replied", "reopened"]
# The agent_id of a reply or resolve (section 8): absent, null and empty are "unassigned".
AGENT_FIELDS: list[dict[str, Any]] = [{}, {"agent_id": None}, {"agent_id": ""}] + [
    {"agent_id": a} for a in ("a1", "a2", "a3")
]


@st.composite
def ticket_events(draw: st.DrawFn, ticket_id: str) -> list[dict[str, Any]]:
    """Every event of one ticket: conflicting opens, several replies, re-solves, surveys.

    Times have whole seconds so that ties (and the event_id tie-break) happen often; event
    ids are numbered in draw order, which is unrelated to time order.
    """
    age = draw(st.sampled_from([0, 0, 0, 20 * HOUR, 34 * DAY, 36 * DAY]))
    base = NOW - age - draw(st.integers(0, 30 * 3600)) * SECOND
    drawn = draw(
        st.lists(
            st.tuples(st.sampled_from(KINDS), st.integers(-2 * 3600, 10 * 3600)),
            min_size=1,
            max_size=7,
        )
    )
    events = []
    for number, (kind, offset_s) in enumerate(drawn):
        at = min(base + offset_s * SECOND, NOW + 300 * SECOND)
        common = {"event_id": f"{ticket_id}:{number}", "ticket_id": ticket_id, "occurred_at": at}
        if kind == "opened":
            fields = {
                "type": "ticket.opened",
                "queue": draw(st.sampled_from(QUEUES)),
                "channel": draw(st.sampled_from(CHANNELS)),
                "priority": draw(st.sampled_from(PRIORITIES)),
            }
        elif kind == "reopened":
            fields = {"type": "ticket.reopened"}
        elif kind in ("first_reply", "resolved", "replied"):
            fields = {"type": f"ticket.{kind}", **draw(st.sampled_from(AGENT_FIELDS))}
        else:
            low, top = (1, 5) if kind == "csat" else (0, 10)
            score = draw(st.integers(low, top))
            fields = {"type": "survey.responded", "survey": kind, "score": score}
        events.append({**common, **fields})
    return events


@st.composite
def event_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events of 1..5 tickets, with occurred_at as epoch milliseconds."""
    count = draw(st.integers(1, 5))
    return [e for n in range(count) for e in draw(ticket_events(f"ticket-{n}"))]


def rendered(event: dict[str, Any], offset_min: int | None) -> bytes:
    """The event's JSON line, occurred_at as epoch ms (None) or RFC 3339 at an offset."""
    if offset_min is None:
        return line(event)
    local = from_ms(event["occurred_at"]).astimezone(timezone(timedelta(minutes=offset_min)))
    text = local.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return line({**event, "occurred_at": text})


def notation() -> st.SearchStrategy[int | None]:
    return st.one_of(st.none(), st.sampled_from(OFFSETS_MIN))


@PROPERTY_SETTINGS
@given(
    events=event_sets(),
    zone=st.sampled_from(ZONES),
    max_queues=st.sampled_from([1, 2, 100]),
    max_agents=st.sampled_from([1, 200]),
    data=st.data(),
)
def test_any_permutation_with_any_duplicates_gives_identical_report(
    events: list[dict[str, Any]], zone: str, max_queues: int, max_agents: int, data: st.DataObject
) -> None:
    config = KpiConfig(max_queues=max_queues, max_agents=max_agents)
    expected = prometheus_text(report(events, config=config, tz=zone), per_agent=True)
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
    lines = [rendered(e, data.draw(notation())) for e in [*events, *duplicates]]
    shuffled = data.draw(st.permutations(lines))
    result = report(shuffled, config=config, tz=zone)
    assert result.duplicates == len(duplicates)
    assert prometheus_text(result, per_agent=True) == expected


POLICY = SlaPolicy()
LAYOUT = Layout(POLICY)


def decoded(event: dict[str, Any]) -> Event:
    found = decode(line(event), NOW)
    assert isinstance(found, Event)
    return found


def rebuilt_index(tickets: dict[str, Ticket], zone: str) -> KpiIndex:
    index = KpiIndex(POLICY, LAYOUT, ZoneInfo(zone))
    for ticket in tickets.values():
        index.update(None, contribution(ticket, POLICY, LAYOUT))
    return index


def final_tickets(events: list[dict[str, Any]]) -> dict[str, Ticket]:
    tickets: dict[str, Ticket] = {}
    for event in events:
        tickets[event["ticket_id"]], _ = merge(tickets.get(event["ticket_id"]), decoded(event))
    return tickets


@PROPERTY_SETTINGS
@given(events=event_sets(), zone=st.sampled_from(ZONES), data=st.data())
def test_incremental_index_updates_equal_a_rebuild_from_final_tickets(
    events: list[dict[str, Any]], zone: str, data: st.DataObject
) -> None:
    arrivals = data.draw(st.permutations([*events, *events[: len(events) // 2]]))
    tickets: dict[str, Ticket] = {}
    index = KpiIndex(POLICY, LAYOUT, ZoneInfo(zone))
    for event in arrivals:
        old = tickets.get(event["ticket_id"])
        new, _ = merge(old, decoded(event))
        tickets[event["ticket_id"]] = new
        before = None if old is None else contribution(old, POLICY, LAYOUT)
        index.update(before, contribution(new, POLICY, LAYOUT))
        if data.draw(st.integers(0, 3)) == 0:
            index.snapshot(NOW)  # scrapes in between must not disturb the totals
    assert index.snapshot(NOW) == rebuilt_index(tickets, zone).snapshot(NOW)


@PROPERTY_SETTINGS
@given(events=event_sets(), zone=st.sampled_from(ZONES))
def test_snapshot_json_round_trip(events: list[dict[str, Any]], zone: str) -> None:
    snapshot = rebuilt_index(final_tickets(events), zone).snapshot(NOW)
    snapshot.partitions = frozenset({1, 7})
    assert Snapshot.from_json(snapshot.to_json()) == snapshot
    capped = snapshot.cap_queues(1)
    assert Snapshot.from_json(capped.to_json()) == capped


@PROPERTY_SETTINGS
@given(
    events=event_sets(),
    zone=st.sampled_from(ZONES),
    partitions=st.integers(1, 4),
    max_queues=st.sampled_from([1, 2, 100]),
)
def test_merged_partition_snapshots_equal_one_snapshot_of_all(
    events: list[dict[str, Any]], zone: str, partitions: int, max_queues: int
) -> None:
    tickets = final_tickets(events)
    merged = Snapshot(NOW)
    for partition in range(partitions):
        mine = {
            tid: t
            for tid, t in tickets.items()
            if zlib.crc32(tid.encode()) % partitions == partition
        }
        part = rebuilt_index(mine, zone).snapshot(NOW)
        part.partitions = frozenset({partition})
        merged.merge(Snapshot.from_json(part.to_json()))
    whole = rebuilt_index(tickets, zone).snapshot(NOW)
    whole.partitions = frozenset(range(partitions))
    assert merged == whole
    assert merged.cap_queues(max_queues) == whole.cap_queues(max_queues)


@settings(
    PROPERTY_SETTINGS,
    max_examples=100,
    # Shrinking a failure here takes minutes; test_contrib_index has minimal examples.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(events=event_sets(), gaps=st.lists(st.integers(0, 3000 * MINUTE), min_size=1, max_size=4))
def test_index_slid_through_time_equals_a_fresh_index_at_every_instant(
    events: list[dict[str, Any]], gaps: list[int]
) -> None:
    """Scrapes at increasing instants (any gap) must give what a fresh index gives."""
    tickets = final_tickets(events)
    index = rebuilt_index(tickets, "Europe/Berlin")
    now = NOW
    index.snapshot(now)
    for gap in gaps:
        now += gap
        assert index.snapshot(now) == rebuilt_index(tickets, "Europe/Berlin").snapshot(now)


label_text = st.text(min_size=1, max_size=128).filter(lambda q: q not in ("unknown", "other"))


@EXPOSITION_SETTINGS
@given(queues=st.lists(label_text, min_size=1, max_size=3, unique=True))
def test_any_queue_name_round_trips_through_the_exposition(queues: list[str]) -> None:
    events = [opened(f"t{n}", NOW - HOUR, queue=q) for n, q in enumerate(queues)]
    parsed = exported(report(events))
    found = {dict(labels)["queue"] for name, labels in parsed if name == "cs_tickets_open"}
    assert found == set(queues)
    for queue in queues:
        open_key = key("cs_tickets_open", queue=queue, channel="email", priority="normal")
        assert parsed[open_key] == 1


# --- A direct reading of the contract, as an independent oracle ----------------------


@dataclass
class Reference:
    """A ticket as sections 2, 3 and 9 describe it, computed straight from its events."""

    opened: dict[str, Any] | None
    first_reply_at: int | None
    resolved_at: int | None  # None also while a reopen after the last resolve holds
    surveys: dict[str, dict[str, Any]]
    last_event_at: int
    replies: int
    reopens: int


def reference_tickets(events: list[dict[str, Any]]) -> dict[str, Reference]:
    by_ticket: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_ticket.setdefault(event["ticket_id"], []).append(event)
    tickets = {}
    for ticket_id, mine in by_ticket.items():
        opens = [e for e in mine if e["type"] == "ticket.opened"]
        replies = {
            e["event_id"]: e["occurred_at"]
            for e in mine
            if e["type"] in ("ticket.first_reply", "ticket.replied")
        }
        solves = [e["occurred_at"] for e in mine if e["type"] == "ticket.resolved"]
        reopens = {e["event_id"]: e["occurred_at"] for e in mine if e["type"] == "ticket.reopened"}
        # Resolved when the last resolve is at or after every reopen.
        resolved = max(solves, default=None)
        if resolved is not None and resolved < max(reopens.values(), default=resolved):
            resolved = None
        surveys = {}
        for kind in ("csat", "nps"):
            answers = [e for e in mine if e.get("survey") == kind]
            if answers:
                surveys[kind] = max(answers, key=lambda e: (e["occurred_at"], e["event_id"]))
        tickets[ticket_id] = Reference(
            min(opens, key=lambda e: (e["occurred_at"], e["event_id"])) if opens else None,
            min(replies.values(), default=None),
            resolved,
            surveys,
            max(e["occurred_at"] for e in mine),
            len(replies),
            len(reopens),
        )
    return tickets


WINDOW_MINUTES = {"15m": 15, "1h": 60, "24h": 1440}


def in_window(at: int, window: str) -> bool:
    now_bucket = NOW // MINUTE
    if window == "today":  # UTC
        first = (NOW // DAY) * DAY // MINUTE
    else:
        first = now_bucket - WINDOW_MINUTES[window] + 1
    return first <= at // MINUTE <= now_bucket


def expected_gauges(events: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """Every system-wide KPI gauge at NOW (UTC) computed from the contract's sentences."""
    live = {t: r for t, r in reference_tickets(events).items() if r.last_event_at >= NOW - 35 * DAY}
    gauges: dict[tuple[str, str], float] = {}
    for window in ("15m", "1h", "24h", "today"):
        frt, frt_ok, res, res_ok, csat, nps = [], 0, [], 0, [], []
        one_touch = reopened = replies = 0
        for ticket in live.values():
            o = ticket.opened
            replied, solved = ticket.first_reply_at, ticket.resolved_at
            if o is not None and replied is not None and in_window(replied, window):
                frt.append(max(0, replied - o["occurred_at"]))
                frt_ok += frt[-1] <= POLICY.first_response_ms[o["priority"]]
            if o is not None and solved is not None and in_window(solved, window):
                res.append(max(0, solved - o["occurred_at"]))
                res_ok += res[-1] <= POLICY.resolution_ms[o["priority"]]
                one_touch += ticket.replies == 1 and ticket.reopens == 0
                reopened += ticket.reopens > 0
                replies += ticket.replies
            for kind, answer in ticket.surveys.items():
                if in_window(answer["occurred_at"], window):
                    (csat if kind == "csat" else nps).append(answer["score"])
        if frt:
            gauges["cs_first_response_time_average_seconds", window] = sum(frt) / len(frt) / 1000
            gauges["cs_first_response_sla_attainment_ratio", window] = frt_ok / len(frt)
        if res:
            gauges["cs_resolution_time_average_seconds", window] = sum(res) / len(res) / 1000
            gauges["cs_resolution_sla_attainment_ratio", window] = res_ok / len(res)
            gauges["cs_one_touch_resolution_ratio", window] = one_touch / len(res)
            gauges["cs_reopened_resolution_ratio", window] = reopened / len(res)
            gauges["cs_replies_per_resolution_average", window] = replies / len(res)
        if csat:
            gauges["cs_csat_ratio", window] = sum(s >= 4 for s in csat) / len(csat)
        if nps:
            promoters = sum(s >= 9 for s in nps)
            detractors = sum(s <= 6 for s in nps)
            gauges["cs_nps_score", window] = (promoters - detractors) / len(nps) * 100
    return gauges


def expected_live(events: list[dict[str, Any]]) -> dict[str, float]:
    counts = {"open": 0.0, "ok": 0.0, "at_risk": 0.0, "breached": 0.0}
    oldest = None
    for ticket in reference_tickets(events).values():
        o = ticket.opened
        if ticket.last_event_at < NOW - 35 * DAY or o is None or ticket.resolved_at is not None:
            continue
        counts["open"] += 1
        if ticket.first_reply_at is None:
            waited, target = NOW - o["occurred_at"], POLICY.first_response_ms[o["priority"]]
            state = (
                "breached" if waited > target else "at_risk" if waited >= 0.75 * target else "ok"
            )
            counts[state] += 1
            oldest = o["occurred_at"] if oldest is None else min(oldest, o["occurred_at"])
    if oldest is not None:
        counts["oldest"] = oldest / 1000
    return counts


def exported_samples(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return samples(report(events))


@PROPERTY_SETTINGS
@given(events=event_sets())
def test_kpi_gauges_match_a_direct_reading_of_the_contract(
    events: list[dict[str, Any]],
) -> None:
    found = {
        (s["name"], s["labels"]["window"]): s["value"]
        for s in exported_samples(events)
        if s["labels"].keys() == {"window"}
    }
    expected = expected_gauges(events)
    assert found.keys() == expected.keys()
    for gauge, value in expected.items():
        assert found[gauge] == pytest.approx(value), gauge


@PROPERTY_SETTINGS
@given(events=event_sets())
def test_live_gauges_match_a_direct_reading_of_the_contract(
    events: list[dict[str, Any]],
) -> None:
    found = {"open": 0.0, "ok": 0.0, "at_risk": 0.0, "breached": 0.0}
    oldest = []
    for sample in exported_samples(events):
        if sample["name"] == "cs_tickets_open":
            found["open"] += sample["value"]
        elif sample["name"] == "cs_tickets_awaiting_first_response":
            found[sample["labels"]["sla_state"]] += sample["value"]
        elif sample["name"] == "cs_oldest_awaiting_first_response_opened_timestamp_seconds":
            oldest.append(sample["value"])
    if oldest:
        found["oldest"] = min(oldest)
    assert found == expected_live(events)
