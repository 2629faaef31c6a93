"""Warm standbys (`stream.runtime.standby`): a partition promoted from a standby serves
exactly what a cold restore of its whole changelog gives.

The changelog is what a live processor writes (one record per changed ticket), held by a
fake consumer that hands out records from the positions the standby seeks to, up to what
the test has published so far.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from aiokafka.structs import TopicPartition
from kpi_helpers import HOUR, MINUTE, NOW, first_reply, line, opened, resolved

from stream.kpi.entity import partition_of
from stream.kpi.settings import KpiConfig
from stream.processor import Processor
from stream.runtime.standby import Standbys

UTC = ZoneInfo("UTC")
PARTITIONS = 2
CHANGELOGS = {t: f"app-{t}-changelog" for t in ("tickets", "contacts", "agents")}
TICKETS = "app-tickets-changelog"
TABLE_OF = {topic: table for table, topic in CHANGELOGS.items()}


class FakeChangelogs:
    """The consumer a standby tails: records of every changelog partition, of which the
    first `published` are visible (the high watermark)."""

    def __init__(self) -> None:
        self.log: dict[TopicPartition, list[tuple[bytes, bytes | None]]] = {}
        self.published: dict[TopicPartition, int] = {}
        self.fetch: dict[TopicPartition, int] = {}

    def append(self, partition: int, records: Iterable[tuple[bytes, bytes | None]]) -> None:
        self.log.setdefault(TopicPartition(TICKETS, partition), []).extend(records)

    def publish(self) -> None:
        self.published = {tp: len(records) for tp, records in self.log.items()}

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.fetch = dict.fromkeys(partitions, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.fetch[tp] = offset

    def highwater(self, tp: TopicPartition) -> int:
        return self.published.get(tp, 0)

    async def getmany(
        self, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[object]]:
        batch = {}
        for tp, position in self.fetch.items():
            end = min(self.highwater(tp), position + 3)  # a few at a time: several polls
            if end > position:
                batch[tp] = [
                    SimpleNamespace(offset=offset, key=key, value=value)
                    for offset, (key, value) in enumerate(self.log[tp][position:end], position)
                ]
                self.fetch[tp] = end
        return batch


def changelog_of(
    processor: Processor, topic: str, ticket: str, value: bytes
) -> tuple[int, list[tuple[bytes, bytes | None]]]:
    partition = partition_of(ticket, PARTITIONS)
    outcome = processor.handle(topic, partition, ticket.encode(), value, NOW)
    assert outcome.kind == "accepted", outcome
    return partition, [(ticket.encode(), processor.record_bytes("tickets", partition, ticket))]


def write_events(live: Processor, changelogs: FakeChangelogs, first: int, last: int) -> None:
    """Tickets first..last opened, the even ones replied to, every third resolved."""
    for n in range(first, last):
        ticket = f"T{n}"
        changelogs.append(
            *changelog_of(
                live, "cs.ticket.opened", ticket, line(opened(ticket, NOW - 3 * HOUR + n * MINUTE))
            )
        )
        if n % 2 == 0:
            changelogs.append(
                *changelog_of(
                    live, "cs.ticket.first_reply", ticket, line(first_reply(ticket, NOW - HOUR + n))
                )
            )
        if n % 3 == 0:
            changelogs.append(
                *changelog_of(
                    live, "cs.ticket.resolved", ticket, line(resolved(ticket, NOW - MINUTE + n))
                )
            )


def cold_restore(changelogs: FakeChangelogs) -> Processor:
    cold = Processor(KpiConfig(), UTC, PARTITIONS)
    for tp, records in changelogs.log.items():
        cold.restore("tickets", tp.partition, records)
    cold.assign(range(PARTITIONS))
    return cold


async def promoted(
    standbys: Standbys, partitions: list[int], changelogs: FakeChangelogs
) -> Processor:
    """What the runtime does with standbys it takes over: move them in, read the tail, serve."""
    active = Processor(KpiConfig(), UTC, PARTITIONS)
    offsets = await standbys.take(partitions, active)
    assert {tp.partition for tp in offsets} == set(partitions)
    for tp, offset in offsets.items():
        active.restore(TABLE_OF[tp.topic], tp.partition, changelogs.log.get(tp, [])[offset:])
    active.assign(partitions)
    return active


def started() -> tuple[Processor, FakeChangelogs, Standbys]:
    """A live processor serving every partition, its changelogs, and a standby tailing them."""
    live = Processor(KpiConfig(), UTC, PARTITIONS)
    live.assign(range(PARTITIONS))
    changelogs = FakeChangelogs()
    standby = Processor(KpiConfig(), UTC, PARTITIONS)
    return live, changelogs, Standbys(changelogs, standby, CHANGELOGS, lambda: NOW)  # type: ignore[arg-type]


async def tail(standbys: Standbys, polls: int) -> None:
    for _ in range(polls):
        await standbys.poll()


def test_promotion_of_an_indexed_standby_equals_a_cold_restore() -> None:
    live, changelogs, standbys = started()

    async def scenario() -> Processor:
        await standbys.follow([0, 1])
        write_events(live, changelogs, 0, 30)
        changelogs.publish()
        await tail(standbys, 40)  # caught up: the index is built
        assert standbys.indexed == {0, 1}
        write_events(live, changelogs, 30, 40)  # kept exact by the index updates
        changelogs.publish()
        await tail(standbys, 40)
        write_events(live, changelogs, 40, 50)  # the tail the promotion reads
        changelogs.publish()
        behind = [changelogs.published[tp] - n for tp, n in standbys.positions.items() if n]
        assert sum(behind) > 0
        kept = standbys.processor._indexes["tickets"][0]
        active = await promoted(standbys, [0, 1], changelogs)
        assert active._indexes["tickets"][0] is kept  # moved, not rebuilt
        return active

    active = asyncio.run(scenario())
    assert active.snapshot(NOW) == cold_restore(changelogs).snapshot(NOW) == live.snapshot(NOW)
    assert active.snapshot(NOW).live[("billing", "email", "normal")].open > 0
    assert standbys.partitions == frozenset()
    assert standbys.processor.records("tickets", 0) == {}


def test_promotion_of_a_standby_still_catching_up_equals_a_cold_restore() -> None:
    live, changelogs, standbys = started()

    async def scenario() -> Processor:
        await standbys.follow([0, 1])
        write_events(live, changelogs, 0, 30)
        changelogs.publish()
        await tail(standbys, 2)  # part of the way: no index yet
        assert standbys.indexed == set()
        assert standbys.processor.records("tickets", 1) != {}
        return await promoted(standbys, [1], changelogs)

    active = asyncio.run(scenario())
    assert standbys.partitions == frozenset({0})
    cold = cold_restore(changelogs)
    cold.revoke([0])
    assert active.snapshot(NOW) == cold.snapshot(NOW)
    assert active.snapshot(NOW).partitions == frozenset({1})


def test_standbys_no_longer_assigned_are_dropped() -> None:
    live, changelogs, standbys = started()

    async def scenario() -> None:
        await standbys.follow([0, 1])
        write_events(live, changelogs, 0, 20)
        changelogs.publish()
        await tail(standbys, 40)
        assert standbys.processor.records("tickets", 0) != {}
        await standbys.follow([1])

    asyncio.run(scenario())
    assert standbys.partitions == frozenset({1})
    assert standbys.indexed == {1}
    assert standbys.processor.records("tickets", 0) == {}
    assert set(changelogs.fetch) == {TopicPartition(t, 1) for t in CHANGELOGS.values()}


def test_a_partition_no_longer_served_but_kept_as_standby_keeps_its_state_and_tails_on() -> None:
    live, changelogs, standbys = started()
    write_events(live, changelogs, 0, 30)
    changelogs.publish()
    served = Processor(KpiConfig(), UTC, PARTITIONS)  # a worker that served both so far
    for tp, records in changelogs.log.items():
        served.restore("tickets", tp.partition, records)
    served.assign(range(PARTITIONS))
    ends = {
        TopicPartition(t, p): len(changelogs.log.get(TopicPartition(t, p), []))
        for t in CHANGELOGS.values()
        for p in range(PARTITIONS)
    }

    async def scenario() -> Processor:
        kept = served._indexes["tickets"][1]
        await standbys.adopt(served, [1], ends)  # partition 1 moved away, kept warm here
        served.revoke([1])
        assert standbys.processor._indexes["tickets"][1] is kept  # moved, not rebuilt
        await standbys.follow([1])  # the assignment's standbys: 1 stays, nothing read again
        assert standbys.positions[TopicPartition(TICKETS, 1)] == ends[TopicPartition(TICKETS, 1)]
        write_events(live, changelogs, 30, 45)  # the new owner writes on
        changelogs.publish()
        await tail(standbys, 40)
        tp = TopicPartition(TICKETS, 1)
        assert ends[tp] < standbys.positions[tp] == changelogs.published[tp]  # tailed on
        return await promoted(standbys, [1], changelogs)

    active = asyncio.run(scenario())
    cold = cold_restore(changelogs)
    cold.revoke([0])
    assert active.snapshot(NOW) == cold.snapshot(NOW)
    assert served.snapshot(NOW).partitions == frozenset({0})
