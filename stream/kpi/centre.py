"""The contact centre at one instant: contact measurements per window, live queues, agents.

`ContactIndex` keeps one partition's contact contributions in minute buckets (old one
out, new one in, like the ticket index); agent timelines are evaluated at `now` because
the last status runs until then. Both end in a `CentreSnapshot`, which adds up across
partitions and workers like the ticket snapshot; the KPI ratios come from the merged one.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson

from stream.kpi.agent import OCCUPIED, STAFFED, Agent, Current, current, stretches
from stream.kpi.contact import (
    UNASSIGNED,
    UNKNOWN_CONTACT_DIMS,
    ContactContribution,
    ContactDims,
    Slot,
)
from stream.kpi.types import OTHER_QUEUE
from stream.kpi.windows import MINUTE_MS, RETAIN_BUCKETS, WINDOWS, bucket, window_buckets

OTHER_AGENT: Final = "other"
CONTACT_KPI_NAMES: Final = (
    "contact_service_level_ratio",
    "contact_abandonment_ratio",
    "contact_answer_time_average_seconds",
    "contact_handle_time_average_seconds",
)


@dataclass(slots=True)
class ContactLive:
    """Live contacts of one (queue, channel): waiting, in progress, presumed lost, oldest."""

    waiting: int = 0
    in_progress: int = 0
    stale: int = 0
    oldest_waiting: int | None = None

    def add(self, other: ContactLive) -> None:
        """Add `other` into this one (oldest is the minimum)."""
        self.waiting += other.waiting
        self.in_progress += other.in_progress
        self.stale += other.stale
        if other.oldest_waiting is not None and (
            self.oldest_waiting is None or other.oldest_waiting < self.oldest_waiting
        ):
            self.oldest_waiting = other.oldest_waiting


def _zeros() -> list[int]:
    return [0] * Slot.SIZE


def _add_into(into: dict[Any, list[int]], key: Any, cell: Iterable[int], sign: int = 1) -> None:
    current_cell = into.get(key)
    if current_cell is None:
        into[key] = [sign * v for v in cell]
    else:
        into[key] = [a + sign * v for a, v in zip(current_cell, cell, strict=True)]


class ContactIndex:
    """Contact aggregates of one partition: minute cells per dims and per agent, live lists."""

    def __init__(self, stale_ms: int) -> None:
        self.stale_ms = stale_ms
        self.cells: dict[int, dict[ContactDims, list[int]]] = {}
        self.agent_cells: dict[int, dict[str, list[int]]] = {}
        self.waiting: dict[ContactDims, list[int]] = {}  # sorted queued_at
        self.talking: dict[ContactDims, list[int]] = {}  # sorted answered_at
        self.horizon: int | None = None  # oldest bucket kept

    def update(self, old: ContactContribution | None, new: ContactContribution | None) -> None:
        """Replace a contact's old contribution with its new one."""
        if old == new:
            return
        if old is not None:
            self._apply(old, -1)
        if new is not None:
            self._apply(new, 1)

    def _apply(self, contribution: ContactContribution, sign: int) -> None:
        for b, increments in contribution.parts:
            self._increment(self.cells, b, contribution.dims, increments, sign)
        for b, agent, increments in contribution.agent_parts:
            self._increment(self.agent_cells, b, agent, increments, sign)
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
        self,
        cells: dict[int, dict[Any, list[int]]],
        b: int,
        key: Any,
        increments: tuple[tuple[int, int], ...],
        sign: int,
    ) -> None:
        if self.horizon is not None and b < self.horizon:
            return  # already dropped (or never kept): nothing to add or take out
        by_key = cells.setdefault(b, {})
        cell = by_key.get(key)
        if cell is None:
            cell = by_key[key] = _zeros()
        for slot, amount in increments:
            cell[slot] += sign * amount
        if sign < 0 and not any(cell):
            del by_key[key]
            if not by_key:
                del cells[b]

    def snapshot(self, now_ms: int, tz: ZoneInfo) -> CentreSnapshot:
        """Window totals (every label set of the last 26 h, zeros included) and live state."""
        horizon = bucket(now_ms) - RETAIN_BUCKETS + 1
        if self.horizon is None or horizon > self.horizon:
            for cells in (self.cells, self.agent_cells):
                for stale in [b for b in cells if b < horizon]:
                    del cells[stale]
            self.horizon = horizon
        ranges = window_buckets(now_ms, tz)
        snap = CentreSnapshot(now_ms)
        for target, cells in ((snap.contacts, self.cells), (snap.by_agent, self.agent_cells)):
            keys = {k for by_key in cells.values() for k in by_key}
            for name, (first, last) in ranges.items():
                totals: dict[Any, list[int]] = {k: _zeros() for k in keys}
                for b, by_key in cells.items():
                    if first <= b <= last:
                        for k, cell in by_key.items():
                            _add_into(totals, k, cell)
                target[name] = totals
        lost_before = now_ms - self.stale_ms  # at least stale_ms old: presumed lost
        for dims in self.waiting.keys() | self.talking.keys():
            waiting = self.waiting.get(dims, [])
            talking = self.talking.get(dims, [])
            stale_waiting = bisect_right(waiting, lost_before)
            stale_talking = bisect_right(talking, lost_before)
            snap.live[dims] = ContactLive(
                waiting=len(waiting) - stale_waiting,
                in_progress=len(talking) - stale_talking,
                stale=stale_waiting + stale_talking,
                oldest_waiting=waiting[stale_waiting] if stale_waiting < len(waiting) else None,
            )
        return snap


