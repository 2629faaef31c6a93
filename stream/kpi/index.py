"""The in-memory KPI index of one partition: minute cells, sliding window totals, live SLA.

Tickets feed it their contribution (old one out, new one in); it never counts anything
twice, so it can always be rebuilt from the ticket records and come out identical.
Window totals slide incrementally as the clock moves, which keeps a scrape O(label sets).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final, cast
from zoneinfo import ZoneInfo

from stream.kpi.centre import add_into
from stream.kpi.contrib import Contribution, Increments, Layout
from stream.kpi.sla import SlaPolicy
from stream.kpi.snapshot import Live, Snapshot
from stream.kpi.state import load_parts, parts_of
from stream.kpi.types import Dims
from stream.kpi.windows import RETAIN_BUCKETS, WINDOWS, bucket, window_buckets

Cells = dict[Dims, list[int]]
# What a local snapshot saves of an index (the rest is the policy, or follows from these).
STATE: Final = (
    "ranges",
    "horizon",
    "totals",
    "agent_totals",
    "buckets_of",
    "buckets_of_agent",
    "open",
    "awaiting",
    "cells",
    "agent_cells",
)
CELLS: Final = ("cells", "agent_cells")


class KpiIndex:
    """Aggregates of the tickets of one partition."""

    def __init__(self, policy: SlaPolicy, layout: Layout, tz: ZoneInfo) -> None:
        self.policy = policy
        self.layout = layout
        self.tz = tz
        self.cells: dict[int, Cells] = {}
        # The same per agent credited (section 8): cells per bucket, window totals, and
        # how many buckets hold a cell of each agent.
        self.agent_cells: dict[int, dict[str, list[int]]] = {}
        self.agent_totals: dict[str, dict[str, list[int]]] = {w: {} for w in WINDOWS}
        self.buckets_of_agent: dict[str, int] = {}
        self.totals: dict[str, Cells] = {w: {} for w in WINDOWS}
        self.ranges: dict[str, tuple[int, int]] | None = None
        # Label set -> how many minute buckets hold a cell of it: the label sets "seen".
        self.buckets_of: dict[Dims, int] = {}
        # (first, last, totals, agent totals) of each window, for the per-event updates.
        self.spans: list[tuple[int, int, Cells, dict[str, list[int]]]] = []
        self.horizon: int | None = None  # oldest bucket kept
        self.open: dict[Dims, int] = {}
        # Per label set, sorted (SLA clock at opening, opened_at) of unanswered tickets.
        self.awaiting: dict[Dims, list[int | tuple[int, int]]] = {}

    def update(self, old: Contribution | None, new: Contribution | None) -> None:
        """Replace a ticket's old contribution with its new one."""
        if old == new:
            return
        old_agent_parts = () if old is None else old.agent_parts
        new_agent_parts = () if new is None else new.agent_parts
        if old_agent_parts != new_agent_parts:
            self._add_agent_parts([p for p in old_agent_parts if p not in new_agent_parts], -1)
            self._add_agent_parts([p for p in new_agent_parts if p not in old_agent_parts], 1)
        if old is not None and new is not None and old.dims == new.dims:
            # Only what differs: a first reply adds its part and leaves the opened one.
            old_parts, new_parts = old.parts, new.parts
            self._add_parts(old.dims, [p for p in old_parts if p not in new_parts], -1)
            self._add_parts(new.dims, [p for p in new_parts if p not in old_parts], 1)
            if old.open != new.open or old.awaiting != new.awaiting:
                self._add_live(old, -1)
                self._add_live(new, 1)
            return
        if old is not None:
            self._add_parts(old.dims, old.parts, -1)
            self._add_live(old, -1)
        if new is not None:
            self._add_parts(new.dims, new.parts, 1)
            self._add_live(new, 1)

    def build(self, contributions: list[Contribution]) -> None:
        """Add the contributions of many tickets into this (empty) index at once.

        Same result as one `update(None, c)` each, but equal parts are added once with
        their multiplicity (a million tickets fill ~100,000 cells), and the awaiting lists
        are sorted once instead of kept sorted per insert.
        """
        counted = Counter((c.dims, part) for c in contributions for part in c.parts)
        for (dims, (b, increments)), times in counted.items():
            scaled = tuple((slot, amount * times) for slot, amount in increments)
            self._add_parts(dims, ((b, scaled),), 1)
        for (b, agent, increments), times in Counter(
            part for c in contributions for part in c.agent_parts
        ).items():
            scaled = tuple((slot, amount * times) for slot, amount in increments)
            self._add_agent_parts(((b, agent, scaled),), 1)
        for dims, count in Counter(c.dims for c in contributions if c.open).items():
            self.open[dims] = self.open.get(dims, 0) + count
        awaiting = self.awaiting
        for found in contributions:
            if found.awaiting is not None:
                awaiting.setdefault(found.dims, []).append(found.awaiting)
        for waiting in awaiting.values():
            waiting.sort()

    def state(self, now_ms: int) -> list[object]:
        """The index at `now_ms` as parts for a local snapshot (`stream.kpi.state`)."""
        self.advance(now_ms)
        return parts_of(self, STATE, CELLS)

    def load_state(self, parts: list[object]) -> None:
        """Become the index `state` gave."""
        load_parts(self, parts, CELLS, None)  # minute cells are kept trimmed
        if self.ranges is not None:
            self.spans = [
                (*self.ranges[name], self.totals[name], self.agent_totals[name]) for name in WINDOWS
            ]

    def snapshot(self, now_ms: int) -> Snapshot:
        """Window totals and live SLA state at `now_ms` (which should not go backwards)."""
        snap = Snapshot(now_ms)
        self.add_to(snap)
        return snap

    def add_to(self, snap: Snapshot) -> None:
        """Add this partition's window totals and live state at `snap.now_ms` into `snap`.

        Adding straight into a merged snapshot saves a copy of every cell per partition.
        """
        now_ms = snap.now_ms
        self.advance(now_ms)
        seen = self.buckets_of.keys()
        size = self.layout.size
        for name, totals in self.totals.items():
            into = snap.windows[name]
            for dims in seen:
                mine, theirs = totals.get(dims), into.get(dims)
                if theirs is None:
                    into[dims] = [0] * size if mine is None else mine.copy()
                elif mine is not None:
                    into[dims] = [a + b for a, b in zip(theirs, mine, strict=True)]
        for name, agent_totals in self.agent_totals.items() if snap.centre.per_agent else ():
            into_agents = snap.centre.tickets_by_agent[name]
            for agent, mine in agent_totals.items():
                add_into(into_agents, agent, mine)
            # Every agent seen gets a cell, zeros included (those with totals are among them).
            for agent in self.buckets_of_agent.keys() - into_agents.keys():
                into_agents[agent] = [0] * size
        live = snap.live
        for dims in seen | self.open.keys():
            mine_live = self._live(dims, now_ms)
            theirs_live = live.get(dims)
            if theirs_live is None:
                live[dims] = mine_live
            else:
                theirs_live.add(mine_live)

    def advance(self, now_ms: int) -> None:
        """Move the windows to `now_ms`: drop expired buckets, slide every window total."""
        ranges = window_buckets(now_ms, self.tz)
        previous, self.ranges = self.ranges, ranges
        size = self.layout.size
        kinds: tuple[tuple[dict[str, dict[Any, list[int]]], dict[int, dict[Any, list[int]]]], ...]
        kinds = ((self.totals, self.cells), (self.agent_totals, self.agent_cells))
        for name, span in ranges.items():
            for totals_of, cells in kinds:
                slide(
                    totals_of, cells, name, None if previous is None else previous[name], span, size
                )
        self.spans = [
            (*ranges[name], self.totals[name], self.agent_totals[name]) for name in WINDOWS
        ]
        # Only after sliding: the buckets that just left a window had to be subtracted.
        horizon = bucket(now_ms) - RETAIN_BUCKETS + 1
        if self.horizon is None or horizon > self.horizon:
            for stale in [b for b in self.cells if b < horizon]:
                for dims in self.cells.pop(stale):
                    count_bucket(self.buckets_of, dims, -1)
            for stale in [b for b in self.agent_cells if b < horizon]:
                for agent in self.agent_cells.pop(stale):
                    count_bucket(self.buckets_of_agent, agent, -1)
        self.horizon = horizon

    def _add_parts(self, dims: Dims, parts: Iterable[tuple[int, Increments]], sign: int) -> None:
        """Add (sign 1) or remove (-1) parts in their buckets' cells and window totals.

        The hot path of every event: written flat, one loop per counter cell touched.
        A minute cell is only as long as the highest slot it counts (most count one or two of
        ~40: a million tickets of a day fill a million cells); window totals are full.
        """
        horizon, all_cells, spans, size = self.horizon, self.cells, self.spans, self.layout.size
        for b, increments in parts:
            if horizon is not None and b < horizon:
                continue
            cells = all_cells.get(b)
            if cells is None:
                cells = all_cells[b] = {}
            top = increments[-1][0] + 1  # the last increment counts the highest slot
            cell = cells.get(dims)
            if cell is None:
                count_bucket(self.buckets_of, dims, 1)
                cells[dims] = [0] * top
            elif len(cell) < top:
                cell.extend([0] * (top - len(cell)))
            targets = [cells]
            for first, last, totals, _ in spans:
                if first <= b <= last:
                    targets.append(totals)
            for target in targets:
                cell = target.get(dims)
                if cell is None:
                    cell = target[dims] = [0] * size
                if sign > 0:
                    for slot, amount in increments:
                        cell[slot] += amount
                else:
                    for slot, amount in increments:
                        cell[slot] -= amount
                    if not any(cell):
                        del target[dims]
            if dims not in cells:
                count_bucket(self.buckets_of, dims, -1)
                if not cells:
                    del all_cells[b]

    def _add_agent_parts(self, parts: Iterable[tuple[int, str, Increments]], sign: int) -> None:
        """Add (sign 1) or remove (-1) per-agent parts in their buckets' agent cells."""
        for b, agent, increments in parts:
            if self.horizon is not None and b < self.horizon:
                continue
            by_agent = self.agent_cells.setdefault(b, {})
            top = increments[-1][0] + 1  # the last increment counts the highest slot
            cell = by_agent.get(agent)
            if cell is None:
                count_bucket(self.buckets_of_agent, agent, 1)
                by_agent[agent] = [0] * top
            elif len(cell) < top:
                cell.extend([0] * (top - len(cell)))
            targets = [by_agent]
            for first, last, _, agent_totals in self.spans:
                if first <= b <= last:
                    targets.append(agent_totals)
            for target in targets:
                cell = target.get(agent)
                if cell is None:
                    cell = target[agent] = self.layout.zeros()
                for slot, amount in increments:
                    cell[slot] += sign * amount
                if not any(cell):
                    del target[agent]
            if agent not in by_agent:
                count_bucket(self.buckets_of_agent, agent, -1)
                if not by_agent:
                    del self.agent_cells[b]

    def _add_live(self, contribution: Contribution, sign: int) -> None:
        dims = contribution.dims
        if contribution.open:
            count = self.open.get(dims, 0) + sign
            if count:
                self.open[dims] = count
            else:
                del self.open[dims]
        if contribution.awaiting is not None:
            waiting = self.awaiting.setdefault(dims, [])
            if sign > 0:
                insort(waiting, contribution.awaiting)
            else:
                del waiting[bisect_left(waiting, contribution.awaiting)]
                if not waiting:
                    del self.awaiting[dims]

    def _live(self, dims: Dims, now_ms: int) -> Live:
        waiting = self.awaiting.get(dims, [])
        if not waiting:
            return Live(open=self.open.get(dims, 0))
        sla = self.policy.for_queue(dims[0])
        breached_before, at_risk_from = sla.awaiting_thresholds(dims[2], now_ms)
        first = waiting[0]
        if isinstance(first, int):  # calendar time: each entry is opened_at, the clock
            clocks = cast(list[int], waiting)
            breached = bisect_left(clocks, breached_before)
            at_risk = bisect_left(clocks, at_risk_from + 1) - breached
            oldest = first
        else:
            pairs = cast(list[tuple[int, int]], waiting)
            breached = bisect_left(pairs, (breached_before,))
            at_risk = bisect_left(pairs, (at_risk_from + 1,)) - breached
            # The SLA clock never runs backwards, so the first has the smallest opened_at.
            oldest = first[1]
        return Live(
            open=self.open.get(dims, 0),
            ok=len(waiting) - breached - at_risk,
            at_risk=at_risk,
            breached=breached,
            oldest_awaiting=oldest,
        )


