"""Contacts as an entity kind (contract section 7): record, fold, measurements, index.

A contact is one call, chat or video session. Like a ticket, every field is a lattice
join (min, max, or the smallest (occurred_at, event_id)), so any arrival order of the
same events gives the same record; the processor's seen-id check makes a replay harmless.
"""

from __future__ import annotations

import sys
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

import orjson

from stream.kpi.centre import (
    UNKNOWN_CONTACT_DIMS,
    ContactDims,
    ContactLive,
    Slot,
    add_into,
    zeros,
)
from stream.kpi.entity import EntityRecord, last_event_at_after_seen, pack_seen, unpack_seen
from stream.kpi.event import Event
from stream.kpi.index import _count_bucket, _slid, _sum_buckets
from stream.kpi.settings import KpiConfig
from stream.kpi.snapshot import Snapshot
from stream.kpi.state import load_parts, parts_of
from stream.kpi.types import CONTACT_TOPICS, UNASSIGNED
from stream.kpi.windows import RETAIN_BUCKETS, WINDOWS, bucket, window_buckets

TABLE: Final = "contacts"


@dataclass(slots=True, eq=False)
class Contact(EntityRecord):
    """Everything known about one contact. Times are epoch milliseconds.

    The winning `contact.queued` (smallest (occurred_at, event_id)) gives `queued_at` ..
    `channel`; the winning `contact.answered` likewise gives `answered_at` .. `agent`.
    """

    queued_at: int | None = None
    queued_event_id: str | None = None
    queue: str | None = None
    channel: str | None = None
    answered_at: int | None = None
    answered_event_id: str | None = None
    agent: str | None = None  # the `agent` label: "unassigned" when the event named none
    abandoned_at: int | None = None  # smallest contact.abandoned
    ended_at: int | None = None  # largest contact.ended
    wrapped_at: int | None = None  # largest contact.wrapped

    @property
    def left_queue_at(self) -> int | None:
        """When an unanswered contact was abandoned (abandon event, else hang-up); else None."""
        if self.answered_at is not None:
            return None
        return self.abandoned_at if self.abandoned_at is not None else self.ended_at


def apply(contact: Contact, event: Event) -> bool:
    """Fold an unseen `event` into `contact` in place; True when a KPI field changed."""
    kind, at, event_id = event.type, event.occurred_at, event.event_id
    if kind == "contact.queued":
        if contact.queued_at is not None and (at, event_id) >= (
            contact.queued_at,
            contact.queued_event_id or "",
        ):
            return False
        contact.queued_at, contact.queued_event_id = at, event_id
        contact.queue, contact.channel = event.queue or "", event.channel or "other"
        return True
    if kind == "contact.answered":
        if contact.answered_at is not None and (at, event_id) >= (
            contact.answered_at,
            contact.answered_event_id or "",
        ):
            return False
        contact.answered_at, contact.answered_event_id = at, event_id
        contact.agent = sys.intern(event.agent_id or UNASSIGNED)
        return True
    if kind == "contact.abandoned":
        if contact.abandoned_at is not None and at >= contact.abandoned_at:
            return False
        contact.abandoned_at = at
        return True
    if kind == "contact.ended":
        if contact.ended_at is not None and at <= contact.ended_at:
            return False
        contact.ended_at = at
        return True
    if contact.wrapped_at is not None and at <= contact.wrapped_at:
        return False
    contact.wrapped_at = at
    return True


Increments = tuple[tuple[int, int], ...]


class ContactContribution(NamedTuple):
    """What one contact adds: increments per minute bucket, per dims and per agent, and its
    live state (`waiting_since` = queued_at while waiting, `talking_since` = answered_at)."""

    dims: ContactDims
    parts: tuple[tuple[int, Increments], ...]
    agent_parts: tuple[tuple[int, str, Increments], ...]
    waiting_since: int | None
    talking_since: int | None


