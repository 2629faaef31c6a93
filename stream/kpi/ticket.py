"""The ticket: its record, its order-independent fold (contract sections 2 and 9), its codec.

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
from typing import NamedTuple
from zoneinfo import ZoneInfo

import orjson

from stream.kpi.contrib import Contribution, Layout, contribution
from stream.kpi.entity import (
    FINGERPRINT_BYTES,
    EntityRecord,
    fingerprint,
    last_event_at_after_seen,
    pack_seen,
    unpack_seen,
    with_mark,
)
from stream.kpi.event import Event
from stream.kpi.index import KpiIndex
from stream.kpi.settings import KpiConfig
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
    # Section 9, and the agents section 8 credits: the reply giving first_reply_at and the
    # resolve giving resolved_at, each with its agent_id (None when absent).
    first_reply_event_id: str | None = None
    first_reply_agent: str | None = None
    reply_ids: bytes = b""  # fingerprints of the ticket.first_reply / .replied events, sorted
    resolved_event_id: str | None = None  # largest (occurred_at, event_id) of the resolves
    resolved_agent: str | None = None
    reopened_at: int | None = None  # largest occurred_at of ticket.reopened
    reopen_ids: bytes = b""  # fingerprints of the ticket.reopened events, sorted

    @property
    def replies(self) -> int:
        """Distinct ticket.first_reply and ticket.replied events (section 9)."""
        return len(self.reply_ids) // FINGERPRINT_BYTES

    @property
    def reopens(self) -> int:
        """Distinct ticket.reopened events."""
        return len(self.reopen_ids) // FINGERPRINT_BYTES

    @property
    def is_resolved(self) -> bool:
        """Resolved: its latest resolve is at or after every reopen (section 9)."""
        return self.resolved_at is not None and (
            self.reopened_at is None or self.resolved_at >= self.reopened_at
        )

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
    if kind in ("ticket.first_reply", "ticket.replied"):
        replies = with_mark(ticket.reply_ids, fingerprint(event.event_id))
        changed = replies is not None
        if replies is not None:
            ticket.reply_ids = replies
        first = ticket.first_reply_at
        if first is None or (at, event.event_id) < (first, ticket.first_reply_event_id or ""):
            ticket.first_reply_at = at
            ticket.first_reply_event_id = event.event_id
            ticket.first_reply_agent = event.agent_id
            changed = True
        return changed
    if kind == "ticket.resolved":
        last = ticket.resolved_at
        if last is not None and (at, event.event_id) <= (last, ticket.resolved_event_id or ""):
            return False
        ticket.resolved_at = at
        ticket.resolved_event_id = event.event_id
        ticket.resolved_agent = event.agent_id
        return True
    if kind == "ticket.reopened":
        reopens = with_mark(ticket.reopen_ids, fingerprint(event.event_id))
        changed = reopens is not None
        if reopens is not None:
            ticket.reopen_ids = reopens
        if ticket.reopened_at is None or at > ticket.reopened_at:
            ticket.reopened_at = at
            changed = True
        return changed
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
            ticket.first_reply_event_id,
            ticket.first_reply_agent,
            ticket.reply_ids.hex(),
            ticket.resolved_event_id,
            ticket.resolved_agent,
            ticket.reopened_at,
            ticket.reopen_ids.hex(),
        ]
    )


def loads(raw: bytes) -> Ticket:
    """Inverse of `dumps`; label strings interned, as the decoder gives them."""
    (
        seen,
        last,
        opened_at,
        opened_id,
        queue,
        channel,
        priority,
        reply,
        resolved,
        csat,
        nps,
        *life,
    ) = orjson.loads(raw)
    intern = sys.intern
    if life:  # written since section 9: the id sets are hex
        life[2], life[6] = bytes.fromhex(life[2]), bytes.fromhex(life[6])
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
        *life,  # absent in records written before section 9: the defaults
    )


class TicketKind:
    """Tickets as an entity kind (`stream.kpi.entity.EntityKind`) under one KPI policy.

    The per-event functions are the module's own (static), not wrappers: a call less each.
    """

    table = TABLE
    topics = TICKET_TOPICS
    new = staticmethod(Ticket)
    apply = staticmethod(apply)
    dumps = staticmethod(dumps)
    loads = staticmethod(loads)
    last_event_at = staticmethod(last_event_at_after_seen)

    def __init__(self, config: KpiConfig, tz: ZoneInfo) -> None:
        self.policy = config.sla
        self.layout = Layout(config.sla)
        self.tz = tz
        self.retention_ms = config.retention_ms

    def contribution(self, record: Ticket) -> Contribution | None:
        return contribution(record, self.policy, self.layout)

    def new_index(self) -> KpiIndex:
        return KpiIndex(self.policy, self.layout, self.tz)
