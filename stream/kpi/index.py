"""The in-memory KPI index of one partition: minute cells, sliding window totals, live SLA.

Tickets feed it their contribution (old one out, new one in); it never counts anything
twice, so it can always be rebuilt from the ticket records and come out identical.

Window totals are kept as disjoint segments of the minute buckets: the windows 15m, 1h,
24h and today all end at the current bucket, so their starts cut the last ~24 h into four
segments, and a window's total is the sum of the segments it covers. A contribution then
touches its minute cell and one segment total, not every window holding its bucket.
Segments slide incrementally as the clock moves, which keeps a scrape O(label sets).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import Counter
from collections.abc import Iterable
from itertools import pairwise
from typing import Any, Final, cast
from zoneinfo import ZoneInfo

from stream.kpi.centre import add_into
from stream.kpi.contrib import NOTHING, Contribution, Increments, Layout
from stream.kpi.sla import SlaPolicy
from stream.kpi.snapshot import Live, Snapshot
from stream.kpi.state import load_parts, parts_of
from stream.kpi.types import Dims
from stream.kpi.windows import RETAIN_BUCKETS, WINDOWS, bucket, window_buckets

Cells = dict[Dims, list[int]]
Span = tuple[int, int]  # inclusive (first, last) bucket; empty when first > last
# What a local snapshot saves of an index (the rest is the policy, or follows from these).
STATE: Final = (
    "ranges",
    "segments",
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
# Names that layout: an index saved with window totals (before segments) is rebuilt instead.
STATE_LAYOUT: Final = "segments"


class KpiIndex:
    """Aggregates of the tickets of one partition."""

    def __init__(self, policy: SlaPolicy, layout: Layout, tz: ZoneInfo) -> None:
        self.policy = policy
        self.layout = layout
        self.tz = tz
        self.cells: dict[int, Cells] = {}
        # The same per agent credited (section 8): cells per bucket, segment totals, and
        # how many buckets hold a cell of each agent.
        self.agent_cells: dict[int, dict[str, list[int]]] = {}
        self.ranges: dict[str, Span] | None = None  # the windows at the last `advance`
        self.segments: list[Span] = []  # their disjoint segments, oldest first
        self.totals: list[Cells] = [{} for _ in WINDOWS]  # per segment
        self.agent_totals: list[dict[str, list[int]]] = [{} for _ in WINDOWS]
        self.buckets_of_agent: dict[str, int] = {}
        # Label set -> how many minute buckets hold a cell of it: the label sets "seen".
        self.buckets_of: dict[Dims, int] = {}
        # The segments' first buckets and the last one, for the updates to find a bucket's.
        self.starts: list[int] = []
        self.last = -1
        self.horizon: int | None = None  # oldest bucket kept
        self.open: dict[Dims, int] = {}
        # Per label set, sorted (SLA clock at opening, opened_at) of unanswered tickets.
        self.awaiting: dict[Dims, list[int | tuple[int, int]]] = {}

    def update(self, old: Contribution | None, new: Contribution | None) -> None:
        """Replace a ticket's old contribution with its new one: only the parts that differ
        (a first reply adds its part and leaves the opened one)."""
        if old == new:
            return
        old = NOTHING if old is None else old
        new = NOTHING if new is None else new
        if old.parts != new.parts:
            self._replace(old.parts, new.parts, False)
        if old.agent_parts != new.agent_parts:
            self._replace(old.agent_parts, new.agent_parts, True)
        if old.open != new.open or old.awaiting != new.awaiting or old.dims != new.dims:
            self._add_live(old, -1)
            self._add_live(new, 1)

    def _replace(
        self,
        old_parts: tuple[tuple[int, Any, Increments], ...],
        new_parts: tuple[tuple[int, Any, Increments], ...],
        agents: bool,
    ) -> None:
        """Take out the parts only in `old_parts`, add those only in `new_parts`."""
        kept = len(old_parts)
        if new_parts[:kept] == old_parts:  # the usual change: a part comes at the end
            self._add(new_parts[kept:], 1, agents)
            return
        self._add([p for p in old_parts if p not in new_parts], -1, agents)
        self._add([p for p in new_parts if p not in old_parts], 1, agents)

    def build(self, contributions: list[Contribution]) -> None:
        """Add the contributions of many tickets into this (empty) index at once.

        Same result as one `update(None, c)` each, but equal parts are added once with
        their multiplicity (a million tickets fill ~100,000 cells), and the awaiting lists
        are sorted once instead of kept sorted per insert.
        """
        for agents in (False, True):
            counted = Counter(
                part for c in contributions for part in (c.agent_parts if agents else c.parts)
            )
            for (b, key, increments), times in counted.items():
                scaled = tuple((slot, amount * times) for slot, amount in increments)
                self._add(((b, key, scaled),), 1, agents)
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
        self._place_spans()

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
        assert self.ranges is not None  # placed by advance
        seen = self.buckets_of.keys()
        size = self.layout.size
        per_agent = snap.centre.per_agent
        for name, (start, _) in self.ranges.items():
            into = snap.windows[name]
            into_agents = snap.centre.tickets_by_agent[name]
            for (first, last), totals, agent_totals in zip(
                self.segments, self.totals, self.agent_totals, strict=True
            ):
                if start <= first <= last:  # a segment of this window
                    for dims, cell in totals.items():
                        add_into(into, dims, cell)
                    for agent, cell in agent_totals.items() if per_agent else ():
                        add_into(into_agents, agent, cell)
            # Every label set and agent seen gets a cell, zeros included.
            for dims in seen - into.keys():
                into[dims] = [0] * size
            for agent in self.buckets_of_agent.keys() - into_agents.keys() if per_agent else ():
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
        """Move the windows to `now_ms`: slide every segment total, drop expired buckets."""
        ranges = window_buckets(now_ms, self.tz)
        segments = segments_of(ranges)
        previous = self.segments if self.ranges is not None else [None] * len(segments)
        self.ranges = ranges
        size = self.layout.size
        for totals_of, cells in ((self.totals, self.cells), (self.agent_totals, self.agent_cells)):
            for at, (old, new) in enumerate(zip(previous, segments, strict=True)):
                totals_of[at] = _slid(cells, totals_of[at], old, new, size)
        self.segments = segments
        self._place_spans()
        # Only after sliding: the buckets that just left a window had to be subtracted.
        horizon = bucket(now_ms) - RETAIN_BUCKETS + 1
        if self.horizon is None or horizon > self.horizon:
            for stale in [b for b in self.cells if b < horizon]:
                for dims in self.cells.pop(stale):
                    _count_bucket(self.buckets_of, dims, -1)
            for stale in [b for b in self.agent_cells if b < horizon]:
                for agent in self.agent_cells.pop(stale):
                    _count_bucket(self.buckets_of_agent, agent, -1)
        self.horizon = horizon

    def _place_spans(self) -> None:
        self.starts = [first for first, _ in self.segments]
        self.last = self.segments[-1][1] if self.segments else -1

    def _add(self, parts: Iterable[tuple[int, Any, Increments]], sign: int, agents: bool) -> None:
        """Add (sign 1) or remove (-1) (bucket, key, increments) parts in their bucket's cells
        and in the segment total holding their bucket; the keys are label sets, or agents.

        The hot path of every event: written flat, one loop per counter cell touched.
        A minute cell is only as long as the highest slot it counts (most count one or two of
        ~40: a million tickets of a day fill a million cells); totals are full.
        """
        if agents:
            all_cells: dict[int, dict[Any, list[int]]] = self.agent_cells
            buckets_of: dict[Any, int] = self.buckets_of_agent
            totals_of: list[dict[Any, list[int]]] = self.agent_totals
        else:
            all_cells, buckets_of, totals_of = self.cells, self.buckets_of, self.totals
        horizon, starts, newest, size = self.horizon, self.starts, self.last, self.layout.size
        for b, key, increments in parts:
            if horizon is not None and b < horizon:
                continue  # already dropped (or never kept): nothing to add or take out
            cells = all_cells.get(b)
            if cells is None:
                cells = all_cells[b] = {}
            top = increments[-1][0] + 1  # the last increment counts the highest slot
            cell = cells.get(key)
            if cell is None:
                buckets_of[key] = buckets_of.get(key, 0) + 1
                cell = cells[key] = [0] * top
            elif len(cell) < top:
                cell.extend([0] * (top - len(cell)))
            total: list[int] | None = None  # in the segment holding b, if any
            at = bisect_right(starts, b) - 1  # of two equal starts the later: the non-empty
            if at >= 0 and b <= newest:
                totals = totals_of[at]
                total = totals.get(key)
                if total is None:
                    total = totals[key] = [0] * size
            if sign > 0:  # a part counts at least one thing: no cell becomes zeros
                for slot, amount in increments:
                    cell[slot] += amount
                if total is not None:
                    for slot, amount in increments:
                        total[slot] += amount
                continue
            for slot, amount in increments:
                cell[slot] -= amount
            if not any(cell):
                del cells[key]
                _count_bucket(buckets_of, key, -1)
                if not cells:
                    del all_cells[b]
            if total is not None:
                for slot, amount in increments:
                    total[slot] -= amount
                if not any(total):
                    del totals[key]

    def _add_live(self, contribution: Contribution, sign: int) -> None:
        dims = contribution.dims
        if contribution.open:
            count = self.open.get(dims, 0) + sign
            if count:
                self.open[dims] = count
            else:
                del self.open[dims]
        if contribution.awaiting is not None:
            waiting = self.awaiting.get(dims)
            if waiting is None:
                waiting = self.awaiting[dims] = []
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


def segments_of(ranges: dict[str, Span]) -> list[Span]:
    """The disjoint segments of windows that all end at the same bucket, oldest first:
    from each window's start to the next start (an empty span where two starts meet), the
    newest to the last bucket. A window is the union of the segments from its start on."""
    last = max(end for _, end in ranges.values())
    starts = sorted(first for first, _ in ranges.values())
    return [*((start, after - 1) for start, after in pairwise(starts)), (starts[-1], last)]


def _slid(
    cells: dict[int, dict[Any, list[int]]],
    totals: dict[Any, list[int]],
    old: Span | None,
    new: Span,
    size: int,
) -> dict[Any, list[int]]:
    """`totals` of the buckets of `old` (None: nothing summed yet) made those of `new`: the
    buckets that left subtracted, those that came added (or summed again when cheaper)."""
    first, last = new
    if old == new:
        return totals
    if old is None:
        return _sum_buckets(cells, range(first, last + 1), size)
    old_first, old_last = old
    leaving = (
        range(old_first, min(old_last, first - 1) + 1),
        range(max(old_first, last + 1), old_last + 1),
    )
    coming = (
        range(first, min(last, old_first - 1) + 1),
        range(max(first, old_last + 1), last + 1),
    )
    if sum(map(len, (*leaving, *coming))) > max(0, last - first + 1):
        return _sum_buckets(cells, range(first, last + 1), size)
    for sign, buckets in ((-1, leaving), (1, coming)):
        for b in (*buckets[0], *buckets[1]):
            _add_bucket(cells, totals, b, sign, size)
    return totals


def _sum_buckets(
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


def _count_bucket(counts: dict[Any, int], key: Any, change: int) -> None:
    """Count one bucket more or less that holds a cell of `key`."""
    count = counts.get(key, 0) + change
    if count:
        counts[key] = count
    else:
        del counts[key]