def contribution(contact: Contact, config: KpiConfig) -> ContactContribution | None:
    """The measurements and live state of `contact`, or None when it adds nothing."""
    queued_at, answered_at = contact.queued_at, contact.answered_at
    channel = contact.channel or "other"
    dims = UNKNOWN_CONTACT_DIMS if queued_at is None else (contact.queue or "", channel)
    agent = contact.agent or UNASSIGNED
    parts: list[tuple[int, Increments]] = []
    agent_parts: list[tuple[int, str, Increments]] = []

    def add(at: int, increments: Increments, who: str) -> None:
        parts.append((bucket(at), increments))
        agent_parts.append((bucket(at), who, increments))

    left_at = contact.left_queue_at
    if queued_at is not None:
        add(queued_at, ((Slot.QUEUED, 1),), agent)
        if answered_at is not None:
            wait = max(0, answered_at - queued_at)
            within = int(wait <= config.contact_service_level_ms(channel))
            answer = ((Slot.ANSWERED, 1), (Slot.WITHIN, within), (Slot.ANSWER_WAIT_MS, wait))
            add(answered_at, answer, agent)
        elif left_at is not None:
            wait = max(0, left_at - queued_at)
            if wait < config.short_abandon_ms:
                add(left_at, ((Slot.ABANDONED_SHORT, 1),), UNASSIGNED)
            else:
                add(left_at, ((Slot.ABANDONED, 1), (Slot.ABANDON_WAIT_MS, wait)), UNASSIGNED)
    if answered_at is not None and contact.ended_at is not None:
        talk = max(0, contact.ended_at - answered_at)
        wrapped = contact.wrapped_at
        after = 0 if wrapped is None else max(0, wrapped - contact.ended_at)
        handled = (
            (Slot.HANDLED, 1),
            (Slot.TALK_MS, talk),
            (Slot.AFTER_WORK_MS, after),
            (Slot.HANDLE_MS, talk + after),
        )
        add(contact.ended_at, handled, agent)
    waiting = queued_at if answered_at is None and left_at is None else None
    talking = answered_at if contact.ended_at is None else None
    if not parts and waiting is None and talking is None:
        return None
    return ContactContribution(dims, tuple(parts), tuple(agent_parts), waiting, talking)


# What a local snapshot saves of a contact index (the window totals follow from the cells).
CONTACT_STATE: Final = ("horizon", "waiting", "talking", "cells", "agent_cells")
CONTACT_CELLS: Final = ("cells", "agent_cells")


