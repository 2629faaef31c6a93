"""A ticket's contribution to the minute buckets, as slot increments of a flat counter cell.

A cell is a list of integers; `Layout` names the position of each counter. Keeping sums in
integer milliseconds makes "remove the old contribution, add the new one" exact: nothing
can drift however often a ticket changes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, NamedTuple

from stream.kpi.sla import SlaPolicy
from stream.kpi.types import UNASSIGNED, UNKNOWN_DIMS, Dims
from stream.kpi.windows import MINUTE_MS, bucket

if TYPE_CHECKING:
    from stream.kpi.ticket import Ticket

# Histogram bounds (seconds) of contract section 5: from "answered within a minute" up to
# the longest default targets; every configured target is added so SLA lines are exact.
FIRST_RESPONSE_BOUNDS_S: Final = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200)
RESOLUTION_BOUNDS_S: Final = (900, 3600, 14400, 28800, 86400, 172800, 259200, 604800)

CSAT_SATISFIED_FROM: Final = 4
NPS_PROMOTER_FROM: Final = 9
NPS_PASSIVE_FROM: Final = 7


class Layout:
    """Slot positions of the counters in a cell, given the histogram bounds in ms."""

    OPENED: Final = 0
    FRT_COUNT: Final = 1
    FRT_SUM_MS: Final = 2
    FRT_BREACHES: Final = 3
    RES_COUNT: Final = 4
    RES_SUM_MS: Final = 5
    RES_BREACHES: Final = 6
    CSAT_COUNT: Final = 7
    CSAT_SATISFIED: Final = 8
    NPS: Final = 9  # three slots: promoter, passive, detractor
    RES_ONE_TOUCH: Final = 12  # resolutions with exactly one reply and no reopen (section 9)
    RES_REOPENED: Final = 13  # resolutions of tickets reopened at least once
    RES_REPLIES_SUM: Final = 14  # replies of the resolved tickets
    COUNTERS: Final = 15  # slots before the histograms

    def __init__(self, policy: SlaPolicy) -> None:
        """Bounds: the contract's defaults plus every target of every policy (section 10)."""
        policies = policy.every_policy()
        self.frt_bounds_ms = _bounds(
            FIRST_RESPONSE_BOUNDS_S, (t for p in policies for t in p.first_response_ms.values())
        )
        self.res_bounds_ms = _bounds(
            RESOLUTION_BOUNDS_S, (t for p in policies for t in p.resolution_ms.values())
        )
        self.frt_hist = Layout.COUNTERS
        self.res_hist = self.frt_hist + len(self.frt_bounds_ms) + 1
        self.size = self.res_hist + len(self.res_bounds_ms) + 1

    def zeros(self) -> list[int]:
        """An empty cell."""
        return [0] * self.size


def _bounds(defaults_s: tuple[int, ...], targets_ms: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted({s * 1000 for s in defaults_s} | set(targets_ms)))


# (slot, amount) pairs; the last names the highest slot (an index sizes cells by it).
Increments = tuple[tuple[int, int], ...]
OPENED_INCREMENT: Final[Increments] = ((Layout.OPENED, 1),)


class Contribution(NamedTuple):
    """What one ticket adds: (bucket, label set, slot increments) parts, the same per agent
    who did the work as (bucket, agent, increments) (section 8: FRT to the first reply's
    agent, the rest to the last resolver's), and its live state.

    `awaiting` is (SLA clock at opening, opened_at) of a ticket awaiting its first reply:
    the clock decides its SLA state at any later instant (section 10), opened_at its age.
    In calendar time the clock is opened_at itself, and `awaiting` is just that int (a
    million waiting tickets need no million tuples).
    A named tuple rather than a frozen dataclass: built twice per event, it must be cheap.
    """

    dims: Dims
    parts: tuple[tuple[int, Dims, Increments], ...]
    agent_parts: tuple[tuple[int, str, Increments], ...]
    open: bool
    awaiting: int | tuple[int, int] | None


# The contribution of a ticket that adds nothing (an index update's missing side).
NOTHING: Final = Contribution(UNKNOWN_DIMS, (), (), False, None)


