"""The processor under arbitrary sequences of valid, invalid and adversarial messages.

Hypothesis draws messages of every kind an attacker or a broken producer sends: valid
events (with at-least-once re-sends), null keys, keys of another ticket, events on a
partition their key does not hash to, huge and deeply nested values, a hot ticket past
`max_events_per_entity`, extreme timestamps, mismatched topics, junk bytes and tombstones.
For every sequence:

* `handle` never raises, and every message gets exactly one outcome, the one a small
  model of the contract predicts (accepted / duplicate / rejected with its reason);
* the counters add up to the outcomes;
* the state (every record, the snapshot) equals the fold of the accepted events alone,
  fed in any other order with any re-sends.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiokafka.partitioner import murmur2
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from kpi_helpers import DAY, HOUR, NOW, SECOND

from stream.kpi.entity import split_seen
from stream.kpi.settings import KpiConfig
from stream.processor import Processor

MAX_EVENTS = 6
TICKETS = ("T-1", "T-2", "tïcket-3", "HOT")
TOPIC = {
    "ticket.opened": "cs.ticket.opened",
    "ticket.first_reply": "cs.ticket.first_reply",
    "ticket.resolved": "cs.ticket.resolved",
    "survey.responded": "cs.survey.responded",
}
# (occurred_at, the reason it is refused): hand-picked edges of contract section 1.
EXTREME_TIMES: list[tuple[object, str]] = [
    (-1, "invalid_timestamp"),
    (0, "invalid_timestamp"),
    (946_684_799_999, "invalid_timestamp"),  # 1999-12-31T23:59:59.999Z
    ("0001-01-01T00:00:00Z", "invalid_timestamp"),
    ("1999-12-31T23:59:59Z", "invalid_timestamp"),
    ("2000-01-01T00:30:00+01:00", "invalid_timestamp"),  # 1999 in UTC
    (253_402_300_800_000, "invalid_timestamp"),  # year 10000
    (10**30, "invalid_timestamp"),  # beyond 64 bits: orjson reads it as a float
    (1.5e12, "invalid_timestamp"),
    ("9999-12-31T23:59:59Z", "future_timestamp"),
    (NOW + 300 * SECOND + 1, "future_timestamp"),
]
NESTED_OK = 200  # depth of an ignored extra field that still parses
NESTED_TOO_DEEP = 5000  # beyond orjson's limit of 1024


@dataclass(frozen=True)
class Message:
    """One Kafka message as the runtime hands it to the processor, and what must happen."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    expected: str  # "event" (a valid event: the model decides) or a rejection reason


def kafka_partition(key: str, partitions: int) -> int:
    """Kafka's default partitioner, as aiokafka computes it (independent of the product)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@st.composite
def event_payloads(draw: st.DrawFn, ticket: str, number: int) -> dict[str, Any]:
    """A valid event of `ticket` with a fresh event id."""
    kind = draw(st.sampled_from(["opened", "first_reply", "resolved", "csat", "nps"]))
    at = NOW - HOUR - draw(st.integers(0, 40 * DAY // SECOND)) * SECOND
    common = {"event_id": f"{ticket}/{number}", "ticket_id": ticket, "occurred_at": at}
    if kind == "opened":
        return {
            **common,
            "type": "ticket.opened",
            "queue": draw(st.sampled_from(["billing", "sales", "<b>vip</b>"])),
            "channel": draw(st.sampled_from(["phone", "email", "chat"])),
            "priority": draw(st.sampled_from(["low", "normal", "high", "urgent"])),
        }
    if kind in ("first_reply", "resolved"):
        return {**common, "type": f"ticket.{kind}", "occurred_at": at + HOUR}
    score = draw(st.integers(1, 5) if kind == "csat" else st.integers(0, 10))
    return {**common, "type": "survey.responded", "survey": kind, "score": score}


def with_time(event: dict[str, Any], at: object) -> bytes:
    """The event's JSON with `occurred_at` written as given (even beyond 64-bit integers)."""
    rest = orjson.dumps({k: v for k, v in event.items() if k != "occurred_at"})
    raw = str(at).encode() if isinstance(at, int) else orjson.dumps(at)
    return rest[:-1] + b',"occurred_at":' + raw + b"}"


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@st.composite
def messages(draw: st.DrawFn, partitions: int) -> list[Message]:
    """A sequence of valid events, re-sends and every adversarial kind of message."""
    sent: list[Message] = []
    for number in range(draw(st.integers(1, 40))):
        ticket = draw(st.sampled_from(TICKETS))
        event = draw(event_payloads(ticket, number))
        topic, key = TOPIC[event["type"]], ticket.encode()
        home = kafka_partition(ticket, partitions)
        value = orjson.dumps(event)
        what = draw(
            st.sampled_from(
                [
                    "valid", "valid", "valid", "resend", "hot", "null-key", "other-key",
                    "wrong-partition", "huge", "nested-ok", "nested-too-deep", "time",
                    "wrong-topic", "tombstone", "junk-bytes", "junk-json",
                ]
            )
        )  # fmt: skip
        if what == "resend" and sent:
            sent.append(draw(st.sampled_from(sent)))
            continue
        if what == "hot":  # a burst of distinct events for one ticket
            for extra in range(draw(st.integers(1, 12))):
                hot = {**draw(event_payloads("HOT", number)), "event_id": f"HOT/{number}.{extra}"}
                hot_home = kafka_partition("HOT", partitions)
                sent.append(
                    Message(TOPIC[hot["type"]], hot_home, b"HOT", orjson.dumps(hot), "event")
                )
            continue
        if what == "null-key":
            sent.append(Message(topic, home, None, value, "key_mismatch"))
        elif what == "other-key":
            other = draw(st.sampled_from([t for t in TICKETS if t != ticket]))
            sent.append(Message(topic, home, other.encode(), value, "key_mismatch"))
        elif what == "wrong-partition" and partitions > 1:
            wrong = (home + draw(st.integers(1, partitions - 1))) % partitions
            sent.append(Message(topic, wrong, key, value, "wrong_partition"))
        elif what == "huge":
            big = orjson.dumps({**event, "note": "x" * 300_000})
            sent.append(Message(topic, home, key, big, "event"))
        elif what == "nested-ok":
            deep = value[:-1] + b',"extra":' + nested(NESTED_OK) + b"}"
            sent.append(Message(topic, home, key, deep, "event"))
        elif what == "nested-too-deep":
            deep = value[:-1] + b',"extra":' + nested(NESTED_TOO_DEEP) + b"}"
            sent.append(Message(topic, home, key, deep, "invalid_json"))
        elif what == "time":
            at, reason = draw(st.sampled_from(EXTREME_TIMES))
            sent.append(Message(topic, home, key, with_time(event, at), reason))
        elif what == "wrong-topic":
            other_topic = draw(st.sampled_from([t for t in TOPIC.values() if t != topic]))
            sent.append(Message(other_topic, home, key, value, "type_mismatch"))
        elif what == "tombstone":
            sent.append(Message(topic, home, key, None, "invalid_json"))
        elif what == "junk-bytes":
            junk = draw(st.binary(max_size=40).filter(lambda b: not b.strip().startswith(b"{")))
            sent.append(Message(topic, home, key, junk, "any"))
        elif what == "junk-json":
            sent.append(Message(topic, home, key, orjson.dumps(draw(json_values)), "any"))
        else:
            sent.append(Message(topic, home, key, value, "event"))
    return sent


