"""The contact record (contract section 7): merge, measurements and live state.

A contact is one call, chat or video session. Like a ticket, every field is a lattice
join (min, max, or the smallest (occurred_at, event_id)), so any arrival order of the
same events, with any duplicates, gives the same record.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson

from stream.config import KpiConfig
from stream.events import Event
from stream.kpi.entity import fingerprint
from stream.kpi.windows import bucket

TABLE: Final = "contacts"
UNASSIGNED: Final = "unassigned"
# (queue, channel): the label dimensions of contacts.
ContactDims = tuple[str, str]
UNKNOWN_CONTACT_DIMS: Final[ContactDims] = ("unknown", "other")


@dataclass(frozen=True, slots=True)
class Queued:
    """The winning `contact.queued` event: smallest (occurred_at, event_id)."""

    at: int
    event_id: str
    queue: str
    channel: str


@dataclass(frozen=True, slots=True)
class Answer:
    """The winning `contact.answered` event: smallest (occurred_at, event_id)."""

    at: int
    event_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class Contact:
    """Everything known about one contact. Times are epoch milliseconds."""

    contact_id: str
    queued: Queued | None = None
    answer: Answer | None = None
    abandoned_at: int | None = None  # smallest contact.abandoned
    ended_at: int | None = None  # largest contact.ended
    wrapped_at: int | None = None  # largest contact.wrapped
    last_event_at: int = 0
    seen: frozenset[bytes] = frozenset()

    def is_expired(self, now_ms: int, retention_ms: int) -> bool:
        """True once `retention_ms` have passed since the contact's latest event time."""
        return self.last_event_at < now_ms - retention_ms

    @property
    def left_queue_at(self) -> int | None:
        """When an unanswered contact was abandoned (abandon event, else hang-up); else None."""
        if self.answer is not None:
            return None
        return self.abandoned_at if self.abandoned_at is not None else self.ended_at


def agent_label(agent_id: str | None) -> str:
    """The `agent` label of an agent id: absent, null or empty is "unassigned"."""
    return agent_id or UNASSIGNED


def merge(contact: Contact | None, event: Event) -> tuple[Contact, bool]:
    """Fold `event` into `contact`; returns the new record and whether the event id was seen."""
    if contact is None:
        contact = Contact(event.entity_id)
    mark = fingerprint(event.event_id)
    duplicate = mark in contact.seen
    changes: dict[str, Any] = {}
    if not duplicate:
        changes["seen"] = contact.seen | {mark}
    at = event.occurred_at
    if at > contact.last_event_at:
        changes["last_event_at"] = at
    if event.type == "contact.queued":
        queued = Queued(at, event.event_id, event.queue or "", event.channel or "other")
        current = contact.queued
        if current is None or (at, event.event_id) < (current.at, current.event_id):
            changes["queued"] = queued
    elif event.type == "contact.answered":
        answer = Answer(at, event.event_id, sys.intern(agent_label(event.agent_id)))
        if contact.answer is None or (at, event.event_id) < (
            contact.answer.at,
            contact.answer.event_id,
        ):
            changes["answer"] = answer
    elif event.type == "contact.abandoned":
        if contact.abandoned_at is None or at < contact.abandoned_at:
            changes["abandoned_at"] = at
    elif event.type == "contact.ended":
        if contact.ended_at is None or at > contact.ended_at:
            changes["ended_at"] = at
    elif event.type == "contact.wrapped" and (
        contact.wrapped_at is None or at > contact.wrapped_at
    ):
        changes["wrapped_at"] = at
    return (replace(contact, **changes) if changes else contact), duplicate


class Slot:
    """Positions of the contact counters in a cell (sums in integer milliseconds)."""

    QUEUED: Final = 0
    ANSWERED: Final = 1
    WITHIN: Final = 2
    ANSWER_WAIT_MS: Final = 3
    ABANDONED: Final = 4
    ABANDONED_SHORT: Final = 5
    ABANDON_WAIT_MS: Final = 6
    HANDLED: Final = 7
    TALK_MS: Final = 8
    AFTER_WORK_MS: Final = 9
    HANDLE_MS: Final = 10
    SIZE: Final = 11
    # Slots that count contacts (not milliseconds): "measurements" and queue activity.
    COUNTS: Final = (QUEUED, ANSWERED, ABANDONED, ABANDONED_SHORT, HANDLED)


