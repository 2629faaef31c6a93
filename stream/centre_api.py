"""JSON of the contact centre for `/api/kpis` (the wallboard) and `/api/agents`.

Built from the merged (system-wide) snapshot, so every worker answers the same.
"""

from __future__ import annotations

from typing import Any

from stream.kpi.centre import (
    OTHER_AGENT,
    CentreSnapshot,
    ContactLive,
    Slot,
    contact_kpis,
    occupancy,
)
from stream.kpi.contrib import Layout
from stream.kpi.gauges import kpis, total
from stream.kpi.types import AGENT_STATUSES, UNASSIGNED
from stream.kpi.windows import from_ms


def contact_centre_document(centre: CentreSnapshot, now_ms: int) -> dict[str, Any]:
    """Contacts per window (overall and per queue), the live queues, agents by status."""
    windows = {}
    for name, cells in centre.contacts.items():
        by_queue: dict[str, list[list[int]]] = {}
        for (queue, _), cell in cells.items():
            by_queue.setdefault(queue, []).append(cell)
        statuses: dict[str, int] = {}
        for (_, status), ms in centre.status_ms[name].items():
            statuses[status] = statuses.get(status, 0) + ms
        windows[name] = {
            "overall": _contact_row(total(cells.values(), Slot.SIZE)),
            "queues": [
                {"queue": q, **_contact_row(total(c, Slot.SIZE))}
                for q, c in sorted(by_queue.items())
            ],
            "occupancy_ratio": occupancy(statuses),
        }
    overall, queues = ContactLive(), dict[str, ContactLive]()
    for (queue, _), live in centre.live.items():
        overall.add(live)
        queues.setdefault(queue, ContactLive()).add(live)
    agents = dict.fromkeys(AGENT_STATUSES, 0)
    for state in centre.agents.values():
        agents[state.status] += 1
    return {
        "windows": windows,
        "live": {
            **_live_row(overall, now_ms),
            "queues": [{"queue": q, **_live_row(v, now_ms)} for q, v in sorted(queues.items())],
        },
        "agents": agents,
    }


def agents_document(centre: CentreSnapshot, now_ms: int) -> dict[str, Any]:
    """Every agent with a status event in the last 48 h or a measurement in the 24h
    window: current status, since, team, and per window its tickets, contacts and occupancy."""
    measured = {agent for agent, count in centre.measurements().items() if count} - {
        UNASSIGNED,
        OTHER_AGENT,
    }
    rows = []
    for agent in sorted(measured | centre.agents.keys()):
        state = centre.agents.get(agent)
        windows = {}
        for name, cells in centre.by_agent.items():
            cell = cells.get(agent) or [0] * Slot.SIZE
            contact = contact_kpis(cell)
            windows[name] = {
                **_ticket_row(centre.tickets_by_agent[name].get(agent)),
                "contacts_answered": cell[Slot.ANSWERED],
                "answer_time_average_seconds": contact["contact_answer_time_average_seconds"],
                "contacts_handled": cell[Slot.HANDLED],
                "handle_time_average_seconds": contact["contact_handle_time_average_seconds"],
                "occupancy_ratio": occupancy(centre.agent_ms[name].get(agent, {})),
            }
        rows.append(
            {
                "agent": agent,
                "status": None if state is None else state.status,
                "since": None if state is None else _rfc3339(state.since),
                "team": None if state is None else state.team,
                "windows": windows,
            }
        )
    return {"as_of": _rfc3339(now_ms), "agents": rows}


def _ticket_row(cell: list[int] | None) -> dict[str, Any]:
    """An agent's ticket counts and KPIs in a window (section 8); None where nothing counts."""
    if cell is None:  # no ticket measurement kept: the counts are 0, the KPIs undefined
        cell = [0] * Layout.COUNTERS
    of = kpis(cell)
    return {
        "first_responses": cell[Layout.FRT_COUNT],
        "first_response_time_average_seconds": of["first_response_time_average_seconds"],
        "first_response_sla_attainment_ratio": of["first_response_sla_attainment_ratio"],
        "resolutions": cell[Layout.RES_COUNT],
        "resolution_time_average_seconds": of["resolution_time_average_seconds"],
        "one_touch_resolution_ratio": of["one_touch_resolution_ratio"],
        "reopened_resolution_ratio": of["reopened_resolution_ratio"],
        "csat_responses": cell[Layout.CSAT_COUNT],
        "csat_ratio": of["csat_ratio"],
        "nps_responses": sum(cell[Layout.NPS : Layout.NPS + 3]),
        "nps_score": of["nps_score"],
    }


def _contact_row(cell: list[int]) -> dict[str, Any]:
    return {
        **contact_kpis(cell),
        "contacts_answered": cell[Slot.ANSWERED],
        "contacts_abandoned": cell[Slot.ABANDONED],
        "contacts_handled": cell[Slot.HANDLED],
    }


def _live_row(live: ContactLive, now_ms: int) -> dict[str, Any]:
    oldest = live.oldest_waiting
    return {
        "waiting": live.waiting,
        "in_progress": live.in_progress,
        "stale": live.stale,
        "oldest_waiting_queued_at": None if oldest is None else _rfc3339(oldest),
        "longest_wait_seconds": None if oldest is None else max(0, now_ms - oldest) / 1000,
    }


def _rfc3339(ms: int) -> str:
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")
