"""Local snapshot files (`stream.runtime.snapshots`) and a warm start from one.

A warm start takes the records and the index as saved, then the changelog tail on top;
it must end in the state a cold restore of the whole changelog gives.
"""

from __future__ import annotations

import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from kpi_helpers import HOUR, MINUTE, NOW, first_reply, line, opened, resolved

from stream.kpi.contrib import Layout
from stream.kpi.entity import partition_of
from stream.kpi.settings import KpiConfig
from stream.kpi.sla import SlaPolicy
from stream.processor import Processor
from stream.runtime import snapshots
from stream.runtime.loop import step

UTC = ZoneInfo("UTC")
PARTITIONS = 2
TICKETS = [f"T{n}" for n in range(40)]


def ticket_processor(config: KpiConfig | None = None) -> Processor:
    processor = Processor(config or KpiConfig(), UTC, PARTITIONS)
    processor.assign(range(PARTITIONS))
    return processor


def handle(
    processor: Processor, topic: str, ticket: str, value: bytes
) -> list[tuple[bytes, bytes | None]]:
    """Apply one event; the changelog record it makes (as the runtime would write it)."""
    partition = partition_of(ticket, PARTITIONS)
    outcome = processor.handle(topic, partition, ticket.encode(), value, NOW)
    assert outcome.kind == "accepted", outcome
    return [(ticket.encode(), processor.record_bytes("tickets", partition, ticket))]


def first_half(processor: Processor) -> None:
    for n, ticket in enumerate(TICKETS):
        handle(
            processor, "cs.ticket.opened", ticket, line(opened(ticket, NOW - 3 * HOUR + n * MINUTE))
        )


def second_half(processor: Processor) -> dict[int, list[tuple[bytes, bytes | None]]]:
    """More events: replies and resolves, and two new tickets; the changelog tail per partition."""
    tail: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in range(PARTITIONS)}
    for n, ticket in enumerate(TICKETS[:20]):
        partition = partition_of(ticket, PARTITIONS)
        tail[partition] += handle(
            processor, "cs.ticket.first_reply", ticket, line(first_reply(ticket, NOW - HOUR + n))
        )
        if n % 2:
            tail[partition] += handle(
                processor, "cs.ticket.resolved", ticket, line(resolved(ticket, NOW - MINUTE + n))
            )
    for ticket in ("N1", "N2"):
        tail[partition_of(ticket, PARTITIONS)] += handle(
            processor, "cs.ticket.opened", ticket, line(opened(ticket, NOW - 10 * MINUTE))
        )
    return tail


def saved(processor: Processor, directory: Path) -> None:
    for partition in range(PARTITIONS):
        records = processor.records("tickets", partition)
        index = processor.index_state("tickets", records, NOW)
        snapshots.write(directory, "tickets", partition, 7, records, index, processor.state_key)


def test_warm_start_from_a_snapshot_and_the_tail_equals_the_live_state(tmp_path: Path) -> None:
    live = ticket_processor()
    first_half(live)
    saved(live, tmp_path)
    tail = second_half(live)

    warm = Processor(KpiConfig(), UTC, PARTITIONS)
    for partition in range(PARTITIONS):
        snapshot = snapshots.read(tmp_path, "tickets", partition)
        assert snapshot is not None and snapshot.offset == 7
        assert snapshot.index is not None  # the index was saved: no rebuild needed
        warm.load("tickets", partition, snapshot.records, snapshot.index, snapshot.state_key)
        warm.restore("tickets", partition, tail[partition])
    warm.assign(range(PARTITIONS))

    assert warm.snapshot(NOW) == live.snapshot(NOW)
    for partition in range(PARTITIONS):
        assert dict(warm.records("tickets", partition)) == dict(live.records("tickets", partition))
    assert warm.snapshot(NOW).live[("billing", "email", "normal")].open == 32  # 40 + 2 - 10


def test_an_index_saved_under_another_policy_is_rebuilt_from_the_records(tmp_path: Path) -> None:
    live = ticket_processor()
    first_half(live)
    second_half(live)
    saved(live, tmp_path)
    hour_target = dict.fromkeys(("low", "normal", "high", "urgent"), HOUR)
    other = KpiConfig(sla=SlaPolicy(first_response_ms=hour_target))
    warm = Processor(other, UTC, PARTITIONS)
    assert warm.state_key != live.state_key
    cold = Processor(other, UTC, PARTITIONS)
    for partition in range(PARTITIONS):
        snapshot = snapshots.read(tmp_path, "tickets", partition)
        assert snapshot is not None
        warm.load("tickets", partition, snapshot.records, snapshot.index, snapshot.state_key)
        records = [(k.encode(), v) for k, v in live.records("tickets", partition).items()]
        cold.restore("tickets", partition, records)
    warm.assign(range(PARTITIONS))
    cold.assign(range(PARTITIONS))
    assert warm.snapshot(NOW) == cold.snapshot(NOW)
    # Replies 2 h minus up to 19 min after opening: all 20 breach a 1 h target.
    cell = warm.snapshot(NOW).windows["24h"][("billing", "email", "normal")]
    assert cell[Layout.FRT_COUNT] == cell[Layout.FRT_BREACHES] == 20