@dataclass
class Model:
    """The generic rules of contract section 1 for valid events: seen ids and the bound."""

    seen: dict[str, set[str]] = field(default_factory=dict)

    def outcome(self, message: Message) -> tuple[str, str | None]:
        if message.expected != "event":
            return "rejected", message.expected
        event = orjson.loads(message.value or b"")
        ids = self.seen.setdefault(event["ticket_id"], set())
        if event["event_id"] in ids:
            return "duplicate", None
        if len(ids) >= MAX_EVENTS:
            return "rejected", "too_many_events"
        ids.add(event["event_id"])
        return "accepted", None


def new_processor(partitions: int) -> Processor:
    processor = Processor(
        KpiConfig(max_events_per_entity=MAX_EVENTS), ZoneInfo("Europe/Berlin"), partitions
    )
    processor.assign(range(partitions))
    return processor


def state(processor: Processor, partitions: int) -> dict[tuple[str, int, str], Any]:
    """Every record, decoded, with its seen ids as a set (their packing order may differ)."""
    found = {}
    for table in processor.tables:
        loads = processor.kinds[table].loads
        for partition in range(partitions):
            for key, raw in processor.records(table, partition).items():
                record = loads(raw)
                seen = record.seen
                record.seen = b""
                found[table, partition, key] = (
                    record,
                    frozenset(split_seen(seen) if isinstance(seen, bytes) else seen),
                )
    return found


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(partitions=st.sampled_from([1, 3, 8]), data=st.data())
def test_any_message_sequence_gets_one_right_outcome_each_and_folds_the_accepted_events(
    partitions: int, data: st.DataObject
) -> None:
    sent = data.draw(messages(partitions))
    processor = new_processor(partitions)
    model = Model()
    outcomes: Counter[tuple[str, str]] = Counter()
    accepted: list[Message] = []
    for message in sent:
        outcome = processor.handle(
            message.topic, message.partition, message.key, message.value, NOW
        )
        kind, reason = model.outcome(message)
        found_reason = None if outcome.rejection is None else outcome.rejection.reason
        if reason == "any":
            assert outcome.kind == "rejected" and found_reason is not None, message
        else:
            assert (outcome.kind, found_reason) == (kind, reason), message
        outcomes[message.topic, outcome.kind] += 1
        event(f"{outcome.kind} {found_reason or ''}")
        if outcome.kind == "accepted":
            accepted.append(message)

    assert +processor.events == +outcomes
    assert sum(processor.rejections.values()) == sum(
        n for (_, kind), n in outcomes.items() if kind == "rejected"
    )

    resends = data.draw(st.lists(st.sampled_from(accepted), max_size=10)) if accepted else []
    replay = new_processor(partitions)
    for message in data.draw(st.permutations([*accepted, *resends])):
        outcome = replay.handle(message.topic, message.partition, message.key, message.value, NOW)
        assert outcome.kind in ("accepted", "duplicate"), (message, outcome)
        if outcome.key is not None and data.draw(st.booleans()):  # as the runtime does
            replay.record_bytes(outcome.table, message.partition, outcome.key)  # back at rest
    # A warm start from a local snapshot of `replay` (records and index as saved).
    warm = Processor(processor.config, ZoneInfo("Europe/Berlin"), partitions)
    for table in processor.tables:
        for partition in range(partitions):
            records = replay.records(table, partition)
            index = replay.index_state(table, records, NOW)
            warm.load(table, partition, dict(records), index, replay.state_key)
    warm.assign(range(partitions))
    assert state(replay, partitions) == state(processor, partitions)
    assert state(warm, partitions) == state(processor, partitions)
    expected = processor.snapshot(NOW)
    assert replay.snapshot(NOW) == expected
    assert warm.snapshot(NOW) == expected
    later = processor.snapshot(NOW + 3 * DAY)
    assert replay.snapshot(NOW + 3 * DAY) == later
    assert warm.snapshot(NOW + 3 * DAY) == later
