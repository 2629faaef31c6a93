"""A fuzz corpus for a running worker: every case of issue 10 and the ordinary bad inputs.

Each case is one Kafka message (topic, partition or None for the key's, key, value) and
what must become of it: the rejection reason, or None when it must be accepted. Expected
reasons are written by hand from contract section 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

HOUR_MS = 3_600_000
HOT_EVENTS = 80  # distinct events of one ticket, against max_events_per_entity = HOT_LIMIT
HOT_LIMIT = 50
BIG_INVALID = 1_040_000  # fits the input topic (1 MiB), not the dead-letter topic with headers
HUGE_INVALID = 5_000_000  # for an input topic with its limit raised to 6 MB
HOSTILE = '<script>alert(1)</script>"}\n# HELP x\ncs_fake{a="b"} 1'


@dataclass(frozen=True)
class Case:
    """One message and its expected fate (`reason` None: accepted)."""

    name: str
    topic: str
    key: bytes | None
    value: bytes | None
    reason: str | None
    partition: int | None = None  # None: the one Kafka's default partitioner picks


def corpus(now_ms: int, partitions: int, wrong_partition_of: Any) -> list[Case]:
    """The whole corpus; `wrong_partition_of(key)` names a partition the key does not hash to."""
    at = now_ms - HOUR_MS

    def event(
        ticket: str, number: int, kind: str = "ticket.opened", **fields: Any
    ) -> dict[str, Any]:
        base: dict[str, Any] = {
            "event_id": f"fz-{ticket}-{number}",
            "type": kind,
            "ticket_id": ticket,
            "occurred_at": at,
        }
        if kind == "ticket.opened":
            base.update(queue="fuzz", channel="web", priority="normal")
        return {**base, **fields}

    def case(name: str, value: dict[str, Any] | bytes | None, reason: str | None, *,
             key: bytes | str | None = "ticket", topic: str = "cs.ticket.opened",
             partition: int | None = None) -> Case:  # fmt: skip
        raw = orjson.dumps(value) if isinstance(value, dict) else value
        ticket = value.get("ticket_id", "FZ-0") if isinstance(value, dict) else "FZ-0"
        message_key = str(ticket).encode() if key == "ticket" else key
        assert not isinstance(message_key, str)
        return Case(name, topic, message_key, raw, reason, partition)

    cases = [
        # Issue 10's cases
        case("null-key", event("FZ-1", 1), "key_mismatch", key=None),
        case("null-key-then-real-key/null", event("FZ-2", 1), "key_mismatch", key=None),
        case("null-key-then-real-key/real", event("FZ-2", 1), None),
        case("key-of-another-ticket", event("FZ-3", 1), "key_mismatch", key=b"FZ-4"),
        case("empty-key", event("FZ-3", 2), "key_mismatch", key=b""),
        case(
            "year-0001", event("FZ-5", 1, occurred_at="0001-01-01T00:00:00Z"), "invalid_timestamp"
        ),
        case("1999-epoch-ms", event("FZ-5", 2, occurred_at=946_684_799_999), "invalid_timestamp"),
        case("year-9999", event("FZ-5", 3, occurred_at="9999-12-31T23:59:59Z"), "future_timestamp"),
        case("invalid-1MB", b"{" + b"x" * BIG_INVALID, "invalid_json"),
        case("valid-with-900KB-extra", event("FZ-6", 1, note="n" * 900_000), None),
        case("nested-5000-deep", b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}", "invalid_json"),
        case("nested-200-deep-extra", event("FZ-6", 2, extra=_nested(200)), None),
        # The ordinary bad-input classes
        case("not-json", b"{not json", "invalid_json"),
        case("not-utf8", b"\xff\xfe\xfd", "invalid_json"),
        case("tombstone", None, "invalid_json"),
        case("empty", b"", "invalid_json"),
        case("array", b"[1,2,3]", "not_object"),
        case("string", b'"ticket.opened"', "not_object"),
        case("missing-queue", _without(event("FZ-7", 1), "queue"), "missing_field"),
        case("missing-event_id", _without(event("FZ-7", 2), "event_id"), "missing_field"),
        case("channel-outside-set", event("FZ-7", 3, channel="fax"), "invalid_field"),
        case("priority-number", event("FZ-7", 4, priority=3), "invalid_field"),
        case("ticket_id-129", event("X" * 129, 1), "invalid_field"),
        case("queue-hostile-too-long", event("FZ-7", 5, queue=HOSTILE * 10), "invalid_field"),
        case(
            "naive-timestamp",
            event("FZ-7", 6, occurred_at="2026-11-22T10:00:00"),
            "invalid_timestamp",
        ),
        case("timestamp-float", event("FZ-7", 7, occurred_at=1.7e12), "invalid_timestamp"),
        case("future-1h", event("FZ-7", 8, occurred_at=now_ms + HOUR_MS), "future_timestamp"),
        case("unknown-type", event("FZ-7", 9, kind="ticket.closed"), "unknown_type"),
        case("type-on-wrong-topic", event("FZ-7", 10, kind="ticket.resolved"), "type_mismatch"),
        case(
            "csat-6",
            event("FZ-7", 11, kind="survey.responded", survey="csat", score=6),
            "invalid_field",
            topic="cs.survey.responded",
        ),
        case("hostile-queue-accepted", event("FZ-8", 1, queue=HOSTILE), None),
    ]
    # An event on a partition its key does not hash to (another partitioner), then the
    # same event where it belongs.
    if partitions > 1:
        stray = event("FZ-9", 1)
        cases.append(case("wrong-partition", stray, "wrong_partition",
                          partition=wrong_partition_of(b"FZ-9")))  # fmt: skip
        cases.append(case("wrong-partition-then-right", stray, None))
    # A hot ticket: HOT_EVENTS distinct events, the ones past HOT_LIMIT refused.
    for number in range(HOT_EVENTS):
        reason = None if number < HOT_LIMIT else "too_many_events"
        hot = event("FZ-HOT", 100 + number, kind="ticket.first_reply", occurred_at=at + number)
        cases.append(case(f"hot-{number}", hot, reason, topic="cs.ticket.first_reply"))
    return cases


def huge_invalid_case() -> Case:
    """5 MB of junk, for an input topic whose message limit was raised."""
    return Case("invalid-5MB", "cs.ticket.opened", b"FZ-0", b"[" + b"1," * (HUGE_INVALID // 2),
                "invalid_json")  # fmt: skip


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def _without(event: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != field}
