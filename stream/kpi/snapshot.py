"""A snapshot: additive components per window and live SLA counts, at one instant.

Snapshots of different partitions (or workers) add up with `merge`; the KPI gauges are
ratios computed from a merged snapshot, so they are exact for whatever it covers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from stream.kpi.centre import TICKET_MEASUREMENTS, CentreSnapshot
from stream.kpi.contrib import Layout
from stream.kpi.types import OTHER_QUEUE, UNKNOWN_DIMS, Dims
from stream.kpi.windows import WINDOWS

# Slots that count tickets (not milliseconds): what "activity" of a queue means.
COUNT_SLOTS: Final = (Layout.OPENED, *TICKET_MEASUREMENTS)


@dataclass(slots=True)
class Live:
    """Live state of one label set: open tickets and those awaiting a first reply."""

    open: int = 0
    ok: int = 0
    at_risk: int = 0
    breached: int = 0
    oldest_awaiting: int | None = None

    def add(self, other: Live) -> None:
        """Add `other` into this one (oldest is the minimum)."""
        self.open += other.open
        self.ok += other.ok
        self.at_risk += other.at_risk
        self.breached += other.breached
        if other.oldest_awaiting is not None and (
            self.oldest_awaiting is None or other.oldest_awaiting < self.oldest_awaiting
        ):
            self.oldest_awaiting = other.oldest_awaiting


@dataclass
class Snapshot:
    """Cells per window and label set, live counts per label set, and partitions covered."""

    now_ms: int
    windows: dict[str, dict[Dims, list[int]]] = field(
        default_factory=lambda: {w: {} for w in WINDOWS}
    )
    live: dict[Dims, Live] = field(default_factory=dict)
    partitions: frozenset[int] = frozenset()
    centre: CentreSnapshot = field(default_factory=CentreSnapshot)  # contacts and agents

    def merge(self, other: Snapshot) -> None:
        """Add `other` (taken at the same instant) into this snapshot."""
        for name, cells in other.windows.items():
            _add_cells(self.windows[name], cells.items())
        for dims, live in other.live.items():
            self.live.setdefault(dims, Live()).add(live)
        self.centre.merge(other.centre)
        self.partitions = self.partitions | other.partitions

    def cap_queues(self, max_queues: int) -> Snapshot:
        """A copy where queues beyond the `max_queues` most active are labelled "other".

        Activity is what the 24h window and the open tickets show, ties broken by name,
        so the choice depends only on the state, never on arrival order.
        """
        activity: dict[str, int] = {}
        for (queue, _, _), cell in self.windows["24h"].items():
            activity[queue] = activity.get(queue, 0) + sum(cell[slot] for slot in COUNT_SLOTS)
        for (queue, _, _), live in self.live.items():
            activity[queue] = activity.get(queue, 0) + live.open
        activity.pop(UNKNOWN_DIMS[0], None)
        if len(activity) <= max_queues:
            return self
        ranked = sorted(activity, key=lambda q: (-activity[q], q))
        kept = set(ranked[:max_queues]) | {UNKNOWN_DIMS[0]}

        def relabel(dims: Dims) -> Dims:
            return dims if dims[0] in kept else (OTHER_QUEUE, dims[1], dims[2])

        capped = Snapshot(self.now_ms, partitions=self.partitions, centre=self.centre)
        for name, cells in self.windows.items():
            _add_cells(capped.windows[name], ((relabel(d), c) for d, c in cells.items()))
        for dims, live in self.live.items():
            capped.live.setdefault(relabel(dims), Live()).add(live)
        return capped

    def to_json(self) -> bytes:
        """Serialise for another worker (the system-wide fan-out)."""
        return orjson.dumps(
            {
                "now_ms": self.now_ms,
                "partitions": sorted(self.partitions),
                "windows": {
                    w: [[*d, c] for d, c in cells.items()] for w, cells in self.windows.items()
                },
                "live": [
                    [*d, v.open, v.ok, v.at_risk, v.breached, v.oldest_awaiting]
                    for d, v in self.live.items()
                ],
                "centre": self.centre.to_jsonable(),
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Snapshot:
        """Inverse of `to_json`."""
        data: dict[str, Any] = orjson.loads(raw)
        snapshot = cls(data["now_ms"], partitions=frozenset(data["partitions"]))
        for name, rows in data["windows"].items():
            snapshot.windows[name] = {(q, c, p): cell for q, c, p, cell in rows}
        snapshot.live = {(q, c, p): Live(*counts) for q, c, p, *counts in data["live"]}
        snapshot.centre = CentreSnapshot.from_jsonable(data["centre"])
        return snapshot


def _add_cells(into: dict[Dims, list[int]], cells: Iterable[tuple[Dims, list[int]]]) -> None:
    for dims, cell in cells:
        current = into.get(dims)
        if current is None:
            into[dims] = list(cell)
        else:
            into[dims] = [a + b for a, b in zip(current, cell, strict=True)]
