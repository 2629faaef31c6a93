"""The worker's state machine without Faust: outcomes, counters, indexes, expiry."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import orjson
import pytest

from stream.config import KpiConfig
from stream.kpi.ticket import Ticket
from stream.processor import Processor

NOW = 1_795_000_000_000
UTC = ZoneInfo("UTC")


def opened(event_id: str, ticket: str, at: int = NOW - 60_000, queue: str = "billing") -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": "ticket.opened",
            "ticket_id": ticket,
            "occurred_at": at,
            "queue": queue,
            "channel": "email",
            "priority": "high",
        }
    )


def reply(event_id: str, ticket: str, at: int = NOW - 30_000) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": "ticket.first_reply",
            "ticket_id": ticket,
            "occurred_at": at,
        }
    )


@pytest.fixture
def processor() -> Processor:
    processor = Processor(KpiConfig(), UTC, started_ms=NOW - 1000)
    processor.assign([0, 1], [])
    return processor


def test_accepted_event_returns_the_new_record_and_updates_the_partition_index(
    processor: Processor,
) -> None:
    tickets: dict[str, Ticket] = {}
    outcome = processor.handle(tickets, "cs.ticket.opened", 0, b"T1", opened("e1", "T1"), NOW)
    assert outcome.kind == "accepted"
    assert outcome.ticket is tickets["T1"]
    live = processor.snapshot(NOW).live[("billing", "email", "high")]
    assert (live.open, live.ok) == (1, 1)
    assert processor.snapshot(NOW).partitions == frozenset({0, 1})


def test_duplicate_is_counted_and_writes_nothing(processor: Processor) -> None:
    tickets: dict[str, Ticket] = {}
    processor.handle(tickets, "cs.ticket.opened", 0, b"T1", opened("e1", "T1"), NOW)
    outcome = processor.handle(tickets, "cs.ticket.opened", 0, b"T1", opened("e1", "T1"), NOW)
    assert (outcome.kind, outcome.ticket) == ("duplicate", None)
    assert processor.events["cs.ticket.opened", "duplicate"] == 1
    assert processor.snapshot(NOW).live[("billing", "email", "high")].open == 1


@pytest.mark.parametrize(
    ("topic", "key", "value", "reason"),
    [
        ("cs.ticket.opened", b"T1", b"{", "invalid_json"),
        ("cs.ticket.opened", b"T1", None, "invalid_json"),
        ("cs.ticket.resolved", b"T1", opened("e1", "T1"), "type_mismatch"),
        ("cs.ticket.opened", b"T2", opened("e1", "T1"), "key_mismatch"),
        ("cs.ticket.opened", b"T1", opened("e1", "T1", at=NOW + 301_000), "future_timestamp"),
    ],
    ids=["bad-json", "tombstone", "wrong-topic", "wrong-key", "future"],
)
def test_rejection_is_counted_by_topic_and_reason_and_changes_nothing(
    processor: Processor, topic: str, key: bytes, value: bytes | None, reason: str
) -> None:
    tickets: dict[str, Ticket] = {}
    outcome = processor.handle(tickets, topic, 0, key, value, NOW)
    assert outcome.rejection is not None and outcome.rejection.reason == reason
    assert processor.rejections[topic, reason] == 1
    assert processor.events[topic, "rejected"] == 1
    assert tickets == {}
    assert processor.snapshot(NOW).live == {}


def test_events_of_a_partition_not_owned_change_the_record_but_no_index(
    processor: Processor,
) -> None:
    tickets: dict[str, Ticket] = {}
    processor.handle(tickets, "cs.ticket.opened", 5, b"T1", opened("e1", "T1"), NOW)
    assert "T1" in tickets
    assert processor.snapshot(NOW).live == {}


def test_assign_rebuilds_an_index_equal_to_the_incremental_one(processor: Processor) -> None:
    tickets: dict[str, Ticket] = {}
    for n in range(20):
        ticket = f"T{n}"
        processor.handle(
            tickets, "cs.ticket.opened", 0, ticket.encode(), opened(f"o{n}", ticket), NOW
        )
        if n % 3:
            processor.handle(
                tickets, "cs.ticket.first_reply", 0, ticket.encode(), reply(f"r{n}", ticket), NOW
            )
    incremental = processor.snapshot(NOW)
    rebuilt = Processor(KpiConfig(), UTC)
    rebuilt.assign([0, 1], ((0, t) for t in tickets.values()))
    assert rebuilt.snapshot(NOW) == incremental


def test_revoked_partition_disappears_from_the_snapshot(processor: Processor) -> None:
    tickets: dict[str, Ticket] = {}
    processor.handle(tickets, "cs.ticket.opened", 1, b"T1", opened("e1", "T1"), NOW)
    processor.revoke([1])
    snapshot = processor.snapshot(NOW)
    assert snapshot.live == {} and snapshot.partitions == frozenset({0})


def test_expired_tickets_are_found_and_forgotten(processor: Processor) -> None:
    tickets: dict[str, Ticket] = {}
    old = NOW - 36 * 86_400_000
    processor.handle(tickets, "cs.ticket.opened", 0, b"OLD", opened("e1", "OLD", at=old), NOW)
    processor.handle(tickets, "cs.ticket.opened", 0, b"NEW", opened("e2", "NEW"), NOW)
    expired = processor.expired(tickets.items(), NOW)
    assert [tid for tid, _ in expired] == ["OLD"]
    processor.forget(0, expired[0][1])
    assert processor.snapshot(NOW).live[("billing", "email", "high")].open == 1


def test_last_processed_is_the_start_time_until_the_first_event(processor: Processor) -> None:
    assert processor.last_processed_ms == NOW - 1000
    assert processor.last_event_occurred_ms is None
    processor.handle({}, "cs.ticket.opened", 0, b"T1", opened("e1", "T1"), NOW)
    assert processor.last_processed_ms == NOW
    assert processor.last_event_occurred_ms == NOW - 60_000
