"""The worker's state machine without Kafka: outcomes, counters, records, indexes, expiry."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import orjson
import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from stream.kpi.entity import murmur2, partition_of
from stream.kpi.settings import KpiConfig
from stream.processor import Processor

NOW = 1_795_000_000_000
UTC = ZoneInfo("UTC")
PARTITIONS = 4
# Keys on partition 0 and 1 of 4 (Kafka's default partitioner; see the murmur2 tests).
P0 = ("T0", "T1", "T5", "a")
P1 = ("T3", "T4", "T17", "OLD")
BILLING = ("billing", "email", "high")


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


def open_ticket(processor: Processor, partition: int, ticket: str, event_id: str = "e1") -> str:
    """Send a ticket.opened; returns the outcome kind."""
    return processor.handle(
        "cs.ticket.opened", partition, ticket.encode(), opened(event_id, ticket), NOW
    ).kind


@pytest.fixture
def processor() -> Processor:
    processor = Processor(KpiConfig(), UTC, PARTITIONS, started_ms=NOW - 1000)
    processor.assign([0, 1])
    return processor


def test_keys_of_the_tests_are_on_the_partitions_they_are_sent_to() -> None:
    assert [partition_of(k, PARTITIONS) for k in P0] == [0, 0, 0, 0]
    assert [partition_of(k, PARTITIONS) for k in P1] == [1, 1, 1, 1]
    assert partition_of("T8", PARTITIONS) == 2


def test_tables_and_topics_come_from_the_entity_kinds(processor: Processor) -> None:
    assert processor.tables == ("tickets", "contacts", "agents")
    assert set(processor.topics) == {
        "cs.ticket.opened",
        "cs.ticket.first_reply",
        "cs.ticket.resolved",
        "cs.survey.responded",
        "cs.ticket.replied",
        "cs.ticket.reopened",
        "cs.contact.queued",
        "cs.contact.answered",
        "cs.contact.abandoned",
        "cs.contact.ended",
        "cs.contact.wrapped",
        "cs.agent.status",
    }


def test_accepted_event_names_the_changed_record_and_updates_the_index(
    processor: Processor,
) -> None:
    outcome = processor.handle("cs.ticket.opened", 0, b"T1", opened("e1", "T1"), NOW)
    assert (outcome.kind, outcome.rejection, outcome.table, outcome.key) == (
        "accepted",
        None,
        "tickets",
        "T1",
    )
    live = processor.snapshot(NOW).live[BILLING]
    assert (live.open, live.ok) == (1, 1)
    assert processor.snapshot(NOW).partitions == frozenset({0, 1})
    assert processor.record_bytes("tickets", 0, "T1") is not None
    assert processor.record_bytes("tickets", 0, "T9") is None


def test_duplicate_is_counted_and_changes_nothing(processor: Processor) -> None:
    open_ticket(processor, 0, "T1")
    before = processor.record_bytes("tickets", 0, "T1")
    outcome = processor.handle("cs.ticket.opened", 0, b"T1", opened("e1", "T1"), NOW)
    assert (outcome.kind, outcome.table, outcome.key) == ("duplicate", None, None)
    assert processor.events["cs.ticket.opened", "duplicate"] == 1
    assert processor.record_bytes("tickets", 0, "T1") == before
    assert processor.snapshot(NOW).live[BILLING].open == 1


def test_two_events_under_one_id_give_the_same_state_in_either_order() -> None:
    early = reply("r1", "T1", at=NOW - 50_000)
    late = reply("r1", "T1", at=NOW - 20_000)
    states = []
    for order in ((early, late), (late, early)):
        processor = Processor(KpiConfig(), UTC, PARTITIONS)
        processor.assign([0])
        open_ticket(processor, 0, "T1")
        outcomes = [
            processor.handle("cs.ticket.first_reply", 0, b"T1", value, NOW) for value in order
        ]
        assert [o.kind for o in outcomes] == ["accepted", "duplicate"]
        record = processor.record_bytes("tickets", 0, "T1")
        assert record is not None
        states.append((orjson.loads(record), processor.snapshot(NOW)))
    assert states[0] == states[1]
    fields = states[0][0]
    assert (fields[1], fields[7]) == (NOW - 20_000, NOW - 50_000)  # last event, first reply


def test_an_event_that_changes_no_kpi_still_records_its_id(processor: Processor) -> None:
    open_ticket(processor, 0, "T1")
    later = opened("e2", "T1", at=NOW - 10_000)  # a later opened event never wins
    outcome = processor.handle("cs.ticket.opened", 0, b"T1", later, NOW)
    assert (outcome.kind, outcome.key) == ("accepted", "T1")
    again = processor.handle("cs.ticket.opened", 0, b"T1", later, NOW)
    assert again.kind == "duplicate"


@pytest.mark.parametrize(
    ("topic", "key", "value", "reason"),
    [
        ("cs.ticket.opened", b"T1", b"{", "invalid_json"),
        ("cs.ticket.opened", b"T1", None, "invalid_json"),
        ("cs.ticket.resolved", b"T1", opened("e1", "T1"), "type_mismatch"),
        ("cs.ticket.opened", b"T2", opened("e1", "T1"), "key_mismatch"),
        ("cs.ticket.opened", None, opened("e1", "T1"), "key_mismatch"),
        ("cs.ticket.opened", b"T1", opened("e1", "T1", at=NOW + 301_000), "future_timestamp"),
        ("cs.ticket.opened", b"T3", opened("e1", "T3"), "wrong_partition"),
    ],
    ids=["bad-json", "tombstone", "wrong-topic", "wrong-key", "null-key", "future", "partition"],
)
def test_rejection_is_counted_by_topic_and_reason_and_changes_nothing(
    processor: Processor, topic: str, key: bytes | None, value: bytes | None, reason: str
) -> None:
    outcome = processor.handle(topic, 0, key, value, NOW)
    assert outcome.rejection is not None and outcome.rejection.reason == reason
    assert (outcome.kind, outcome.table, outcome.key) == ("rejected", None, None)
    assert processor.rejections[topic, reason] == 1
    assert processor.events[topic, "rejected"] == 1
    assert processor.records("tickets", 0) == {}
    assert processor.snapshot(NOW).live == {}


def test_events_of_an_entity_on_a_wrong_partition_never_touch_its_record(
    processor: Processor,
) -> None:
    assert open_ticket(processor, 1, "T3") == "accepted"
    before = processor.record_bytes("tickets", 1, "T3")
    stray = processor.handle("cs.ticket.first_reply", 0, b"T3", reply("r1", "T3"), NOW)
    assert stray.rejection is not None and stray.rejection.reason == "wrong_partition"
    assert processor.record_bytes("tickets", 1, "T3") == before
    assert processor.record_bytes("tickets", 0, "T3") is None
    assert processor.snapshot(NOW).live[BILLING].ok == 1  # still awaiting its first reply


def test_one_partition_takes_every_key() -> None:
    single = Processor(KpiConfig(), UTC, 1)
    assert open_ticket(single, 0, "T3") == "accepted"


@pytest.mark.parametrize(
    ("data", "signed"),
    [  # the Java client's own test vectors (org.apache.kafka.common.utils.UtilsTest)
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_gives_kafkas_values(data: bytes, signed: int) -> None:
    assert murmur2(data) == signed % 2**32


@given(st.binary(max_size=200))
def test_murmur2_equals_the_reference_implementation(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


def test_an_entity_takes_at_most_max_events_distinct_events() -> None:
    processor = Processor(KpiConfig(max_events_per_entity=3), UTC, PARTITIONS)
    processor.assign([0])
    open_ticket(processor, 0, "T1")
    outcomes = [
        processor.handle("cs.ticket.first_reply", 0, b"T1", reply(f"r{n}", "T1"), NOW)
        for n in range(4)
    ]
    assert [o.kind for o in outcomes] == ["accepted", "accepted", "rejected", "rejected"]
    assert outcomes[2].rejection is not None
    assert outcomes[2].rejection.reason == "too_many_events"
    assert processor.rejections["cs.ticket.first_reply", "too_many_events"] == 2
    # Ids it already holds are still duplicates, not rejections.
    again = processor.handle("cs.ticket.first_reply", 0, b"T1", reply("r0", "T1"), NOW)
    assert again.kind == "duplicate"


def test_a_hot_entity_keeps_a_bounded_changelog_record() -> None:
    processor = Processor(KpiConfig(), UTC, PARTITIONS)
    processor.assign([0])
    for n in range(10_000):
        processor.handle("cs.ticket.first_reply", 0, b"T1", reply(f"r{n}", "T1", NOW - n), NOW)
    assert processor.events["cs.ticket.first_reply", "accepted"] == 10_000
    over = processor.handle("cs.ticket.first_reply", 0, b"T1", reply("r-extra", "T1"), NOW)
    assert over.kind == "rejected"
    record = processor.record_bytes("tickets", 0, "T1")
    assert record is not None
    # 16 hex digits per event id in the seen set, 16 more per reply in the reply-id set
    # (section 9 counts distinct replies), and the fields: below Kafka's 1 MB message limit.
    assert 320_000 < len(record) < 321_000


def test_restore_then_assign_gives_the_incremental_state(processor: Processor) -> None:
    for n, ticket in enumerate(P0 + P1):
        partition = 0 if ticket in P0 else 1
        processor.handle(
            "cs.ticket.opened", partition, ticket.encode(), opened(f"o{n}", ticket), NOW
        )
        if n % 3:
            processor.handle(
                "cs.ticket.first_reply", partition, ticket.encode(), reply(f"r{n}", ticket), NOW
            )
    incremental = processor.snapshot(NOW)
    rebuilt = Processor(KpiConfig(), UTC, PARTITIONS)
    for partition in (0, 1):
        records = [(k.encode(), v) for k, v in processor.records("tickets", partition).items()]
        rebuilt.restore("tickets", partition, records)
    rebuilt.assign([0, 1])
    assert rebuilt.snapshot(NOW) == incremental
    assert rebuilt.records("tickets", 0) == processor.records("tickets", 0)


def test_restore_later_record_wins_and_none_deletes(processor: Processor) -> None:
    source = Processor(KpiConfig(), UTC, PARTITIONS)
    open_ticket(source, 0, "T1")
    first = source.record_bytes("tickets", 0, "T1")
    source.handle("cs.ticket.first_reply", 0, b"T1", reply("r1", "T1"), NOW)
    second = source.record_bytes("tickets", 0, "T1")
    open_ticket(source, 0, "a")
    gone = source.record_bytes("tickets", 0, "a")
    target = Processor(KpiConfig(), UTC, PARTITIONS)
    target.restore("tickets", 0, [(b"T1", first), (b"a", gone), (b"T1", second), (b"a", None)])
    target.assign([0])
    assert dict(target.records("tickets", 0)) == {"T1": second}
    live = target.snapshot(NOW).live[BILLING]
    assert (live.open, live.ok) == (1, 0)  # answered: the later record won


def test_restore_into_a_served_partition_keeps_its_index_exact(processor: Processor) -> None:
    open_ticket(processor, 0, "T1")
    replied = Processor(KpiConfig(), UTC, PARTITIONS)
    open_ticket(replied, 0, "T1")
    replied.handle("cs.ticket.first_reply", 0, b"T1", reply("r1", "T1"), NOW)
    processor.restore("tickets", 0, [(b"T1", replied.record_bytes("tickets", 0, "T1"))])
    assert processor.snapshot(NOW).live[BILLING].ok == 0
    processor.restore("tickets", 0, [(b"T1", None)])
    assert processor.snapshot(NOW).live == {}


def test_events_of_a_partition_not_assigned_keep_the_record_but_no_index(
    processor: Processor,
) -> None:
    processor.handle("cs.ticket.opened", 2, b"T8", opened("e1", "T8"), NOW)
    assert processor.record_bytes("tickets", 2, "T8") is not None
    assert processor.snapshot(NOW).live == {}
    processor.assign([2])
    assert processor.snapshot(NOW).live[BILLING].open == 1


def test_revoke_drops_records_and_index_at_once(processor: Processor) -> None:
    open_ticket(processor, 1, "T3")
    open_ticket(processor, 0, "T1")
    processor.revoke([1])
    snapshot = processor.snapshot(NOW)
    assert snapshot.live[BILLING].open == 1 and snapshot.partitions == frozenset({0})
    assert processor.record_bytes("tickets", 1, "T3") is None
    assert processor.assigned == {0}


def test_expire_removes_entities_past_retention_and_names_their_tombstones(
    processor: Processor,
) -> None:
    old = NOW - 36 * 86_400_000
    processor.handle("cs.ticket.opened", 1, b"OLD", opened("e1", "OLD", at=old), NOW)
    open_ticket(processor, 0, "T1")
    assert processor.expire(NOW) == [("tickets", 1, "OLD")]
    assert processor.record_bytes("tickets", 1, "OLD") is None
    assert processor.snapshot(NOW).live[BILLING].open == 1
    assert processor.expire(NOW) == []


def test_last_processed_is_the_start_time_until_the_first_event(processor: Processor) -> None:
    assert processor.last_processed_ms == NOW - 1000
    assert processor.last_event_occurred_ms is None
    open_ticket(processor, 0, "T1")
    assert processor.last_processed_ms == NOW
    assert processor.last_event_occurred_ms == NOW - 60_000