def contribution(ticket: Ticket, policy: SlaPolicy, layout: Layout) -> Contribution | None:
    """The contribution of `ticket` under `policy` (the file's, resolved per queue), or None
    when it adds nothing. Breaches count SLA time; sums and histograms calendar time."""
    opened_at = ticket.opened_at
    parts: list[tuple[int, Dims, Increments]] = []
    agent_parts: list[tuple[int, str, Increments]] = []
    resolver = ticket.resolved_agent or UNASSIGNED
    if opened_at is not None:
        queue: str = ticket.queue  # type: ignore[assignment]  # set with opened_at
        priority: str = ticket.priority  # type: ignore[assignment]
        dims: Dims = (queue, ticket.channel, priority)  # type: ignore[assignment]
        sla = policy.for_queue(queue)
        parts.append((opened_at // MINUTE_MS, dims, OPENED_INCREMENT))
        if ticket.first_reply_at is not None:
            frt = max(0, ticket.first_reply_at - opened_at)
            sla_frt = sla.elapsed_ms(opened_at, ticket.first_reply_at)
            breached = sla.first_response_breached(priority, sla_frt)
            hist = layout.frt_hist + bisect_left(layout.frt_bounds_ms, frt)
            at, increments = _timed(ticket.first_reply_at, frt, breached, Layout.FRT_COUNT, hist)
            parts.append((at, dims, increments))
            agent_parts.append((at, ticket.first_reply_agent or UNASSIGNED, increments))
        if ticket.resolved_at is not None and ticket.is_resolved:
            resolution = max(0, ticket.resolved_at - opened_at)
            sla_resolution = sla.elapsed_ms(opened_at, ticket.resolved_at)
            breached = sla.resolution_breached(priority, sla_resolution)
            hist = layout.res_hist + bisect_left(layout.res_bounds_ms, resolution)
            at, increments = _timed(
                ticket.resolved_at, resolution, breached, Layout.RES_COUNT, hist
            )
            life = (
                (Layout.RES_ONE_TOUCH, int(ticket.replies == 1 and ticket.reopens == 0)),
                (Layout.RES_REOPENED, int(ticket.reopens > 0)),
                (Layout.RES_REPLIES_SUM, ticket.replies),
            )
            parts.append((at, dims, life + increments))
            agent_parts.append((at, resolver, life + increments))
    else:
        dims = UNKNOWN_DIMS
    if ticket.csat is not None:
        satisfied = int(ticket.csat.score >= CSAT_SATISFIED_FROM)
        csat: Increments = ((Layout.CSAT_COUNT, 1), (Layout.CSAT_SATISFIED, satisfied))
        parts.append((bucket(ticket.csat.at), dims, csat))
        agent_parts.append((bucket(ticket.csat.at), resolver, csat))
    if ticket.nps is not None:
        nps: Increments = ((Layout.NPS + nps_category(ticket.nps.score), 1),)
        parts.append((bucket(ticket.nps.at), dims, nps))
        agent_parts.append((bucket(ticket.nps.at), resolver, nps))
    if not parts:
        return None
    is_open = opened_at is not None and not ticket.is_resolved
    awaiting: int | tuple[int, int] | None = None
    if opened_at is not None and is_open and ticket.first_reply_at is None:
        awaiting = opened_at if sla.calendar is None else (sla.clock(opened_at), opened_at)
    return Contribution(dims, tuple(parts), tuple(agent_parts), is_open, awaiting)


def _timed(
    at: int, ms: int, breached: bool, count_slot: int, hist_slot: int
) -> tuple[int, Increments]:
    """A measured duration: count, sum and breach slots follow each other from `count_slot`."""
    return bucket(at), (
        (count_slot, 1),
        (count_slot + 1, ms),
        (count_slot + 2, int(breached)),
        (hist_slot, 1),
    )


def nps_category(score: int) -> int:
    """0 promoter (9..10), 1 passive (7..8), 2 detractor (0..6): offsets into Layout.NPS."""
    if score >= NPS_PROMOTER_FROM:
        return 0
    return 1 if score >= NPS_PASSIVE_FROM else 2
