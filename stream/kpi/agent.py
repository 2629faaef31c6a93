"""The agent record (contract section 8): a timeline of status events, evaluated at `now`.

The record is the set of status events ordered by (occurred_at, event_id). Only the last
48 h are ever visible, so of the events older than the horizon only the latest matters;
the merge drops the others. The cut-off follows the record's own latest event (minus the
300 s an event may be ahead of the clock), never the arrival order, so any order of the
same events, with any duplicates, gives the same record.
"""

from __future__ import annotations

import sys
from bisect import insort
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import orjson

from stream.events import MAX_FUTURE_MS, Event
from stream.kpi.entity import fingerprint
from stream.kpi.types import AGENT_STATUSES

TABLE: Final = "agents"
HORIZON_MS: Final = 48 * 3_600_000
STAFFED: Final = frozenset(AGENT_STATUSES) - {"offline"}
OCCUPIED: Final = frozenset({"busy", "after_contact_work"})


@dataclass(frozen=True, slots=True, order=True)
class Status:
    """One status event: the status holds from `at` until the next event of the timeline."""

    at: int
    event_id: str
    status: str
    team: str


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent's timeline (sorted), pruned to what the 48 h horizon can still show."""

    agent_id: str
    timeline: tuple[Status, ...] = ()

    @property
    def seen(self) -> frozenset[bytes]:
        """Fingerprints of the kept events (a dropped old event counts as new if it returns)."""
        return frozenset(fingerprint(s.event_id) for s in self.timeline)

    @property
    def last_event_at(self) -> int:
        """occurred_at of the latest status event (0 for an empty timeline)."""
        return self.timeline[-1].at if self.timeline else 0

    def is_expired(self, now_ms: int) -> bool:
        """True when the agent has had no event in the last 48 h: it is gone."""
        return self.last_event_at < now_ms - HORIZON_MS


def merge(agent: Agent | None, event: Event) -> tuple[Agent, bool]:
    """Fold a status event into `agent`; returns the new record and whether it was seen."""
    if agent is None:
        agent = Agent(event.entity_id)
    entry = Status(
        event.occurred_at, event.event_id, event.status or "offline", event.team or "default"
    )
    timeline = list(agent.timeline)
    same = next((s for s in timeline if s.event_id == entry.event_id), None)
    if same is not None:
        # A reused id with other content: the smaller entry wins, whatever came first.
        if same <= entry:
            return agent, True
        timeline.remove(same)
    insort(timeline, entry)
    return Agent(agent.agent_id, _prune(timeline)), same is not None


def _prune(timeline: list[Status]) -> tuple[Status, ...]:
    """Drop events older than the latest one before the cut-off: no `now` can show them."""
    cutoff = timeline[-1].at - HORIZON_MS - MAX_FUTURE_MS
    first = 0
    for index, entry in enumerate(timeline):
        if entry.at > cutoff:
            break
        first = index
    return tuple(timeline[first:])


@dataclass(frozen=True, slots=True)
class Current:
    """An agent's state at `now`: status, team, and `since` (its latest event's time)."""

    status: str
    team: str
    since: int


def current(agent: Agent, now_ms: int, stale_ms: int) -> Current | None:
    """The status at `now_ms` (events after `now_ms` not yet counted); None when gone."""
    latest = _latest_at(agent, now_ms)
    if latest is None or latest.at < now_ms - HORIZON_MS:
        return None
    status = "offline" if now_ms - latest.at > stale_ms else latest.status
    return Current(status, latest.team, latest.at)


def stretches(agent: Agent, now_ms: int, stale_ms: int) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, status, team) of the last 48 h up to `now_ms`; nothing when gone.

    A status runs until the next event, but at most `stale_ms` past its own event; the
    time after that is `offline` (with the team of the event that began the stretch).
    """
    if current(agent, now_ms, stale_ms) is None:
        return
    horizon = now_ms - HORIZON_MS
    events = [s for s in agent.timeline if s.at <= now_ms]
    for index, entry in enumerate(events):
        end = events[index + 1].at if index + 1 < len(events) else now_ms
        if end <= horizon:
            continue
        capped = min(end, entry.at + stale_ms)
        for start, stop, status in (
            (entry.at, capped, entry.status),
            (capped, end, "offline"),
        ):
            start = max(start, horizon)
            if stop > start:
                yield start, stop, status, entry.team


def _latest_at(agent: Agent, now_ms: int) -> Status | None:
    for entry in reversed(agent.timeline):
        if entry.at <= now_ms:
            return entry
    return None


def dumps(agent: Agent) -> bytes:
    """Compact JSON for the changelog and the state store."""
    return orjson.dumps(
        [agent.agent_id, [[s.at, s.event_id, s.status, s.team] for s in agent.timeline]]
    )


def loads(raw: bytes) -> Agent:
    """Inverse of `dumps`."""
    agent_id, timeline = orjson.loads(raw)
    return Agent(
        agent_id,
        tuple(Status(at, eid, sys.intern(st), sys.intern(team)) for at, eid, st, team in timeline),
    )
