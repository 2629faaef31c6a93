"""Agents as an entity kind (contract section 8): a timeline of status events, at `now`.

The record is the set of status events ordered by (occurred_at, event_id). Only the last
48 h are ever visible, so of the events older than the horizon only the latest matters;
the fold drops the others. The cut-off follows the record's own latest event (minus the
300 s an event may be ahead of the clock), never the arrival order, so any order of the
same events gives the same record. The seen-id set holds the kept events only, so a
long-serving agent never reaches `max_events_per_entity`.
"""

from __future__ import annotations

import sys
from bisect import insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

import orjson

from stream.kpi.centre import CentreSnapshot, Current
from stream.kpi.entity import EntityRecord, Seen, fingerprint, unpack_seen
from stream.kpi.event import MAX_FUTURE_MS, Event
from stream.kpi.settings import KpiConfig
from stream.kpi.snapshot import Snapshot
from stream.kpi.types import AGENT_TOPICS
from stream.kpi.windows import MINUTE_MS, window_buckets

TABLE: Final = "agents"
HORIZON_MS: Final = 48 * 3_600_000


class Status(NamedTuple):
    """One status event: the status holds from `at` until the next event of the timeline."""

    at: int
    event_id: str
    status: str
    team: str


@dataclass(slots=True, eq=False)
class Agent(EntityRecord):
    """An agent's id and timeline (sorted), pruned to what the 48 h horizon can show."""

    agent_id: str = ""
    timeline: tuple[Status, ...] = ()


class Timeline(NamedTuple):
    """An agent's contribution to its partition's index: the timeline, evaluated at scrape."""

    agent_id: str
    events: tuple[Status, ...]


def apply(agent: Agent, event: Event) -> bool:
    """Fold an unseen status event into `agent` in place; True when the timeline changed."""
    entry = Status(
        event.occurred_at, event.event_id, event.status or "offline", event.team or "default"
    )
    agent.agent_id = event.entity_id
    if entry in agent.timeline:  # a redelivery
        return False
    timeline = list(agent.timeline)
    insort(timeline, entry)
    kept = prune(timeline)
    # Only the kept events' ids: a dropped old event that comes again is dropped again.
    agent.seen = seen_of(kept)
    changed = kept != agent.timeline
    agent.timeline = kept
    return changed


def seen_of(timeline: tuple[Status, ...]) -> Seen:
    """The seen-id set of a timeline: the fingerprints of its events."""
    return unpack_seen(b"".join(sorted({fingerprint(s.event_id) for s in timeline})))


def prune(timeline: list[Status]) -> tuple[Status, ...]:
    """Drop events older than the latest one before the cut-off: no `now` can show them."""
    cutoff = timeline[-1].at - HORIZON_MS - MAX_FUTURE_MS
    first = 0
    for index, entry in enumerate(timeline):
        if entry.at > cutoff:
            break
        first = index
    return tuple(timeline[first:])


def current(timeline: Timeline, now_ms: int, stale_ms: int) -> Current | None:
    """The status at `now_ms` (events after `now_ms` not yet counted); None when gone."""
    latest = next((s for s in reversed(timeline.events) if s.at <= now_ms), None)
    if latest is None or latest.at < now_ms - HORIZON_MS:
        return None
    status = "offline" if now_ms - latest.at > stale_ms else latest.status
    return Current(status, latest.team, latest.at)


