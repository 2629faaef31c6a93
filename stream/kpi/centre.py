"""The contact centre at one instant: contact measurements per window, live queues, agents.

A `CentreSnapshot` is what the contact and agent indexes of some partitions give at one
instant (`stream.kpi.contact`, `stream.kpi.agent`); it rides in the ticket `Snapshot`, adds
up across partitions and workers like it, and the KPI ratios come from the merged one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import add
from typing import Any, Final

from stream.kpi.contrib import Layout
from stream.kpi.types import AGENT_STATUSES, OTHER_QUEUE, UNASSIGNED
from stream.kpi.windows import WINDOWS

# (queue, channel): the label dimensions of contacts.
ContactDims = tuple[str, str]
UNKNOWN_CONTACT_DIMS: Final[ContactDims] = ("unknown", "other")
STAFFED: Final = frozenset(AGENT_STATUSES) - {"offline"}
OCCUPIED: Final = frozenset({"busy", "after_contact_work"})


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


@dataclass(frozen=True, slots=True)
class Current:
    """An agent's state at `now`: status, team, and `since` (its latest event's time)."""

    status: str
    team: str
    since: int


OTHER_AGENT: Final = "other"
# Ticket slots that count an agent's measurements (section 8): first responses,
# resolutions, CSAT and NPS answers (an opened ticket is nobody's work).
TICKET_MEASUREMENTS: Final = (
    Layout.FRT_COUNT,
    Layout.RES_COUNT,
    Layout.CSAT_COUNT,
    Layout.NPS,
    Layout.NPS + 1,
    Layout.NPS + 2,
)
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


def zeros() -> list[int]:
    """An empty contact cell."""
    return [0] * Slot.SIZE


def add_into(into: dict[Any, list[int]], key: Any, cell: list[int]) -> None:
    """Add `cell` into `into[key]` in place; a key seen first gets a copy of `cell`.

    So `into` owns every list it holds (a snapshot's cells are never shared), and adding
    a partition's cell into a merged snapshot allocates nothing.
    """
    current = into.get(key)
    if current is None:
        into[key] = cell.copy()
    elif len(current) != len(cell):
        raise ValueError(f"cells of {key!r} differ in length: {len(current)} and {len(cell)}")
    else:
        current[:] = map(add, current, cell)


@dataclass
class CentreSnapshot:
    """Contacts per window and (queue, channel) or agent, live contacts, and agents' time.

    `status_ms` is time in status per window and (team, status); `agent_ms` the same per
    agent; `agents` the current state of every agent with an event in the last 48 h.
    `tickets_by_agent` holds the ticket cells (`stream.kpi.contrib.Layout`) per window and
    agent, so the agents are capped together over contacts and tickets.

    The per-agent parts (`by_agent`, `tickets_by_agent`, `agent_ms`) are filled only when
    `per_agent` is True: only `/api/agents` and the `cs_by_agent_…` series read them, and
    with thousands of agents they are nearly all of a snapshot's cost.
    """

    contacts: dict[str, dict[ContactDims, list[int]]] = field(
        default_factory=lambda: {w: {} for w in WINDOWS}
    )
    by_agent: dict[str, dict[str, list[int]]] = field(
        default_factory=lambda: {w: {} for w in WINDOWS}
    )
    tickets_by_agent: dict[str, dict[str, list[int]]] = field(
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
    per_agent: bool = True

    def merge(self, other: CentreSnapshot) -> None:
        """Add `other` (taken at the same instant) into this snapshot; its per-agent parts
        only when this one has them (then `other` must have them too)."""
        pairs: list[tuple[dict[str, dict[Any, list[int]]], dict[str, dict[Any, list[int]]]]]
        pairs = [(self.contacts, other.contacts)]
        if self.per_agent:
            if not other.per_agent:
                raise ValueError("a snapshot without per-agent cells cannot merge into one with")
            pairs += [
                (self.by_agent, other.by_agent),
                (self.tickets_by_agent, other.tickets_by_agent),
            ]
        for mine, theirs in pairs:
            for name, cells in theirs.items():
                for key, cell in cells.items():
                    add_into(mine.setdefault(name, {}), key, cell)
        for dims, live in other.live.items():
            self.live.setdefault(dims, ContactLive()).add(live)
        for name, times in other.status_ms.items():
            into = self.status_ms.setdefault(name, {})
            for team_status, ms in times.items():
                into[team_status] = into.get(team_status, 0) + ms
        for name, of_agents in other.agent_ms.items() if self.per_agent else ():
            agents_into = self.agent_ms.setdefault(name, {})
            for agent, times_of in of_agents.items():
                mine_of = agents_into.setdefault(agent, {})
                for status, ms in times_of.items():
                    mine_of[status] = mine_of.get(status, 0) + ms
        self.agents.update(other.agents)

    def capped(self, max_queues: int, max_agents: int) -> CentreSnapshot:
        """A copy with queues beyond `max_queues` and agents beyond `max_agents` as "other".

        Queues rank by the contacts they counted in the 24h window plus those live; agents
        by their contact and ticket measurements in the 24h window (`unassigned` always
        keeps its name); ties
        by name, so the choice depends only on the state. Teams are capped at export.
        """
        activity: dict[str, int] = {}
        for (queue, _), cell in self.contacts["24h"].items():
            activity[queue] = activity.get(queue, 0) + sum(cell[s] for s in Slot.COUNTS)
        for (queue, _), live in self.live.items():
            activity[queue] = activity.get(queue, 0) + live.waiting + live.in_progress
        queues = keep(activity, max_queues, UNKNOWN_CONTACT_DIMS[0])
        agents = keep(self.measurements(), max_agents, UNASSIGNED)
        if queues is None and agents is None:
            return self

        def queue_of(dims: ContactDims) -> ContactDims:
            return dims if queues is None or dims[0] in queues else (OTHER_QUEUE, dims[1])

        def agent_of(agent: str) -> str:
            return agent if agents is None or agent in agents else OTHER_AGENT

        out = CentreSnapshot(per_agent=self.per_agent)
        for name, cells in self.contacts.items():
            for dims, cell in cells.items():
                add_into(out.contacts[name], queue_of(dims), cell)
        for mine, theirs in (
            (out.by_agent, self.by_agent),
            (out.tickets_by_agent, self.tickets_by_agent),
        ):
            for name, agent_cells in theirs.items():
                for agent, cell in agent_cells.items():
                    add_into(mine[name], agent_of(agent), cell)
        for dims, live in self.live.items():
            out.live.setdefault(queue_of(dims), ContactLive()).add(live)
        out.status_ms, out.agent_ms, out.agents = self.status_ms, self.agent_ms, self.agents
        return out

    def measurements(self) -> dict[str, int]:
        """Per agent: its contacts and ticket measurements in the 24h window."""
        measured = {
            agent: sum(cell[s] for s in Slot.COUNTS) for agent, cell in self.by_agent["24h"].items()
        }
        for agent, cell in self.tickets_by_agent["24h"].items():
            measured[agent] = measured.get(agent, 0) + sum(cell[s] for s in TICKET_MEASUREMENTS)
        return measured

    def to_jsonable(self) -> dict[str, Any]:
        """A JSON-ready form, for the fan-out between workers."""
        return {
            "contacts": {w: [[*d, c] for d, c in v.items()] for w, v in self.contacts.items()},
            "by_agent": {w: list(v.items()) for w, v in self.by_agent.items()},
            "tickets_by_agent": {w: list(v.items()) for w, v in self.tickets_by_agent.items()},
            "live": [
                [*d, v.waiting, v.in_progress, v.stale, v.oldest_waiting]
                for d, v in self.live.items()
            ],
            "status_ms": {w: [[*k, ms] for k, ms in v.items()] for w, v in self.status_ms.items()},
            "agent_ms": self.agent_ms,
            "agents": [[a, c.status, c.team, c.since] for a, c in self.agents.items()],
            "per_agent": self.per_agent,
        }

    @classmethod
    def from_jsonable(cls, data: dict[str, Any]) -> CentreSnapshot:
        """Inverse of `to_jsonable` (a peer that does not say `per_agent` sends them all)."""
        snap = cls(per_agent=bool(data.get("per_agent", True)))
        snap.contacts = {w: {(q, c): cell for q, c, cell in v} for w, v in data["contacts"].items()}
        snap.by_agent = {w: dict(v) for w, v in data["by_agent"].items()}
        snap.tickets_by_agent = {w: dict(v) for w, v in data["tickets_by_agent"].items()}
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
