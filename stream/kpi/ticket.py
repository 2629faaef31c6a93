"""The ticket: its record, its order-independent fold (contract section 2), its codec.

Every field is a lattice join: min, max, or latest-by-(occurred_at, event_id). Folding the
same set of events in any order gives the same record; the processor's seen-id check
(`stream.kpi.entity`) makes a replayed event change nothing.

Extending the record (e.g. replies, reopens): add a field with a default at the end of
`Ticket`, fold it in `apply` (return True when it changed), and append it to `dumps` and
`loads`. Records written before the change then still load, with the default.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import orjson

from stream.config import KpiConfig
from stream.events import Event
from stream.kpi.contrib import Contribution, Layout, contribution
from stream.kpi.entity import EntityRecord, pack_seen, unpack_seen
from stream.kpi.index import KpiIndex
from stream.kpi.types import TICKET_TOPICS

TABLE = "tickets"


class SurveyAnswer(NamedTuple):
    """The counting answer of one survey kind: largest (occurred_at, event_id)."""

    at: int
    event_id: str
    score: int


@dataclass(slots=True, eq=False)
class Ticket(EntityRecord):
    """Everything known about one ticket. Times are epoch milliseconds.

    The winning `ticket.opened` (smallest (occurred_at, event_id)) is kept flat, in
    `opened_at` .. `priority`: a million tickets are a million records.
    """

    opened_at: int | None = None
    opened_event_id: str | None = None
    queue: str | None = None
    channel: str | None = None
    priority: str | None = None
    first_reply_at: int | None = None
    resolved_at: int | None = None
    csat: SurveyAnswer | None = None
    nps: SurveyAnswer | None = None

    def is_expired(self, now_ms: int, retention_ms: int) -> bool:
        """True once `retention_ms` have passed since the ticket's latest event time."""
        return self.last_event_at < now_ms - retention_ms


def apply(ticket: Ticket, event: Event) -> bool:
    """Fold an unseen `event` into `ticket` in place; True when a KPI field changed."""
    kind = event.type
    at = event.occurred_at
    if kind == "ticket.opened":
        current = ticket.opened_at
        if current is not None and (at, event.event_id) >= (current, ticket.opened_event_id):
            return False
        ticket.opened_at = at
        ticket.opened_event_id = event.event_id
        ticket.queue = event.queue or ""
        ticket.channel = event.channel or "other"
        ticket.priority = event.priority or "normal"
        return True
    if kind == "ticket.first_reply":
        if ticket.first_reply_at is not None and at >= ticket.first_reply_at:
            return False
        ticket.first_reply_at = at
        return True
    if kind == "ticket.resolved":
        if ticket.resolved_at is not None and at <= ticket.resolved_at:
            return False
        ticket.resolved_at = at
        return True
    answer = SurveyAnswer(at, event.event_id, event.score or 0)
    if event.survey == "csat":
        if ticket.csat is not None and answer[:2] <= ticket.csat[:2]:
            return False
        ticket.csat = answer
        return True
    if ticket.nps is not None and answer[:2] <= ticket.nps[:2]:
        return False
    ticket.nps = answer
    return True


def dumps(ticket: Ticket) -> bytes:
    """Compact JSON for the changelog: the seen set as hex, then the fields in order."""
    return orjson.dumps(
        [
            pack_seen(ticket.seen).hex(),
            ticket.last_event_at,
            ticket.opened_at,
            ticket.opened_event_id,
            ticket.queue,
            ticket.channel,
            ticket.priority,
            ticket.first_reply_at,
            ticket.resolved_at,
            None if ticket.csat is None else tuple(ticket.csat),
            None if ticket.nps is None else tuple(ticket.nps),
        ]
    )


def loads(raw: bytes) -> Ticket:
    """Inverse of `dumps`; label strings interned, as the decoder gives them."""
    seen, last, opened_at, opened_id, queue, channel, priority, reply, resolved, csat, nps = (
        orjson.loads(raw)
    )
    intern = sys.intern
    return Ticket(
        unpack_seen(bytes.fromhex(seen)),
        last,
        opened_at,
        opened_id,
        None if queue is None else intern(queue),
        None if channel is None else intern(channel),
        None if priority is None else intern(priority),
        reply,
        resolved,
        None if csat is None else SurveyAnswer(*csat),
        None if nps is None else SurveyAnswer(*nps),
    )


class TicketKind:
    """Tickets as an entity kind (`stream.kpi.entity.EntityKind`) under one KPI policy."""

    table = TABLE
    topics = TICKET_TOPICS

    def __init__(self, config: KpiConfig, tz: ZoneInfo) -> None:
        self.policy = config.sla
        self.layout = Layout(config.sla)
        self.tz = tz
        self.retention_ms = config.retention_ms

    def new(self) -> Ticket:
        return Ticket()

    def apply(self, record: Ticket, event: Any) -> bool:
        return apply(record, event)

    def contribution(self, record: Ticket) -> Contribution | None:
        return contribution(record, self.policy, self.layout)

    def new_index(self) -> KpiIndex:
        return KpiIndex(self.policy, self.layout, self.tz)

    def dumps(self, record: Ticket) -> bytes:
        return dumps(record)

    def loads(self, raw: bytes) -> Ticket:
        return loads(raw)