def stretches(
    timeline: Timeline, now_ms: int, stale_ms: int
) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, status, team) of the last 48 h up to `now_ms`; nothing when gone.

    A status runs until the next event, but at most `stale_ms` past its own event; the
    time after that is `offline` (with the team of the event that began the stretch).
    """
    if current(timeline, now_ms, stale_ms) is None:
        return
    horizon = now_ms - HORIZON_MS
    events = [s for s in timeline.events if s.at <= now_ms]
    for index, entry in enumerate(events):
        end = events[index + 1].at if index + 1 < len(events) else now_ms
        if end <= horizon:
            continue
        capped = min(end, entry.at + stale_ms)
        for start, stop, status in ((entry.at, capped, entry.status), (capped, end, "offline")):
            start = max(start, horizon)
            if stop > start:
                yield start, stop, status, entry.team


def agent_times(
    centre: CentreSnapshot, timelines: Iterable[Timeline], now_ms: int, tz: ZoneInfo, stale_ms: int
) -> None:
    """Add the agents' current state and time in status per window at `now_ms` (per agent
    too when `centre.per_agent`)."""
    starts = {name: first * MINUTE_MS for name, (first, _) in window_buckets(now_ms, tz).items()}
    for timeline in timelines:
        state = current(timeline, now_ms, stale_ms)
        if state is None:
            continue
        centre.agents[timeline.agent_id] = state
        for start, end, status, team in stretches(timeline, now_ms, stale_ms):
            for name, window_start in starts.items():
                ms = end - max(start, window_start)
                if ms <= 0:
                    continue
                times = centre.status_ms[name]
                times[team, status] = times.get((team, status), 0) + ms
                if centre.per_agent:
                    of_agent = centre.agent_ms[name].setdefault(timeline.agent_id, {})
                    of_agent[status] = of_agent.get(status, 0) + ms


class AgentIndex:
    """The timelines of one partition's agents; time in status is computed at scrape time,
    since the last status of each agent runs until `now`."""

    def __init__(self, stale_ms: int, tz: ZoneInfo) -> None:
        self.stale_ms, self.tz = stale_ms, tz
        self.timelines: dict[str, Timeline] = {}

    def update(self, old: Timeline | None, new: Timeline | None) -> None:
        """Replace an agent's old timeline with its new one."""
        if old is not None:
            self.timelines.pop(old.agent_id, None)
        if new is not None:
            self.timelines[new.agent_id] = new

    def build(self, contributions: list[Timeline]) -> None:
        """Add many timelines into this (empty) index."""
        for timeline in contributions:
            self.timelines[timeline.agent_id] = timeline

    def state(self, now_ms: int) -> None:
        """Not saved: a few hundred agents' timelines are rebuilt from their records."""
        return None

    def load_state(self, parts: list[object]) -> None:
        raise NotImplementedError("agent indexes are rebuilt from records")

    def add_to(self, snap: Snapshot) -> None:
        """Add the agents' current state and time in status at `snap.now_ms` into `snap`."""
        agent_times(snap.centre, self.timelines.values(), snap.now_ms, self.tz, self.stale_ms)


def dumps(agent: Agent) -> bytes:
    """Compact JSON for the changelog (the seen set follows from the timeline)."""
    return orjson.dumps([agent.agent_id, agent.last_event_at, [list(s) for s in agent.timeline]])


def loads(raw: bytes) -> Agent:
    """Inverse of `dumps`."""
    agent_id, last, timeline = orjson.loads(raw)
    intern = sys.intern
    events = tuple(Status(at, eid, intern(st), intern(team)) for at, eid, st, team in timeline)
    return Agent(seen_of(events), last, agent_id, events)


class AgentKind:
    """Agents as an entity kind (`stream.kpi.entity.EntityKind`) under one KPI policy."""

    table = TABLE
    topics = AGENT_TOPICS
    retention_ms = HORIZON_MS  # no event in 48 h: the agent is gone

    def __init__(self, config: KpiConfig, tz: ZoneInfo) -> None:
        self.stale_ms, self.tz = config.agent_stale_ms, tz

    def new(self) -> Agent:
        return Agent()

    def apply(self, record: Agent, event: Any) -> bool:
        return apply(record, event)

    def contribution(self, record: Agent) -> Timeline | None:
        return Timeline(record.agent_id, record.timeline) if record.timeline else None

    def new_index(self) -> AgentIndex:
        return AgentIndex(self.stale_ms, self.tz)

    def dumps(self, record: Agent) -> bytes:
        return dumps(record)

    def loads(self, raw: bytes) -> Agent:
        return loads(raw)

    def last_event_at(self, raw: bytes) -> int:
        return loads(raw).last_event_at  # a handful of agents: a decode is cheap