class ContactIndex:
    """Contact aggregates of one partition: minute cells per dims and per agent, the window
    totals per dims (slid with the clock like the ticket index's), and the queued_at /
    answered_at of live contacts (sorted, for staleness and the oldest wait).

    The window totals per agent are summed from the minute cells by a snapshot that asks for
    them (`/api/agents`, `KPI_AGENT_METRICS`): kept up per event, they cost every contact
    event ~12 % more (decision snapshot-per-agent-on-demand)."""

    def __init__(self, stale_ms: int, tz: ZoneInfo) -> None:
        self.stale_ms, self.tz = stale_ms, tz
        self.cells: dict[int, dict[ContactDims, list[int]]] = {}
        self.agent_cells: dict[int, dict[str, list[int]]] = {}
        self.totals: dict[str, dict[ContactDims, list[int]]] = {w: {} for w in WINDOWS}
        # Dims / agent -> how many minute buckets hold a cell of it: the keys "seen".
        self.buckets_of: dict[ContactDims, int] = {}
        self.buckets_of_agent: dict[str, int] = {}
        self.ranges: dict[str, tuple[int, int]] | None = None  # window buckets of the totals
        # (first, last, totals) of each window, for the per-event updates.
        self.spans: list[tuple[int, int, dict[ContactDims, list[int]]]] = []
        self.waiting: dict[ContactDims, list[int]] = {}
        self.talking: dict[ContactDims, list[int]] = {}
        self.horizon: int | None = None  # oldest bucket kept

    def update(self, old: ContactContribution | None, new: ContactContribution | None) -> None:
        """Replace a contact's old contribution with its new one."""
        if old == new:
            return
        if old is not None:
            self._apply(old, -1)
        if new is not None:
            self._apply(new, 1)

    def build(self, contributions: list[ContactContribution]) -> None:
        """Add many contributions into this (empty) index."""
        for found in contributions:
            self._apply(found, 1)

    def _apply(self, contribution: ContactContribution, sign: int) -> None:
        for b, increments in contribution.parts:
            self._increment(False, b, contribution.dims, increments, sign)
        for b, agent, increments in contribution.agent_parts:
            self._increment(True, b, agent, increments, sign)
        for since, lists in (
            (contribution.waiting_since, self.waiting),
            (contribution.talking_since, self.talking),
        ):
            if since is None:
                continue
            times = lists.setdefault(contribution.dims, [])
            if sign > 0:
                insort(times, since)
            else:
                del times[bisect_left(times, since)]
                if not times:
                    del lists[contribution.dims]

    def _increment(
        self, per_agent: bool, b: int, key: Any, increments: Increments, sign: int
    ) -> None:
        """Add (sign 1) or take out (-1) increments of `key` (dims, or an agent when
        `per_agent`) in bucket `b`'s cell, and of dims in the totals of the windows holding
        `b`."""
        if self.horizon is not None and b < self.horizon:
            return  # already dropped (or never kept): nothing to add or take out
        cells: dict[int, dict[Any, list[int]]] = self.agent_cells if per_agent else self.cells
        seen: dict[Any, int] = self.buckets_of_agent if per_agent else self.buckets_of
        by_key = cells.setdefault(b, {})
        cell = by_key.get(key)
        if cell is None:
            cell = by_key[key] = zeros()
            _count_bucket(seen, key, 1)
        for slot, amount in increments:
            cell[slot] += sign * amount
        if sign < 0 and not any(cell):
            del by_key[key]
            _count_bucket(seen, key, -1)
            if not by_key:
                del cells[b]
        if per_agent:
            return
        for first, last, totals in self.spans:
            if first <= b <= last:
                total = totals.get(key)
                if total is None:
                    total = totals[key] = zeros()
                for slot, amount in increments:
                    total[slot] += sign * amount
                if sign < 0 and not any(total):
                    del totals[key]

    def advance(self, now_ms: int) -> None:
        """Move the windows to `now_ms`: slide every window total, drop expired buckets."""
        ranges = window_buckets(now_ms, self.tz)
        previous, self.ranges = self.ranges, ranges
        for name, span in ranges.items():
            old = None if previous is None else previous[name]
            self.totals[name] = _slid(self.cells, self.totals[name], old, span, Slot.SIZE)
        self.spans = [(*ranges[name], self.totals[name]) for name in WINDOWS]
        # Only after sliding: the buckets that just left a window had to be taken out.
        horizon = bucket(now_ms) - RETAIN_BUCKETS + 1
        if self.horizon is None or horizon > self.horizon:
            stale_kinds: tuple[tuple[dict[int, dict[Any, list[int]]], dict[Any, int]], ...] = (
                (self.cells, self.buckets_of),
                (self.agent_cells, self.buckets_of_agent),
            )
            for cells, seen in stale_kinds:
                for stale in [b for b in cells if b < horizon]:
                    for key in cells.pop(stale):
                        _count_bucket(seen, key, -1)
            self.horizon = horizon

    def state(self, now_ms: int) -> list[object]:
        """The index as parts for a local snapshot (`stream.kpi.state`)."""
        return parts_of(self, CONTACT_STATE, CONTACT_CELLS)

    def load_state(self, parts: list[object]) -> None:
        """Become the index `state` gave (the totals are summed at the next snapshot)."""
        load_parts(self, parts, CONTACT_CELLS, Slot.SIZE)
        for cells, seen in (
            (self.cells, self.buckets_of),
            (self.agent_cells, self.buckets_of_agent),
        ):
            for by_key in cells.values():
                for key in by_key:
                    _count_bucket(seen, key, 1)

    def add_to(self, snap: Snapshot) -> None:
        """Add this partition's contacts at `snap.now_ms` into `snap.centre`: window totals
        of every key of the last 26 h (zeros included), per agent too when the snapshot has
        per-agent cells, and live state."""
        now_ms, centre = snap.now_ms, snap.centre
        self.advance(now_ms)
        kinds: list[tuple[dict[str, dict[Any, list[int]]], dict[str, dict[Any, list[int]]], Any]]
        kinds = [(centre.contacts, self.totals, self.buckets_of.keys())]
        if centre.per_agent:
            agent_totals = {
                name: _sum_buckets(self.agent_cells, range(first, last + 1), Slot.SIZE)
                for name, (first, last) in self.ranges.items()  # type: ignore[union-attr]
            }
            kinds.append((centre.by_agent, agent_totals, self.buckets_of_agent.keys()))
        for target, totals_of, seen in kinds:
            for name, totals in totals_of.items():
                into = target[name]
                for key in seen:
                    mine = totals.get(key)
                    if mine is not None:
                        add_into(into, key, mine)
                    elif key not in into:
                        into[key] = zeros()
        lost_before = now_ms - self.stale_ms  # at least stale_ms old: presumed lost
        for dims in self.waiting.keys() | self.talking.keys():
            waiting = self.waiting.get(dims, [])
            talking = self.talking.get(dims, [])
            stale_waiting = bisect_right(waiting, lost_before)
            stale_talking = bisect_right(talking, lost_before)
            centre.live.setdefault(dims, ContactLive()).add(
                ContactLive(
                    waiting=len(waiting) - stale_waiting,
                    in_progress=len(talking) - stale_talking,
                    stale=stale_waiting + stale_talking,
                    oldest_waiting=waiting[stale_waiting] if stale_waiting < len(waiting) else None,
                )
            )


