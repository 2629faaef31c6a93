"""Snapshots: merging per-partition snapshots, the JSON hand-over and the queue cap."""

from __future__ import annotations

from typing import Any

import pytest
from kpi_helpers import HOUR, MINUTE, NOW, SECOND, first_reply, opened, report, survey

from stream.kpi.contrib import Layout
from stream.kpi.gauges import total
from stream.kpi.settings import KpiConfig
from stream.kpi.sla import SlaPolicy
from stream.kpi.snapshot import Live, Snapshot
from stream.kpi.types import UNKNOWN_DIMS
from stream.kpi.windows import WINDOWS

LAYOUT = Layout(SlaPolicy())


def cell(**slots: int) -> list[int]:
    values = LAYOUT.zeros()
    for name, amount in slots.items():
        values[getattr(Layout, name.upper())] = amount
    return values


def snapshot(
    cells: dict[tuple[str, str, str], list[int]],
    live: dict[tuple[str, str, str], Live] | None = None,
    partitions: frozenset[int] = frozenset(),
) -> Snapshot:
    """A snapshot holding `cells` in every window."""
    snap = Snapshot(NOW, partitions=partitions)
    for window in WINDOWS:
        snap.windows[window] = {d: list(c) for d, c in cells.items()}
    for dims, counts in (live or {}).items():
        snap.live[dims] = Live(
            counts.open, counts.ok, counts.at_risk, counts.breached, counts.oldest_awaiting
        )
    return snap


A = ("a", "email", "high")
B = ("b", "chat", "low")


def test_merge_adds_cells_live_counts_and_partitions() -> None:
    left = snapshot(
        {A: cell(frt_count=2, frt_sum_ms=10)},
        {A: Live(open=3, ok=1, at_risk=1, breached=1, oldest_awaiting=500)},
        frozenset({0, 2}),
    )
    right = snapshot(
        {A: cell(frt_count=1, frt_sum_ms=5), B: cell(csat_count=4)},
        {A: Live(open=1, ok=1, oldest_awaiting=400), B: Live(open=2)},
        frozenset({1}),
    )
    left.merge(right)
    assert left == snapshot(
        {A: cell(frt_count=3, frt_sum_ms=15), B: cell(csat_count=4)},
        {
            A: Live(open=4, ok=2, at_risk=1, breached=1, oldest_awaiting=400),
            B: Live(open=2),
        },
        frozenset({0, 1, 2}),
    )


@pytest.mark.parametrize(
    ("mine", "theirs", "oldest"),
    [(None, None, None), (None, 7, 7), (7, None, 7), (7, 9, 7), (9, 7, 7)],
    ids=lambda v: str(v),
)
def test_merged_oldest_awaiting_is_the_minimum(
    mine: int | None, theirs: int | None, oldest: int | None
) -> None:
    live = Live(oldest_awaiting=mine)
    live.add(Live(oldest_awaiting=theirs))
    assert live.oldest_awaiting == oldest


def test_merge_into_empty_snapshot_copies_the_cells() -> None:
    source = snapshot({A: cell(opened=1)}, {A: Live(open=1)})
    merged = Snapshot(NOW)
    merged.merge(source)
    assert merged == source
    merged.windows["1h"][A][Layout.OPENED] = 99
    assert source.windows["1h"][A][Layout.OPENED] == 1


HOSTILE = ('q"\\\n<img src=x onerror=alert(1)>', "other", "urgent")


@pytest.mark.parametrize(
    "snap",
    [
        pytest.param(Snapshot(NOW), id="empty"),
        pytest.param(
            snapshot({A: cell(frt_count=1, frt_sum_ms=3 * HOUR)}, {A: Live(open=1)}),
            id="cells-and-live-without-oldest",
        ),
        pytest.param(
            snapshot(
                {HOSTILE: cell(nps=2), ("Ärger 😀", "web", "low"): cell(csat_count=1)},
                {HOSTILE: Live(open=2, ok=1, breached=1, oldest_awaiting=NOW - HOUR)},
                frozenset({3, 5}),
            ),
            id="hostile-and-non-ascii-queues",
        ),
    ],
)
def test_to_json_and_from_json_round_trip(snap: Snapshot) -> None:
    assert Snapshot.from_json(snap.to_json()) == snap


