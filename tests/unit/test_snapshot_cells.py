"""Per-agent cells of a merged snapshot: added in place, never shared with an index.

Two tickets of agent a1 resolved in partitions 0 and 1 and one of a2 replied in partition 1,
all at 09:00-09:30 UTC, read at 10:00:30: values worked by hand.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from kpi_helpers import first_reply, opened, resolved, to_event
from kpi_helpers import utc_ms as at

from stream.kpi.centre import CentreSnapshot, Slot, add_into
from stream.kpi.contrib import Layout
from stream.kpi.entity import partition_of
from stream.kpi.settings import KpiConfig
from stream.kpi.types import TOPIC_OF_TYPE
from stream.kpi.windows import WINDOWS
from stream.processor import Processor

NOW = at("2026-11-22T10:00:30Z")


def test_add_into_copies_a_new_key_and_adds_in_place_after() -> None:
    first, second = [1, 2, 0], [0, 3, 4]
    into: dict[str, list[int]] = {}
    add_into(into, "a", first)
    held = into["a"]
    assert held == [1, 2, 0] and held is not first
    add_into(into, "a", second)
    assert into["a"] is held and held == [1, 5, 4]
    assert first == [1, 2, 0] and second == [0, 3, 4]  # the added cells are left alone
    with pytest.raises(ValueError, match="differ in length"):
        add_into(into, "a", [1, 1])


def test_agent_cells_add_up_over_partitions_and_snapshots_leave_the_index_alone() -> None:
    processor = Processor(KpiConfig(), ZoneInfo("UTC"), partitions=2)
    processor.assign([0, 1])
    # A ticket id of each partition (a record only lives on its key's partition).
    t1, t2 = (next(f"t{n}" for n in range(99) if partition_of(f"t{n}", 2) == p) for p in (0, 1))
    for partition, events in (
        (0, [opened(t1, at("2026-11-22T09:00:00Z")),
             resolved(t1, at("2026-11-22T09:20:00Z"), agent_id="a1")]),
        (1, [opened(t2, at("2026-11-22T09:00:00Z")),
             first_reply(t2, at("2026-11-22T09:10:00Z"), agent_id="a2"),
             resolved(t2, at("2026-11-22T09:30:00Z"), agent_id="a1")]),
    ):  # fmt: skip
        for payload in events:
            event = to_event(payload)
            outcome = processor.apply(TOPIC_OF_TYPE[event.type], partition, event)
            assert outcome.kind == "accepted"
    for _ in range(2):  # the second snapshot sees the same: the first changed no index cell
        snap = processor.snapshot(NOW)
        today = snap.centre.tickets_by_agent["today"]
        assert today.keys() == {"a1", "a2"}
        assert today["a1"][Layout.RES_COUNT] == 2
        assert today["a1"][Layout.FRT_COUNT] == 0
        assert today["a2"][Layout.FRT_COUNT] == 1
        assert today["a2"][Layout.RES_COUNT] == 0
        # 15m ends 10:00:30, after every event: both agents are there with zero cells.
        assert snap.centre.tickets_by_agent["15m"] == {
            "a1": [0] * len(today["a1"]),
            "a2": [0] * len(today["a2"]),
        }
        today["a1"][Layout.RES_COUNT] = 99  # a reader's change stays in its snapshot
    lean = processor.snapshot(NOW, per_agent=False)
    assert not lean.centre.per_agent
    assert lean.centre.tickets_by_agent == {w: {} for w in WINDOWS}
    assert lean.windows == snap.windows and lean.live == snap.live


def test_a_snapshot_without_per_agent_cells_merges_without_them_and_never_into_one_with() -> None:
    cell = [0] * Slot.SIZE
    full = CentreSnapshot()
    full.by_agent["1h"]["a1"] = [1, *cell[1:]]
    full.agent_ms["1h"]["a1"] = {"busy": 5}
    full.contacts["1h"]["billing", "phone"] = [2, *cell[1:]]
    lean = CentreSnapshot(per_agent=False)
    lean.merge(full)
    assert lean.contacts["1h"] == {("billing", "phone"): [2, *cell[1:]]}
    assert lean.by_agent["1h"] == {} and lean.agent_ms["1h"] == {}
    assert CentreSnapshot.from_jsonable(lean.to_jsonable()).per_agent is False
    with pytest.raises(ValueError, match="per-agent"):
        CentreSnapshot().merge(lean)
