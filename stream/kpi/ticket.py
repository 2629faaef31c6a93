"""The ticket record and its order-independent, idempotent merge (contract section 2).

Every field is a lattice join: min, max, or latest-by-(occurred_at, event_id). Folding
the same set of events in any order, with any duplicates, gives the same record, so a
replayed or redelivered event can never move a number.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from hashlib import blake2b
from typing import Any

import orjson

from stream.events import Event


@dataclass(frozen=True, slots=True)
class Opened:
    """The winning `ticket.opened` event: smallest (occurred_at, event_id)."""

    at: int
    event_id: str
    queue: str
    channel: str
    priority: str


@dataclass(frozen=True, slots=True)
class SurveyAnswer:
    """The counting answer of one survey kind: largest (occurred_at, event_id)."""

    at: int
    event_id: str
    score: int


@dataclass(frozen=True, slots=True)
class Ticket:
    """Everything known about one ticket. Times are epoch milliseconds."""

    ticket_id: str
    opened: Opened | None = None
    first_reply_at: int | None = None
    resolved_at: int | None = None
    csat: SurveyAnswer | None = None
    nps: SurveyAnswer | None = None
    last_event_at: int = 0
    seen: frozenset[int] = frozenset()
    # Contract section 9 (and the agents section 8 attributes work to):
    first_reply_event_id: str | None = None  # the reply giving first_reply_at
    first_reply_agent: str | None = None  # its agent_id
    replies: int = 0  # distinct ticket.first_reply and ticket.replied events
    resolved_event_id: str | None = None  # the resolve with the largest (occurred_at, id)
    resolved_agent: str | None = None  # its agent_id
    reopened_at: int | None = None  # largest occurred_at of ticket.reopened
    reopens: int = 0  # distinct ticket.reopened events

    @property
    def is_resolved(self) -> bool:
        """Resolved: its latest resolve is at or after every reopen (section 9)."""
        return self.resolved_at is not None and (
            self.reopened_at is None or self.resolved_at >= self.reopened_at
        )

    def is_expired(self, now_ms: int, retention_ms: int) -> bool:
        """True once `retention_ms` have passed since the ticket's latest event time."""
        return self.last_event_at < now_ms - retention_ms


def fingerprint(event_id: str) -> int:
    """A stable 64-bit digest of an event id (process-independent, unlike hash())."""
    return int.from_bytes(blake2b(event_id.encode(), digest_size=8).digest(), "big")


def merge(ticket: Ticket | None, event: Event) -> tuple[Ticket, bool]:
    """Fold `event` into `ticket`; returns the new record and whether the event id was seen."""
    if ticket is None:
        ticket = Ticket(event.entity_id)
    mark = fingerprint(event.event_id)
    duplicate = mark in ticket.seen
    changes: dict[str, Any] = {}
    if not duplicate:
        changes["seen"] = ticket.seen | {mark}
    if event.occurred_at > ticket.last_event_at:
        changes["last_event_at"] = event.occurred_at
    if event.type == "ticket.opened":
        candidate = Opened(
            event.occurred_at,
            event.event_id,
            event.queue or "",
            event.channel or "other",
            event.priority or "normal",
        )
        current = ticket.opened
        if current is None or (candidate.at, candidate.event_id) < (current.at, current.event_id):
            changes["opened"] = candidate
    elif event.type in ("ticket.first_reply", "ticket.replied"):
        if not duplicate:
            changes["replies"] = ticket.replies + 1
        first = ticket.first_reply_at
        if first is None or (event.occurred_at, event.event_id) < (
            first,
            ticket.first_reply_event_id or "",
        ):
            changes["first_reply_at"] = event.occurred_at
            changes["first_reply_event_id"] = event.event_id
            changes["first_reply_agent"] = event.agent_id
    elif event.type == "ticket.resolved":
        last = ticket.resolved_at
        if last is None or (event.occurred_at, event.event_id) > (
            last,
            ticket.resolved_event_id or "",
        ):
            changes["resolved_at"] = event.occurred_at
            changes["resolved_event_id"] = event.event_id
            changes["resolved_agent"] = event.agent_id
    elif event.type == "ticket.reopened":
        if not duplicate:
            changes["reopens"] = ticket.reopens + 1
        if ticket.reopened_at is None or event.occurred_at > ticket.reopened_at:
            changes["reopened_at"] = event.occurred_at
    elif event.type == "survey.responded":
        kind = "csat" if event.survey == "csat" else "nps"
        answer = SurveyAnswer(event.occurred_at, event.event_id, event.score or 0)
        current_answer: SurveyAnswer | None = getattr(ticket, kind)
        if current_answer is None or (answer.at, answer.event_id) > (
            current_answer.at,
            current_answer.event_id,
        ):
            changes[kind] = answer
    return (replace(ticket, **changes) if changes else ticket), duplicate


def dumps(ticket: Ticket) -> bytes:
    """Compact JSON for the changelog and the state store."""
    opened = ticket.opened
    return orjson.dumps(
        [
            ticket.ticket_id,
            None
            if opened is None
            else [
                opened.at,
                opened.event_id,
                opened.queue,
                opened.channel,
                opened.priority,
            ],
            ticket.first_reply_at,
            ticket.resolved_at,
            _dump_answer(ticket.csat),
            _dump_answer(ticket.nps),
            ticket.last_event_at,
            sorted(ticket.seen),
            ticket.first_reply_event_id,
            ticket.first_reply_agent,
            ticket.replies,
            ticket.resolved_event_id,
            ticket.resolved_agent,
            ticket.reopened_at,
            ticket.reopens,
        ]
    )


def loads(raw: bytes) -> Ticket:
    """Inverse of `dumps`."""
    ticket_id, opened, first_reply_at, resolved_at, csat, nps, last, seen, *life = orjson.loads(raw)
    return Ticket(
        ticket_id,
        None if opened is None else _opened(*opened),
        first_reply_at,
        resolved_at,
        None if csat is None else SurveyAnswer(*csat),
        None if nps is None else SurveyAnswer(*nps),
        last,
        frozenset(seen),
        *life,
    )


def _opened(at: int, event_id: str, queue: str, channel: str, priority: str) -> Opened:
    """An Opened with its label strings interned, as the decoder gives them."""
    return Opened(at, event_id, sys.intern(queue), sys.intern(channel), sys.intern(priority))


def _dump_answer(answer: SurveyAnswer | None) -> list[Any] | None:
    return None if answer is None else [answer.at, answer.event_id, answer.score]
