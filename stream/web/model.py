"""The wallboard's view model: the `/api/kpis` document from a system-wide snapshot."""

from __future__ import annotations

from typing import Any

from stream.centre_api import agents_document, contact_centre_document
from stream.config import Settings
from stream.kpi.contrib import Layout
from stream.kpi.gauges import kpis, total
from stream.kpi.snapshot import Live, Snapshot
from stream.kpi.windows import from_ms


def api_document(
    system: Snapshot, settings: Settings, cell_size: int, stale_reason: str | None
) -> dict[str, Any]:
    """KPIs per window (overall and per queue), live SLA state, and how far to trust them."""
    windows = {}
    for name, cells in system.windows.items():
        by_queue: dict[str, list[list[int]]] = {}
        for (queue, _, _), cell in cells.items():
            by_queue.setdefault(queue, []).append(cell)
        windows[name] = {
            "overall": _kpi_row(total(cells.values(), cell_size)),
            "queues": [
                {"queue": q, **_kpi_row(total(c, cell_size))} for q, c in sorted(by_queue.items())
            ],
        }
    overall, queues = Live(), dict[str, Live]()
    for (queue, _, _), live in system.live.items():
        overall.add(live)
        queues.setdefault(queue, Live()).add(live)
    return {
        **freshness(system, settings, stale_reason),
        "windows": windows,
        "live": {
            **_live_row(overall, system.now_ms),
            "queues": [
                {"queue": q, **_live_row(v, system.now_ms)} for q, v in sorted(queues.items())
            ],
        },
        "contact_centre": contact_centre_document(
            system.centre.capped(settings.kpi.max_queues, settings.kpi.max_agents), system.now_ms
        ),
    }


def agents_api_document(
    system: Snapshot, settings: Settings, stale_reason: str | None
) -> dict[str, Any]:
    """The `/api/agents` document: every agent (`stream.centre_api.agents_document`) with
    the same freshness fields, levels and `min_answers` as `/api/kpis`, for the agents view."""
    return {
        **freshness(system, settings, stale_reason),
        **agents_document(system.centre, system.now_ms),
    }


def freshness(system: Snapshot, settings: Settings, stale_reason: str | None) -> dict[str, Any]:
    """What every board's JSON says about how far to trust it, and the levels it colours by.

    `stale_reason` is the worker's own word for why its numbers may be behind
    ("broker_unreachable", "no_progress"), None when they are current.
    """
    return {
        "as_of": rfc3339(system.now_ms),
        "stale": stale_reason is not None,
        "stale_reason": stale_reason,
        "complete": len(system.partitions) == settings.partitions,
        "partitions": {"covered": len(system.partitions), "total": settings.partitions},
        "timezone": str(settings.timezone),
        "thresholds": settings.kpi.thresholds,
        "min_answers": settings.kpi.min_answers,
    }


def _kpi_row(cell: list[int]) -> dict[str, Any]:
    return {
        **kpis(cell),
        "first_responses": cell[Layout.FRT_COUNT],
        "resolutions": cell[Layout.RES_COUNT],
        "csat_responses": cell[Layout.CSAT_COUNT],
        "nps_responses": sum(cell[Layout.NPS : Layout.NPS + 3]),
    }


def _live_row(live: Live, now_ms: int) -> dict[str, Any]:
    oldest = live.oldest_awaiting
    return {
        "open": live.open,
        "awaiting": {"ok": live.ok, "at_risk": live.at_risk, "breached": live.breached},
        "oldest_awaiting_opened_at": None
        if oldest is None
        else from_ms(oldest).isoformat().replace("+00:00", "Z"),
        "oldest_awaiting_age_seconds": None if oldest is None else max(0, now_ms - oldest) / 1000,
    }


def rfc3339(ms: int) -> str:
    """An instant as RFC 3339 UTC with milliseconds."""
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")
