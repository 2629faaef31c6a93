"""Builders shared by the KPI unit tests: events as JSON lines, batch reports, parsed metrics."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from hashlib import blake2b
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from prometheus_client.parser import text_string_to_metric_families

from stream.events import ENTITY_ID_FIELD, decode
from stream.kpi.entity import admit, fingerprint
from stream.kpi.event import Event
from stream.kpi.settings import KpiConfig
from stream.kpi.ticket import Ticket, apply, dumps, loads
from stream.kpi.windows import to_ms
from stream.report import BatchResult, prometheus_text, run_batch

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# The reference instant of most tests: 30 s into the minute bucket 10:00 UTC.
NOW = to_ms(datetime(2026, 11, 22, 10, 0, 30, tzinfo=UTC))

Payload = dict[str, Any]
SampleKey = tuple[str, frozenset[tuple[str, str]]]


def utc_ms(text: str) -> int:
    """Epoch ms of an RFC 3339 literal written in a test."""
    return to_ms(datetime.fromisoformat(text))


def payload(event_type: str, ticket_id: str, at: int | str, **fields: Any) -> Payload:
    """One event as the JSON object a producer sends; a short derived event_id unless given.

    The entity id goes in the field its type names (`ticket_id`, `contact_id`, `agent_id`).
    """
    digest = blake2b(repr((event_type, ticket_id, at)).encode(), digest_size=8).hexdigest()
    return {
        "event_id": fields.pop("event_id", f"{event_type.rsplit('.', 1)[-1]}-{digest}"),
        "type": event_type,
        ENTITY_ID_FIELD.get(event_type.partition(".")[0], "ticket_id"): ticket_id,
        "occurred_at": at,
        **fields,
    }


def opened(
    ticket_id: str,
    at: int | str,
    queue: str = "billing",
    channel: str = "email",
    priority: str = "normal",
    **fields: Any,
) -> Payload:
    return payload(
        "ticket.opened", ticket_id, at, queue=queue, channel=channel, priority=priority, **fields
    )


def first_reply(ticket_id: str, at: int | str, **fields: Any) -> Payload:
    return payload("ticket.first_reply", ticket_id, at, **fields)


def replied(ticket_id: str, at: int | str, **fields: Any) -> Payload:
    return payload("ticket.replied", ticket_id, at, **fields)


def reopened(ticket_id: str, at: int | str, **fields: Any) -> Payload:
    return payload("ticket.reopened", ticket_id, at, **fields)


def resolved(ticket_id: str, at: int | str, **fields: Any) -> Payload:
    return payload("ticket.resolved", ticket_id, at, **fields)


def survey(ticket_id: str, at: int | str, kind: str, score: int, **fields: Any) -> Payload:
    return payload("survey.responded", ticket_id, at, survey=kind, score=score, **fields)


def queued(
    contact_id: str, at: int | str, queue: str = "sales", channel: str = "phone", **fields: Any
) -> Payload:
    return payload("contact.queued", contact_id, at, queue=queue, channel=channel, **fields)


def answered(contact_id: str, at: int | str, **fields: Any) -> Payload:
    return payload("contact.answered", contact_id, at, **fields)


def abandoned(contact_id: str, at: int | str, **fields: Any) -> Payload:
    return payload("contact.abandoned", contact_id, at, **fields)


def ended(contact_id: str, at: int | str, **fields: Any) -> Payload:
    return payload("contact.ended", contact_id, at, **fields)


def wrapped(contact_id: str, at: int | str, **fields: Any) -> Payload:
    return payload("contact.wrapped", contact_id, at, **fields)


def status(agent_id: str, at: int | str, state: str, **fields: Any) -> Payload:
    return payload("agent.status", agent_id, at, status=state, **fields)


def line(event: Payload) -> bytes:
    """The JSON line of one event, as in a `kpi-stream report` input file."""
    return orjson.dumps(event)


def to_event(event: Payload) -> Event:
    """Decode a payload that must be valid (the clock is far in the future)."""
    decoded = decode(line(event), now_ms=NOW + 365 * DAY)
    assert isinstance(decoded, Event), decoded
    return decoded


def merge(ticket: Ticket | None, event: Event) -> tuple[Ticket, bool]:
    """Fold one event into a copy of `ticket` as the processor does: (record, duplicate)."""
    new = Ticket() if ticket is None else loads(dumps(ticket))
    mark = fingerprint(event.event_id)
    if not admit(new, mark, event.occurred_at, max_events=10**9):
        return new, True
    apply(new, event)
    return new, False


def report(
    events: Iterable[Payload | bytes],
    now: int = NOW,
    config: KpiConfig | None = None,
    tz: str = "UTC",
) -> BatchResult:
    """Run the batch path over payloads (or raw lines) at `now`."""
    lines = [e if isinstance(e, bytes) else line(e) for e in events]
    return run_batch(lines, now, config or KpiConfig(), ZoneInfo(tz))


def parse_exposition(text: bytes) -> dict[SampleKey, float]:
    """Every sample of a Prometheus text exposition, keyed by name and label set."""
    samples: dict[SampleKey, float] = {}
    for family in text_string_to_metric_families(text.decode("utf-8")):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = sample.value
    return samples


def exported(result: BatchResult) -> dict[SampleKey, float]:
    """The parsed exposition of a batch result."""
    return parse_exposition(prometheus_text(result))


def key(name: str, **labels: str) -> SampleKey:
    """The lookup key of one sample."""
    return name, frozenset(labels.items())


def dims(
    queue: str = "billing", channel: str = "email", priority: str = "normal"
) -> dict[str, str]:
    """The label dimensions of the additive components."""
    return {"queue": queue, "channel": channel, "priority": priority}