@dataclass
class CentreSnapshot:
    """Contacts per window and (queue, channel) or agent, live contacts, and agents' time.

    `status_ms` is time in status per window and (team, status); `agent_ms` the same per
    agent; `agents` the current state of every agent with an event in the last 48 h.
    """

    now_ms: int
    contacts: dict[str, dict[ContactDims, list[int]]] = field(
        default_factory=lambda: {w: {} for w in WINDOWS}
    )
    by_agent: dict[str, dict[str, list[int]]] = field(
        default_factory=lambda: {w: {} for w in WINDOWS}
    )
    live: dict[ContactDims, ContactLive] = field(default_factory=dict)
    status_ms: dict[str, dict[tuple[str, str], int]] = field(
        default_factory=lambda: {w: {} for w in WINDOWS}
    )
    agent_ms: dict[str, dict[str, dict[str, int]]] = field(
        default_factory=lambda: {w: {} for w in WINDOWS}
    )
    agents: dict[str, Current] = field(default_factory=dict)

    def merge(self, other: CentreSnapshot) -> None:
        """Add `other` (taken at the same instant) into this snapshot."""
        for mine, theirs in ((self.contacts, other.contacts), (self.by_agent, other.by_agent)):
            for name, cells in theirs.items():
                for key, cell in cells.items():
                    _add_into(mine.setdefault(name, {}), key, cell)
        for dims, live in other.live.items():
            self.live.setdefault(dims, ContactLive()).add(live)
        for name, times in other.status_ms.items():
            into = self.status_ms.setdefault(name, {})
            for team_status, ms in times.items():
                into[team_status] = into.get(team_status, 0) + ms
        for name, per_agent in other.agent_ms.items():
            agents_into = self.agent_ms.setdefault(name, {})
            for agent, times_of in per_agent.items():
                mine_of = agents_into.setdefault(agent, {})
                for status, ms in times_of.items():
                    mine_of[status] = mine_of.get(status, 0) + ms
        self.agents.update(other.agents)

    def add_agents(self, agents: Iterable[Agent], tz: ZoneInfo, stale_ms: int) -> None:
        """Evaluate agent timelines at `now_ms`: current state and time in status per window."""
        now = self.now_ms
        ranges = {name: first * MINUTE_MS for name, (first, _) in window_buckets(now, tz).items()}
        for agent in agents:
            state = current(agent, now, stale_ms)
            if state is None:
                continue
            self.agents[agent.agent_id] = state
            for start, end, status, team in stretches(agent, now, stale_ms):
                for name, window_start in ranges.items():
                    ms = end - max(start, window_start)
                    if ms <= 0:
                        continue
                    times = self.status_ms[name]
                    times[team, status] = times.get((team, status), 0) + ms
                    of_agent = self.agent_ms[name].setdefault(agent.agent_id, {})
                    of_agent[status] = of_agent.get(status, 0) + ms

    def capped(self, max_queues: int, max_agents: int) -> CentreSnapshot:
        """A copy with queues beyond `max_queues` and agents beyond `max_agents` as "other".

        Queues rank by the contacts they counted in the 24h window plus those live; agents
        by their measurements in the 24h window (`unassigned` always keeps its name); ties
        by name, so the choice depends only on the state. Teams are capped at export.
        """
        activity: dict[str, int] = {}
        for (queue, _), cell in self.contacts["24h"].items():
            activity[queue] = activity.get(queue, 0) + sum(cell[s] for s in Slot.COUNTS)
        for (queue, _), live in self.live.items():
            activity[queue] = activity.get(queue, 0) + live.waiting + live.in_progress
        queues = keep(activity, max_queues, UNKNOWN_CONTACT_DIMS[0])
        measured = {
            agent: sum(cell[s] for s in Slot.COUNTS) for agent, cell in self.by_agent["24h"].items()
        }
        agents = keep(measured, max_agents, UNASSIGNED)
        if queues is None and agents is None:
            return self

        def queue_of(dims: ContactDims) -> ContactDims:
            return dims if queues is None or dims[0] in queues else (OTHER_QUEUE, dims[1])

        def agent_of(agent: str) -> str:
            return agent if agents is None or agent in agents else OTHER_AGENT

        out = CentreSnapshot(self.now_ms)
        for name, cells in self.contacts.items():
            for dims, cell in cells.items():
                _add_into(out.contacts[name], queue_of(dims), cell)
        for name, agent_cells in self.by_agent.items():
            for agent, cell in agent_cells.items():
                _add_into(out.by_agent[name], agent_of(agent), cell)
        for dims, live in self.live.items():
            out.live.setdefault(queue_of(dims), ContactLive()).add(live)
        out.status_ms, out.agent_ms, out.agents = self.status_ms, self.agent_ms, self.agents
        return out

    def to_json(self) -> bytes:
        """Serialise for another worker (the system-wide fan-out)."""
        return orjson.dumps(
            {
                "now_ms": self.now_ms,
                "contacts": {w: [[*d, c] for d, c in v.items()] for w, v in self.contacts.items()},
                "by_agent": {w: list(v.items()) for w, v in self.by_agent.items()},
                "live": [
                    [*d, v.waiting, v.in_progress, v.stale, v.oldest_waiting]
                    for d, v in self.live.items()
                ],
                "status_ms": {
                    w: [[*k, ms] for k, ms in v.items()] for w, v in self.status_ms.items()
                },
                "agent_ms": self.agent_ms,
                "agents": [[a, c.status, c.team, c.since] for a, c in self.agents.items()],
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> CentreSnapshot:
        """Inverse of `to_json`."""
        data: dict[str, Any] = orjson.loads(raw)
        snap = cls(data["now_ms"])
        snap.contacts = {w: {(q, c): cell for q, c, cell in v} for w, v in data["contacts"].items()}
        snap.by_agent = {w: dict(v) for w, v in data["by_agent"].items()}
        snap.live = {(q, c): ContactLive(*rest) for q, c, *rest in data["live"]}
        snap.status_ms = {w: {(t, s): ms for t, s, ms in v} for w, v in data["status_ms"].items()}
        snap.agent_ms = data["agent_ms"]
        snap.agents = {a: Current(status, team, since) for a, status, team, since in data["agents"]}
        return snap


def keep(activity: Mapping[str, int], limit: int, always: str) -> set[str] | None:
    """The `limit` most active names (ties by name) plus `always`; None when all fit."""
    ranked = sorted((n for n in activity if n != always), key=lambda n: (-activity[n], n))
    if len(ranked) <= limit:
        return None
    return {*ranked[:limit], always}


def contact_kpis(cell: list[int]) -> dict[str, float | None]:
    """Service level, abandonment, ASA and AHT of a cell; None where the denominator is 0."""
    answered, abandoned, handled = cell[Slot.ANSWERED], cell[Slot.ABANDONED], cell[Slot.HANDLED]
    offered = answered + abandoned
    return {
        "contact_service_level_ratio": cell[Slot.WITHIN] / offered if offered else None,
        "contact_abandonment_ratio": abandoned / offered if offered else None,
        "contact_answer_time_average_seconds": cell[Slot.ANSWER_WAIT_MS] / answered / 1000
        if answered
        else None,
        "contact_handle_time_average_seconds": cell[Slot.HANDLE_MS] / handled / 1000
        if handled
        else None,
    }


def occupancy(ms_by_status: Mapping[str, int]) -> float | None:
    """(busy + after-contact work) / (available + busy + after-contact work); None if 0."""
    occupied = sum(ms_by_status.get(s, 0) for s in OCCUPIED)
    ready = occupied + ms_by_status.get("available", 0)
    return occupied / ready if ready else None


def hourly_cost(team: str, cost_per_hour: Mapping[str, float]) -> float:
    """The team's hourly cost: its own entry, else `default`, else 0."""
    return cost_per_hour.get(team, cost_per_hour.get("default", 0.0))


def staffed_cost(
    times: Mapping[tuple[str, str], int], cost_per_hour: Mapping[str, float]
) -> dict[str, float]:
    """Staffed cost per real team: staffed seconds x the team's hourly cost / 3600."""
    staffed: dict[str, int] = {}
    for (team, status), ms in sorted(times.items()):
        if status in STAFFED:
            staffed[team] = staffed.get(team, 0) + ms
    return {team: ms * hourly_cost(team, cost_per_hour) / 3_600_000 for team, ms in staffed.items()}
