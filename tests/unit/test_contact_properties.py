"""Order and duplicate independence of contacts and agent timelines (hypothesis).

Any arrival order of the same events, with any duplicates, must give the same records
and the same exposition; agent timelines include events older than the 48 h horizon,
which the merge may drop.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kpi_helpers import DAY, HOUR, NOW, SECOND, report, to_event

from stream.kpi import agent, contact
from stream.kpi.agent import HORIZON_MS, Status, Timeline
from stream.kpi.settings import KpiConfig
from stream.kpi.types import TOPIC_OF_TYPE
from stream.processor import Processor
from stream.report import prometheus_text

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
CONTACT_KINDS = ["queued", "answered", "abandoned", "ended", "wrapped"]
STATUSES = ["available", "busy", "after_contact_work", "away", "offline"]


@st.composite
def contact_events(draw: st.DrawFn, contact_id: str) -> list[dict[str, Any]]:
    """Every event of one contact: conflicting queues and answers, abandons, ends, wraps."""
    base = NOW - draw(st.sampled_from([0, 2 * HOUR, 5 * HOUR, 20 * HOUR]))
    drawn = draw(
        st.lists(
            st.tuples(st.sampled_from(CONTACT_KINDS), st.integers(-600, 600)),
            min_size=1,
            max_size=6,
        )
    )
    events = []
    for number, (kind, offset_s) in enumerate(drawn):
        fields: dict[str, Any] = {
            "event_id": f"{contact_id}:{number}",
            "type": f"contact.{kind}",
            "contact_id": contact_id,
            "occurred_at": min(base + offset_s * SECOND, NOW + 300 * SECOND),
        }
        if kind == "queued":
            fields["queue"] = draw(st.sampled_from(["sales", "support"]))
            fields["channel"] = draw(st.sampled_from(["phone", "chat", "video", "other"]))
        elif kind == "answered":
            fields["agent_id"] = draw(st.sampled_from(["a1", "a2", "", None]))
        events.append(fields)
    return events


@st.composite
def agent_events(draw: st.DrawFn, agent_id: str) -> list[dict[str, Any]]:
    """Status events of one agent over the last 4 days (so some are beyond the horizon)."""
    offsets = draw(st.lists(st.integers(-4 * 24 * 3600, 300), min_size=1, max_size=12))
    return [
        {
            "event_id": f"{agent_id}:{number}",
            "type": "agent.status",
            "agent_id": agent_id,
            "occurred_at": NOW + offset_s * SECOND,
            "status": draw(st.sampled_from(STATUSES)),
            "team": draw(st.sampled_from(["blue", "red"])),
        }
        for number, offset_s in enumerate(offsets)
    ]


@st.composite
def shuffled_with_duplicates(draw: st.DrawFn, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same events in another order, some of them sent again."""
    repeats = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    return draw(st.permutations(events + repeats))


@st.composite
def two_orders(
    draw: st.DrawFn, make: Any, count: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    events = [e for n in range(count) for e in draw(make(f"e{n}"))]
    return draw(shuffled_with_duplicates(events)), draw(shuffled_with_duplicates(events))


def fold(events: list[dict[str, Any]], table: str) -> dict[str, bytes]:
    """The changelog records of `table` after the worker's processor folded `events`."""
    processor = Processor(KpiConfig(), ZoneInfo("UTC"), partitions=1)
    for payload in events:
        event = to_event(payload)
        processor.apply(TOPIC_OF_TYPE[event.type], 0, event)
    return dict(processor.records(table, 0))


@PROPERTY_SETTINGS
@given(two_orders(contact_events, 4))
def test_contacts_do_not_depend_on_order_or_duplicates(
    orders: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    first, second = orders
    assert fold(first, "contacts") == fold(second, "contacts")
    assert prometheus_text(report(first), per_agent=True) == prometheus_text(
        report(second), per_agent=True
    )


@PROPERTY_SETTINGS
@given(two_orders(agent_events, 3))
def test_agent_timelines_do_not_depend_on_order_or_duplicates(
    orders: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    first, second = orders
    assert fold(first, "agents") == fold(second, "agents")
    assert prometheus_text(report(first)) == prometheus_text(report(second))


@PROPERTY_SETTINGS
@given(agent_events("a"), st.integers(0, 2 * DAY))
def test_dropped_old_events_never_change_what_is_visible(
    events: list[dict[str, Any]], later_ms: int
) -> None:
    """The pruned timeline shows, at any later `now`, exactly what the whole one shows."""
    record = agent.loads(fold(events, "agents")["a"])
    pruned = Timeline("a", record.timeline)
    statuses = {Status(e["occurred_at"], e["event_id"], e["status"], e["team"]) for e in events}
    whole = Timeline("a", tuple(sorted(statuses)))
    assert set(pruned.events) <= set(whole.events)
    latest = whole.events[-1].at
    now = max(NOW, latest) + later_ms
    for stale_ms in (HOUR, 12 * HOUR):
        assert agent.current(pruned, now, stale_ms) == agent.current(whole, now, stale_ms)
        assert list(agent.stretches(pruned, now, stale_ms)) == list(
            agent.stretches(whole, now, stale_ms)
        )
    recent = [s for s in whole.events if s.at > latest - HORIZON_MS - 300 * SECOND]
    assert len(pruned.events) <= 1 + len(recent)


@PROPERTY_SETTINGS
@given(contact_events("c"))
def test_contact_codec_round_trips(events: list[dict[str, Any]]) -> None:
    raw = fold(events, "contacts")["c"]
    assert contact.dumps(contact.loads(raw)) == raw


@PROPERTY_SETTINGS
@given(agent_events("a"))
def test_agent_codec_round_trips(events: list[dict[str, Any]]) -> None:
    raw = fold(events, "agents")["a"]
    record = agent.loads(raw)
    assert agent.dumps(record) == raw
    assert record.seen == agent.seen_of(record.timeline)


@PROPERTY_SETTINGS
@given(
    orders=two_orders(contact_events, 5),
    scrapes=st.lists(
        st.tuples(st.sampled_from([0, 2, 5, 20]), st.integers(-3600, 5 * 3600)), max_size=8
    ),
    final_s=st.integers(0, 6 * 3600),
    data=st.data(),
)
def test_contact_totals_slid_between_scrapes_equal_a_rebuild(
    orders: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    scrapes: list[tuple[int, int]],
    final_s: int,
    data: st.DataObject,
) -> None:
    """Window totals kept up per event and slid at each scrape (near the events, across
    midnight, buckets leaving every window, events ahead of a scrape) equal an index built
    from the final records."""
    events, _ = orders
    at = sorted(NOW - hours * HOUR + s * SECOND for hours, s in scrapes)
    last = max([NOW + final_s * SECOND, *at])
    served = Processor(KpiConfig(), ZoneInfo("UTC"), partitions=1)
    served.assign([0])
    for payload in events:
        event = to_event(payload)
        served.apply(TOPIC_OF_TYPE[event.type], 0, event)
        while at and data.draw(st.booleans()):
            served.snapshot(at.pop(0), per_agent=data.draw(st.booleans()))
    rebuilt = Processor(KpiConfig(), ZoneInfo("UTC"), partitions=1)
    for payload in events:
        event = to_event(payload)
        rebuilt.apply(TOPIC_OF_TYPE[event.type], 0, event)
    rebuilt.assign([0])
    assert served.snapshot(last) == rebuilt.snapshot(last)
    lean = served.snapshot(last, per_agent=False).centre
    assert lean.contacts == rebuilt.snapshot(last).centre.contacts