def test_a_damaged_or_old_snapshot_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = ticket_processor()
    first_half(live)
    saved(live, tmp_path)
    path = snapshots.path_of(tmp_path, "tickets", 0)
    whole = path.read_bytes()
    path.write_bytes(whole[:-5])
    assert snapshots.read(tmp_path, "tickets", 0) is None  # truncated
    path.write_bytes(whole + b"\x00\x00\x00\x01N")
    assert snapshots.read(tmp_path, "tickets", 0) is None  # a part the header does not name
    path.write_bytes(whole)
    assert snapshots.read(tmp_path, "tickets", 0) is not None
    later = time.time() + snapshots.MAX_AGE_S + 60
    monkeypatch.setattr(snapshots.time, "time", lambda: later)
    assert snapshots.read(tmp_path, "tickets", 0) is None  # older than 12 h
    assert snapshots.read(tmp_path, "tickets", 1) is None


def test_records_go_back_at_rest_once_their_changelog_value_is_taken() -> None:
    processor = ticket_processor()
    first_half(processor)  # `handle` takes each changelog value
    stored = processor._records["tickets"]
    assert all(type(r) is bytes for part in stored.values() for r in part.values())
    ticket = TICKETS[3]
    partition = partition_of(ticket, PARTITIONS)
    processor.handle(
        "cs.ticket.first_reply", partition, ticket.encode(), line(first_reply(ticket, NOW)), NOW
    )
    assert type(stored[partition][ticket]) is not bytes  # decoded to fold the event
    raw = processor.record_bytes("tickets", partition, ticket)
    assert stored[partition][ticket] == raw


def test_the_served_index_saved_at_a_clean_stop_gives_the_same_warm_start(
    tmp_path: Path,
) -> None:
    live = ticket_processor()
    first_half(live)
    second_half(live)
    for partition in range(PARTITIONS):
        records = live.records("tickets", partition)
        index = live.live_index_state("tickets", partition, NOW)
        snapshots.write(tmp_path, "tickets", partition, 0, records, index, live.state_key)
    expected = live.snapshot(NOW)
    live.handle(  # the live index goes on changing; the saved parts must not
        "cs.ticket.opened", partition_of("N3", PARTITIONS), b"N3", line(opened("N3", NOW)), NOW
    )
    warm = Processor(KpiConfig(), UTC, PARTITIONS)
    for partition in range(PARTITIONS):
        snapshot = snapshots.read(tmp_path, "tickets", partition)
        assert snapshot is not None
        warm.load("tickets", partition, snapshot.records, snapshot.index, snapshot.state_key)
    warm.assign(range(PARTITIONS))
    assert warm.snapshot(NOW) == expected


def test_records_copied_in_steps_while_events_go_on_plus_the_changelog_since_give_the_live_state(
    tmp_path: Path,
) -> None:
    """The 5-minute save copies a partition's records in steps (`Runtime.save_snapshots`),
    events changing, adding and removing records between the steps. The copy, its index
    and the changelog written after the copy began must give the live state."""
    live = ticket_processor()
    first_half(live)  # T0..T39 opened 3 h ago, one a minute
    before = {p: live.records("tickets", p) for p in range(PARTITIONS)}
    # A redelivered opening: T30 is decoded to fold it, and stays so (nothing changed).
    t30 = partition_of("T30", PARTITIONS)
    opening = line(opened("T30", NOW - 3 * HOUR + 30 * MINUTE))
    assert live.handle("cs.ticket.opened", t30, b"T30", opening, NOW).kind == "duplicate"
    steps = {p: live.record_steps("tickets", p, keys_per_step=4) for p in range(PARTITIONS)}
    copies: dict[int, dict[str, bytes]] = {}
    taken = 0

    def take_a_step() -> None:
        nonlocal taken
        for partition, partition_steps in steps.items():
            if partition not in copies:
                copy = step(partition_steps)
                taken += 1
                if copy is not None:
                    copies[partition] = copy

    take_a_step()
    # The retention sweep removes T0..T4 (opened first, nothing since): tombstones.
    sweep_at = NOW - 3 * HOUR + 5 * MINUTE + live.kinds["tickets"].retention_ms
    removed = live.expire(sweep_at)
    assert sorted(key for _, _, key in removed) == [f"T{n}" for n in range(5)]
    tail: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in range(PARTITIONS)}
    for _, partition, key in removed:
        tail[partition].append((key.encode(), None))
    tail[t30] += handle(live, "cs.ticket.first_reply", "T30", line(first_reply("T30", NOW)))
    take_a_step()
    for partition, records in second_half(live).items():  # changes T0..T19, adds N1, N2
        tail[partition] += records
    while len(copies) < PARTITIONS:
        take_a_step()
    assert taken > 2 * PARTITIONS  # the events fell between steps, not before or after
    # T30 was copied as the reply left it (a few events late), the rest as before.
    assert copies[t30]["T30"] == live.records("tickets", t30)["T30"] != before[t30]["T30"]
    assert {k: v for k, v in copies[t30].items() if k != "T30"} == {
        k: v for k, v in before[t30].items() if k != "T30"
    }

    warm = Processor(KpiConfig(), UTC, PARTITIONS)
    for partition, copy in copies.items():
        index = live.index_state("tickets", copy, NOW)
        snapshots.write(tmp_path, "tickets", partition, 7, copy, index, live.state_key)
        snapshot = snapshots.read(tmp_path, "tickets", partition)
        assert snapshot is not None
        warm.load("tickets", partition, snapshot.records, snapshot.index, snapshot.state_key)
        warm.restore("tickets", partition, tail[partition])
    warm.assign(range(PARTITIONS))

    assert warm.snapshot(NOW) == live.snapshot(NOW)
    for partition in range(PARTITIONS):
        assert warm.records("tickets", partition) == live.records("tickets", partition)
    # 40 opened - 5 removed + 2 new - 8 resolved (the odd ones of T5..T19; T1 and T3 were
    # removed first: their reply and resolve make records without an opening).
    assert sum(cell.open for cell in warm.snapshot(NOW).live.values()) == 29