FIELDS: Final = tuple(f for f in Contact.__dataclass_fields__ if f != "seen")


def dumps(contact: Contact) -> bytes:
    """Compact JSON for the changelog: the seen set as hex, then the fields in order."""
    return orjson.dumps([pack_seen(contact.seen).hex(), *(getattr(contact, f) for f in FIELDS)])


def loads(raw: bytes) -> Contact:
    """Inverse of `dumps`; label strings interned, as the decoder gives them."""
    seen, *values = orjson.loads(raw)
    contact = Contact(unpack_seen(bytes.fromhex(seen)), *values)
    for name in ("queue", "channel", "agent"):
        value = getattr(contact, name)
        if value is not None:
            setattr(contact, name, sys.intern(value))
    return contact


class ContactKind:
    """Contacts as an entity kind (`stream.kpi.entity.EntityKind`) under one KPI policy."""

    table = TABLE
    topics = CONTACT_TOPICS

    def __init__(self, config: KpiConfig, tz: ZoneInfo) -> None:
        self.config, self.tz = config, tz
        self.retention_ms = config.retention_ms

    def new(self) -> Contact:
        return Contact()

    def apply(self, record: Contact, event: Any) -> bool:
        return apply(record, event)

    def contribution(self, record: Contact) -> ContactContribution | None:
        return contribution(record, self.config)

    def new_index(self) -> ContactIndex:
        return ContactIndex(self.config.contact_stale_ms, self.tz)

    def dumps(self, record: Contact) -> bytes:
        return dumps(record)

    def loads(self, raw: bytes) -> Contact:
        return loads(raw)

    def last_event_at(self, raw: bytes) -> int:
        return last_event_at_after_seen(raw)