Increments = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class ContactContribution:
    """What one contact adds: increments per minute bucket, per dims and per agent, and its
    live state (`waiting_since` = queued_at while waiting, `talking_since` = answered_at)."""

    dims: ContactDims
    parts: tuple[tuple[int, Increments], ...]
    agent_parts: tuple[tuple[int, str, Increments], ...]
    waiting_since: int | None
    talking_since: int | None


def contribution(contact: Contact, config: KpiConfig) -> ContactContribution | None:
    """The measurements and live state of `contact`, or None when it adds nothing."""
    queued, answer = contact.queued, contact.answer
    dims = UNKNOWN_CONTACT_DIMS if queued is None else (queued.queue, queued.channel)
    agent = UNASSIGNED if answer is None else answer.agent_id
    parts: list[tuple[int, Increments]] = []
    agent_parts: list[tuple[int, str, Increments]] = []

    def add(at: int, increments: Increments, who: str) -> None:
        parts.append((bucket(at), increments))
        agent_parts.append((bucket(at), who, increments))

    left_at = contact.left_queue_at
    if queued is not None:
        add(queued.at, ((Slot.QUEUED, 1),), agent)
        threshold = config.contact_service_level_ms(queued.channel)
        if answer is not None:
            wait = max(0, answer.at - queued.at)
            within = int(wait <= threshold)
            add(
                answer.at,
                ((Slot.ANSWERED, 1), (Slot.WITHIN, within), (Slot.ANSWER_WAIT_MS, wait)),
                agent,
            )
        elif left_at is not None:
            wait = max(0, left_at - queued.at)
            if wait < config.short_abandon_ms:
                add(left_at, ((Slot.ABANDONED_SHORT, 1),), UNASSIGNED)
            else:
                add(left_at, ((Slot.ABANDONED, 1), (Slot.ABANDON_WAIT_MS, wait)), UNASSIGNED)
    if answer is not None and contact.ended_at is not None:
        talk = max(0, contact.ended_at - answer.at)
        after = 0 if contact.wrapped_at is None else max(0, contact.wrapped_at - contact.ended_at)
        handled = (
            (Slot.HANDLED, 1),
            (Slot.TALK_MS, talk),
            (Slot.AFTER_WORK_MS, after),
            (Slot.HANDLE_MS, talk + after),
        )
        add(contact.ended_at, handled, agent)
    waiting = queued.at if queued is not None and answer is None and left_at is None else None
    talking = answer.at if answer is not None and contact.ended_at is None else None
    if not parts and waiting is None and talking is None:
        return None
    return ContactContribution(dims, tuple(parts), tuple(agent_parts), waiting, talking)


def dumps(contact: Contact) -> bytes:
    """Compact JSON for the changelog and the state store."""
    queued, answer = contact.queued, contact.answer
    return orjson.dumps(
        [
            contact.contact_id,
            None if queued is None else [queued.at, queued.event_id, queued.queue, queued.channel],
            None if answer is None else [answer.at, answer.event_id, answer.agent_id],
            contact.abandoned_at,
            contact.ended_at,
            contact.wrapped_at,
            contact.last_event_at,
            [mark.hex() for mark in sorted(contact.seen)],
        ]
    )


def loads(raw: bytes) -> Contact:
    """Inverse of `dumps`."""
    contact_id, queued, answer, abandoned_at, ended_at, wrapped_at, last, seen = orjson.loads(raw)
    return Contact(
        contact_id,
        None
        if queued is None
        else Queued(queued[0], queued[1], sys.intern(queued[2]), sys.intern(queued[3])),
        None if answer is None else Answer(answer[0], answer[1], sys.intern(answer[2])),
        abandoned_at,
        ended_at,
        wrapped_at,
        last,
        frozenset(bytes.fromhex(mark) for mark in seen),
    )