def slide(
    totals_of: dict[str, dict[Any, list[int]]],
    cells: dict[int, dict[Any, list[int]]],
    name: str,
    old: tuple[int, int] | None,
    new: tuple[int, int],
    size: int,
) -> None:
    """Move the window total `totals_of[name]` of `cells` from the buckets `old` (first, last;
    None: not summed yet) to `new`: take out the buckets that left, add those that came in;
    sum afresh when it moved back or past its old end."""
    first, last = new
    if old is None or old[0] > first or old[1] > last or old[1] < first:
        totals_of[name] = sum_buckets(cells, range(first, last + 1), size)
        return
    totals = totals_of[name]
    for b in range(old[0], first):
        _add_bucket(cells, totals, b, -1, size)
    for b in range(old[1] + 1, last + 1):
        _add_bucket(cells, totals, b, 1, size)


def sum_buckets(
    cells: dict[int, dict[Any, list[int]]], buckets: range, size: int
) -> dict[Any, list[int]]:
    totals: dict[Any, list[int]] = {}
    for b in buckets:
        _add_bucket(cells, totals, b, 1, size)
    return totals


def _add_bucket(
    cells: dict[int, dict[Any, list[int]]],
    totals: dict[Any, list[int]],
    b: int,
    sign: int,
    size: int,
) -> None:
    """Add (sign 1) or remove (-1) the cells of bucket `b` in `totals` (cells of `size` slots
    or fewer, the rest zeros)."""
    for key, cell in cells.get(b, {}).items():
        current = totals.get(key)
        if current is None:
            current = totals[key] = [0] * size
        for slot, value in enumerate(cell):
            current[slot] += sign * value
        if not any(current):
            del totals[key]


def count_bucket(counts: dict[Any, int], key: Any, change: int) -> None:
    """Count one bucket more or less that holds a cell of `key`."""
    count = counts.get(key, 0) + change
    if count:
        counts[key] = count
    else:
        del counts[key]