def test_snapshot_of_a_batch_round_trips_through_json() -> None:
    result = report(
        [
            opened("t", NOW - HOUR, queue="a"),
            first_reply("t", NOW - 30 * MINUTE),
            survey("u", NOW - MINUTE, "nps", 3),
            opened("v", NOW - 2 * HOUR, priority="urgent"),
        ]
    )
    assert Snapshot.from_json(result.snapshot.to_json()) == result.snapshot


def queues_of(snap: Snapshot) -> set[str]:
    found = {d[0] for cells in snap.windows.values() for d in cells}
    return found | {d[0] for d in snap.live}


def totals(snap: Snapshot) -> dict[str, list[int]]:
    return {w: total(cells.values(), LAYOUT.size) for w, cells in snap.windows.items()}


def activity_cells(**counts: int) -> dict[tuple[str, str, str], list[int]]:
    return {(q, "email", "normal"): cell(opened=n) for q, n in counts.items()}


def test_cap_queues_within_the_limit_changes_nothing() -> None:
    snap = snapshot(activity_cells(a=1, b=2, c=3))
    assert snap.cap_queues(3) == snapshot(activity_cells(a=1, b=2, c=3))


def test_queues_beyond_the_limit_are_reported_as_other() -> None:
    snap = snapshot(
        activity_cells(a=5, b=3, c=1, d=2),
        {("c", "email", "normal"): Live(open=1, oldest_awaiting=9)},
    )
    capped = snap.cap_queues(2)
    assert queues_of(capped) == {"a", "b", "other"}
    assert capped.windows["24h"][("other", "email", "normal")] == cell(opened=3)
    assert capped.live == {("other", "email", "normal"): Live(open=1, oldest_awaiting=9)}
    assert totals(capped) == totals(snap)


def test_cap_queues_keeps_other_dimensions_apart() -> None:
    snap = snapshot(
        {
            ("a", "email", "high"): cell(opened=9),
            ("b", "email", "high"): cell(opened=1),
            ("c", "chat", "high"): cell(opened=1),
            ("d", "email", "low"): cell(opened=1),
        }
    )
    capped = snap.cap_queues(1)
    assert set(capped.windows["1h"]) == {
        ("a", "email", "high"),
        ("other", "email", "high"),
        ("other", "chat", "high"),
        ("other", "email", "low"),
    }
    assert capped.windows["1h"][("other", "email", "high")] == cell(opened=1)


def test_cap_queues_breaks_ties_by_name() -> None:
    capped = snapshot(activity_cells(b=2, a=2, c=2)).cap_queues(2)
    assert queues_of(capped) == {"a", "b", "other"}


def test_open_tickets_count_as_queue_activity() -> None:
    snap = snapshot(
        activity_cells(a=2, b=1),
        {("b", "email", "normal"): Live(open=5), ("c", "email", "normal"): Live(open=1)},
    )
    assert queues_of(snap.cap_queues(1)) == {"b", "other"}


def test_unknown_queue_is_never_capped_nor_counted() -> None:
    snap = snapshot({UNKNOWN_DIMS: cell(csat_count=100), **activity_cells(a=2, b=1)})
    capped = snap.cap_queues(1)
    assert queues_of(capped) == {"unknown", "a", "other"}
    assert capped.windows["15m"][UNKNOWN_DIMS] == cell(csat_count=100)


def test_cap_queues_preserves_now_and_partitions() -> None:
    snap = snapshot(activity_cells(a=2, b=1), partitions=frozenset({4}))
    capped = snap.cap_queues(1)
    assert (capped.now_ms, capped.partitions) == (NOW, frozenset({4}))


def fast_and_slow_queues() -> list[dict[str, Any]]:
    events = []
    for n in range(10):
        events += [
            opened(f"busy-{n}", NOW - HOUR, queue="busy"),
            first_reply(f"busy-{n}", NOW - HOUR + SECOND),
        ]
    events += [opened("slow", NOW - 5 * HOUR, queue="slow"), first_reply("slow", NOW - HOUR)]
    return events


def test_cap_queues_ranks_queues_by_tickets_not_by_milliseconds_waited() -> None:
    """Snapshot.cap_queues sums the whole cell prefix as "activity", FRT_SUM_MS and
    RES_SUM_MS included, so one ticket answered after 4 h outweighs 10 answered in 1 s."""
    capped = report(fast_and_slow_queues(), config=KpiConfig(max_queues=1)).snapshot
    assert queues_of(capped) == {"busy", "other"}
