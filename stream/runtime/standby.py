"""Warm standbys: partitions another member serves, kept ready on this worker, never served.

The group leader gives each member standby partition numbers owned by another member
(`stream.runtime.assignor`). The worker tails their changelog topics with a consumer of
its own (manual assignment, no group, nothing committed) into a second processor that
nothing reads: it is never in a snapshot, `/metrics`, `/api/*`, the lag or readiness,
and never swept (the owner writes the tombstones, which arrive here like any record).
Once a partition has read its changelogs to the end, its KPI index is built in a thread
and from then on kept exact by each record that follows (`Processor.restore` on an
indexed partition). When a rebalance makes a standby partition active here, `take`
moves its records and index objects into the serving processor (`Processor.move_to`: no
copy) and gives its changelog offsets, and the runtime reads only the changelog after
them, as after a local snapshot file.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from stream.kpi.state import paused_gc

if TYPE_CHECKING:
    from stream.runtime.loop import EntityProcessor

log = logging.getLogger(__name__)

POLL_MS: Final = 200
# Records applied per turn of the event loop: with the index kept, ~12 us each (so ~25 ms).
BATCH: Final = 2_000
RETRY_S: Final = 1.0


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Standbys:
    """The standby partitions of one worker: their records, indexes and changelog offsets."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        processor: EntityProcessor,
        changelogs: Mapping[str, str],
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.clock = clock  # epoch ms: the instant indexes are built and handed over at
        self.consumer = consumer  # group-less, started and stopped by the runtime
        self.processor = processor  # a processor of their own, never served
        self.table_of = {topic: table for table, topic in changelogs.items()}
        self.positions: dict[TopicPartition, int] = {}  # next changelog offset to apply
        self.indexed: set[int] = set()  # partitions whose index is built and kept exact
        self.lock = asyncio.Lock()  # applying, index builds and hand-overs: one at a time
        self._followed = asyncio.Event()  # set while there is anything to tail

    @property
    def partitions(self) -> frozenset[int]:
        return frozenset(tp.partition for tp in self.positions)

    async def follow(self, partitions: Iterable[int]) -> None:
        """Keep exactly `partitions` warm from now on: drop the others, read new ones
        from the beginning of their changelogs."""
        async with self.lock:
            wanted = frozenset(partitions)
            dropped = self.partitions - wanted
            self.processor.revoke(dropped)
            self.indexed -= dropped
            for partition in wanted - self.partitions:
                for topic in self.table_of:
                    self.positions[TopicPartition(topic, partition)] = 0
            self.positions = {tp: n for tp, n in self.positions.items() if tp.partition in wanted}
            self._reassign()
            if dropped or wanted:
                log.info("standby partitions %s (dropped %s)", sorted(wanted), sorted(dropped))

    async def adopt(
        self,
        source: EntityProcessor,
        partitions: Iterable[int],
        offsets: Mapping[TopicPartition, int],
    ) -> None:
        """Keep as standbys partitions this worker served until now: their records and
        indexes move from `source` (no copy), complete up to `offsets` (the changelog ends
        when they were revoked, everything written), from which the tail is read. A
        partition without an offset for every changelog is left alone."""
        async with self.lock:
            numbers = frozenset(
                p for p in partitions if all(TopicPartition(t, p) in offsets for t in self.table_of)
            )
            for partition in numbers:
                source.move_to(self.processor, partition)
                for topic in self.table_of:
                    self.positions[TopicPartition(topic, partition)] = offsets[
                        TopicPartition(topic, partition)
                    ]
            self.processor.assign(numbers)  # their indexes came with them
            self.indexed |= numbers
            self._reassign()
            for partition in sorted(numbers):
                log.info("standby partition %d ready (kept from serving it)", partition)

    async def take(
        self, partitions: Iterable[int], into: EntityProcessor
    ) -> dict[TopicPartition, int]:
        """Move standby partitions that become active here into `into`: their records and,
        once built, their indexes (no copy). Returns the changelog offset each changelog
        partition is complete up to; they are no longer kept here."""
        async with self.lock:
            numbers = frozenset(partitions) & self.partitions
            offsets = {tp: n for tp, n in self.positions.items() if tp.partition in numbers}
            records = sum(
                len(self.processor.records(table, p))
                for table in self.table_of.values()
                for p in numbers
            )
            for partition in numbers:
                self.processor.move_to(into, partition)
            if numbers:
                log.info(
                    "partitions %s taken over from standby (%d records; index kept for %s)",
                    sorted(numbers),
                    records,
                    sorted(numbers & self.indexed),
                )
            self.positions = {tp: n for tp, n in self.positions.items() if tp not in offsets}
            self.indexed -= numbers
            self._reassign()
            return offsets

    async def run(self) -> None:
        """Tail the standby changelogs until cancelled; an unexpected error ends it (and the
        worker: fail-stop), a Kafka error is retried."""
        while True:
            await self._followed.wait()
            try:
                await self.poll()
            except KafkaError as exc:  # the broker's trouble: the active side reports it
                log.warning("standby changelogs not read: %r", exc)
                await asyncio.sleep(RETRY_S)

    async def poll(self) -> None:
        """Apply what the consumer fetched; index the partitions that caught up."""
        batch = await self.consumer.getmany(timeout_ms=POLL_MS, max_records=BATCH)
        async with self.lock:
            self._apply(batch)
            await self._index_caught_up()

    def _apply(self, batch: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        for tp, records in batch.items():
            position = self.positions.get(tp)
            if position is None:  # fetched before the partition was dropped or taken
                continue
            fresh = [(r.key or b"", r.value) for r in records if r.offset >= position]
            if fresh:
                self.processor.restore(self.table_of[tp.topic], tp.partition, fresh)
                self.positions[tp] = records[-1].offset + 1

    async def _index_caught_up(self) -> None:
        """Build the index of partitions that have read every changelog to its end (in a
        thread: it takes seconds at a million records); records that follow keep it exact."""
        behind = {
            tp.partition
            for tp, position in self.positions.items()
            if (end := self.consumer.highwater(tp)) is None or position < end
        }
        for partition in sorted(self.partitions - behind - self.indexed):
            started = time.monotonic()
            for table in self.table_of.values():
                records = self.processor.records(table, partition)
                state = await asyncio.to_thread(self._index_state, table, records, self.clock())
                self.processor.load(table, partition, records, state, self.processor.state_key)
            self.processor.assign([partition])
            self.indexed.add(partition)
            log.info(
                "standby partition %d ready (index built in %.2f s)",
                partition,
                time.monotonic() - started,
            )

    def _index_state(self, table: str, records: dict[str, bytes], now: int) -> list[object] | None:
        with paused_gc():
            return self.processor.index_state(table, records, now)

    def _reassign(self) -> None:
        self.consumer.assign(list(self.positions))
        for tp, offset in self.positions.items():
            self.consumer.seek(tp, offset)
        if self.positions:
            self._followed.set()
        else:
            self._followed.clear()
