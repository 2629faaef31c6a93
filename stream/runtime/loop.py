"""The worker's Kafka loop: batches in, processor, changelog and dead letters out, then commit.

Per batch, under `lock`: getmany -> `processor.handle` per message -> one changelog record
per changed entity, produced to its table's changelog on the partition the input came from
-> dead-letter records for rejections -> handed to the `Pipeline`, which sends them, waits
for every acknowledgement and then commits the offsets applied. The loop meanwhile fetches
and applies the next batch (at most `PIPELINE_DEPTH` batches are not yet committed); the
pipeline's docstring says why offsets and changelog order stay right.
A crash anywhere before the commit replays the tail, which the idempotent merge makes
harmless. An unexpected exception ends `run` (fail-stop): nothing past it is committed.
Rebalances, sweeps and local snapshots take the same lock and drain the pipeline first, so
partitions move only after every batch is acknowledged and committed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from stream.config import Settings
from stream.deadletter import dead_letter
from stream.events import Rejection
from stream.kafka_client import bootstrap_servers, client_security
from stream.kpi.contrib import Layout
from stream.kpi.snapshot import Snapshot
from stream.kpi.state import paused_gc
from stream.kpi.types import DLQ_TOPIC
from stream.runtime import snapshots
from stream.runtime import topics as topic_setup
from stream.runtime.assignor import CoPartitionAssignor
from stream.runtime.pipeline import Offsets, Pipeline, Send
from stream.runtime.recovery import Records, in_child, other_cores, read_changelogs
from stream.runtime.standby import Standbys

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_MAX: Final = 5000  # messages per getmany
POLL_MS: Final = 100
PIPELINE_DEPTH: Final = 2  # batches applied and not yet committed, at most
HANDOVER_S: Final = 0.0005  # after a batch, for its writes to reach the socket (see _loop)
OFFSETS_REFRESH_S: Final = 2.0
BROKER_LOST_S: Final = 15.0  # no broker answer for this long: not ready, data stale
NO_PROGRESS_S: Final = 30.0  # lag but nothing applied for this long: data stale
SWEEP_INTERVAL_S: Final = 600.0
SNAPSHOT_INTERVAL_S: Final = 300.0
RETRY_S: Final = 1.0
STOP_GRACE_S: Final = 20.0  # to finish the current batch on SIGTERM
FORKED_INDEX_MIN_RECORDS: Final = 10_000  # a smaller table partition is indexed in-process
# Index builds in child processes at a time: each holds its own copy of the memory pages of
# its partition's records it touches and of the index it builds (~60 MB for 125,000 tickets).
FORKED_INDEX_CHILDREN: Final = 2


class EntityProcessor(Protocol):
    """What the loop needs of `stream.processor.Processor` (see PROTOCOL.md)."""

    tables: tuple[str, ...]
    topics: tuple[str, ...]
    state_key: str

    @property
    def layout(self) -> Layout: ...
    @property
    def events(self) -> Counter[tuple[str, str]]: ...
    @property
    def rejections(self) -> Counter[tuple[str, str]]: ...
    @property
    def last_event_occurred_ms(self) -> int | None: ...
    @property
    def last_processed_ms(self) -> int: ...
    def handle(
        self, topic: str, partition: int, key: bytes | None, value: bytes | None, now_ms: int
    ) -> Any: ...
    def record_bytes(self, table: str, partition: int, key: str) -> bytes | None: ...
    def restore(
        self, table: str, partition: int, records: Iterable[tuple[bytes, bytes | None]]
    ) -> None: ...
    def records(self, table: str, partition: int) -> dict[str, bytes]: ...
    def record_steps(
        self, table: str, partition: int, keys_per_step: int = ...
    ) -> Generator[None, None, dict[str, bytes]]: ...
    def index_state(
        self, table: str, records: dict[str, bytes], now_ms: int
    ) -> list[object] | None: ...
    def live_index_state(self, table: str, partition: int, now_ms: int) -> list[object] | None: ...
    def load(
        self,
        table: str,
        partition: int,
        records: dict[str, bytes],
        state: list[object] | None,
        state_key: str,
    ) -> None: ...
    def move_to(self, other: Any, partition: int) -> None: ...
    def assign(self, partitions: Iterable[int]) -> None: ...
    def revoke(self, partitions: Iterable[int]) -> None: ...
    def expire(self, now_ms: int) -> list[tuple[str, int, str]]: ...
    def snapshot(self, now_ms: int, per_agent: bool = True) -> Snapshot: ...
    def snapshot_steps(
        self, now_ms: int, per_agent: bool = True
    ) -> Generator[None, None, Snapshot]: ...


class ProcessingFailed(Exception):
    """The processor raised on a message: the worker stops without committing it."""

    def __init__(self, record: ConsumerRecord[bytes, bytes], cause: BaseException) -> None:
        frame = cause.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        where = (
            "" if frame is None else f" at {frame.tb_frame.f_code.co_filename}:{frame.tb_lineno}"
        )
        super().__init__(
            f"unexpected {type(cause).__name__} while processing {record.topic}"
            f"[{record.partition}]@{record.offset}: {cause}{where}"
        )


@dataclass
class Health:
    """When the broker last answered and the loop last made progress (monotonic seconds)."""

    broker_ok_at: float
    progress_at: float
    lag: int = 0

    def stale_reason(self, now: float) -> str | None:
        if now - self.broker_ok_at > BROKER_LOST_S:
            return "broker_unreachable"
        if self.lag > 0 and now - self.progress_at > NO_PROGRESS_S:
            return "no_progress"
        return None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Runtime:
    """One worker's Kafka side. `start`, then `run` until `stop` (or a failure)."""

    def __init__(
        self,
        settings: Settings,
        processor: EntityProcessor,
        standby: EntityProcessor | None = None,
    ) -> None:
        """`standby`: a processor of its own for warm standby partitions (None: none kept)."""
        self.settings = settings
        self.processor = processor
        prefix = settings.topic_prefix
        self.input_topics = tuple(prefix + t for t in processor.topics)
        self.dlq_topic = prefix + DLQ_TOPIC
        self.changelogs = {t: f"{settings.app_id}-{t}-changelog" for t in processor.tables}
        self.assignor = CoPartitionAssignor(settings.web_url, settings.standby_replicas)
        self.snapshot_dir = settings.data_dir / settings.app_id
        self.lock = asyncio.Lock()
        self.owned: frozenset[int] = frozenset()
        self.serving = False  # partitions assigned and restored; False during a rebalance
        self.rebalances = 0  # revocations so far: a copy spanning one is dropped
        self.positions: dict[TopicPartition, int] = {}  # next offset to apply
        self.highwaters: dict[TopicPartition, int] = {}
        started = time.monotonic()
        self.health = Health(broker_ok_at=started, progress_at=started)
        self.dlq_partitions = 1
        self._changelog_end: dict[TopicPartition, int] = {}  # as of the last revocation
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None
        common = {"bootstrap_servers": bootstrap_servers(settings.broker)}
        common |= client_security(settings.security)
        self.consumer = AIOKafkaConsumer(
            group_id=settings.app_id,
            group_instance_id=settings.group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(self.assignor,),
            session_timeout_ms=settings.session_timeout_s * 1000,
            heartbeat_interval_ms=settings.session_timeout_s * 100,
            max_poll_records=BATCH_MAX,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
            **common,
        )
        # Reads changelogs, and answers every changelog end offset: the group consumer's
        # metadata follows its subscription (the input topics), so an end offset of a
        # changelog asked of it cost a metadata round and a retry, ~0.5 s each time.
        # It never waits for new records (it reads up to known ends): no long poll, which
        # held each partition's last fetch for fetch_max_wait_ms (500 ms by default). It
        # learns the changelog topics one per metadata round, each after retry_backoff_ms
        # (100 ms by default: 0.3 s for three tables at the first restore).
        self.restorer = AIOKafkaConsumer(
            enable_auto_commit=False,
            fetch_max_wait_ms=0,
            retry_backoff_ms=10,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            **common,
        )
        self.standbys = (
            None
            if standby is None
            else Standbys(
                AIOKafkaConsumer(
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    max_partition_fetch_bytes=16 * 1024 * 1024,
                    **common,
                ),
                standby,
                self.changelogs,
            )
        )
        self.producer = AIOKafkaProducer(
            acks="all", linger_ms=5, max_batch_size=1024 * 1024, **common
        )
        self.admin = AIOKafkaAdminClient(**common)
        self.pipeline = Pipeline(self._deliver, self._commit, PIPELINE_DEPTH)

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create missing topics, join the group (KafkaError: broker unreachable)."""
        await self.admin.start()
        partitions = self.settings.partitions
        specs = [topic_setup.TopicSpec(t, partitions) for t in self.input_topics]
        specs += [
            topic_setup.TopicSpec(t, partitions, topic_setup.COMPACTED)
            for t in self.changelogs.values()
        ]
        specs.append(topic_setup.TopicSpec(self.dlq_topic, None))
        counts = await topic_setup.ensure(
            self.admin, specs, partitions, self.settings.replication_factor
        )
        self.dlq_partitions = counts[self.dlq_topic]
        await self.producer.start()
        await self.restorer.start()
        if self.standbys is not None:
            await self.standbys.consumer.start()
        await self.consumer.start()
        self.consumer.subscribe(self.input_topics, listener=_Listener(self))

    async def run(self) -> None:
        """Process batches until `stop`; raises the first unexpected error (fail-stop)."""
        timers = [
            asyncio.create_task(self._every(OFFSETS_REFRESH_S, self._refresh_offsets)),
            asyncio.create_task(self._every(self._sweep_interval(), self._sweep)),
            asyncio.create_task(self._every(SNAPSHOT_INTERVAL_S, self.save_snapshots)),
        ]
        if self.standbys is not None:
            timers.append(asyncio.create_task(self.standbys.run()))
        loop = asyncio.create_task(self._loop())
        stopped: asyncio.Task[Any] = asyncio.create_task(self._stopping.wait())
        failed = self.pipeline.failed
        try:
            await asyncio.wait(
                [loop, stopped, failed, *timers], return_when=asyncio.FIRST_COMPLETED
            )
            if self._failure is not None:
                raise self._failure
            if failed.done():
                raise failed.exception()  # type: ignore[misc]
            for task in (loop, *timers):
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            # The loop ends after its batch and the pipeline's drain.
            done, _ = await asyncio.wait([loop], timeout=STOP_GRACE_S)
            if not done:  # what is in memory may be ahead of the changelog: no snapshot
                self.serving = False
            elif loop.exception() is not None:
                raise loop.exception()  # type: ignore[misc]
        finally:
            tasks = (loop, stopped, *timers)
            while not all(task.done() for task in tasks):  # a cancel can be swallowed (3.11)
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks, timeout=1.0)
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        """Ask `run` to return after the current batch."""
        self._stopping.set()

    def fail(self, error: BaseException) -> None:
        """Stop `run` with `error` (from a rebalance callback, which aiokafka would swallow)."""
        if self._failure is None:
            self._failure = error
        self._stopping.set()

    async def close(self) -> None:
        """Leave the group and close every client (the last batch is committed already)."""
        async with self.lock:
            self.serving = False
        await self.pipeline.close()
        standby = () if self.standbys is None else (self.standbys.consumer,)
        for client in (self.consumer, self.restorer, *standby, self.producer):
            try:
                await client.stop()
            except KafkaError as exc:
                log.warning("closing a Kafka client: %r", exc)
        await self.admin.close()

    # -- the batch loop ------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = await self.consumer.getmany(timeout_ms=POLL_MS, max_records=BATCH_MAX)
            except IllegalStateError:  # no subscription yet / between assignments
                await asyncio.sleep(POLL_MS / 1000)
                continue
            if not batch:
                continue
            async with self.lock:
                applied = self._apply(batch)
                if applied is None:
                    continue
                await self.pipeline.submit(*applied)
            # getmany returns buffered records without yielding: pause for the deliverer to
            # hand this batch to the producer and the producer to write its request, so the
            # broker works on it while the next batch is applied.
            await asyncio.sleep(HANDOVER_S)
        async with self.lock:
            await self.pipeline.drain()

    def _apply(
        self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> tuple[list[Send], Offsets] | None:
        """Apply one batch: the writes of what it changed and the offsets they cover."""
        prefix_length = len(self.settings.topic_prefix)
        changed: dict[tuple[str, int], set[str]] = defaultdict(set)
        dead: list[tuple[ConsumerRecord[bytes, bytes], Rejection]] = []
        applied: dict[TopicPartition, int] = {}
        handle = self.processor.handle
        now = now_ms()
        for tp, records in batch.items():
            position = self.positions.get(tp)
            if position is None:  # not (or no longer) ours
                continue
            topic, partition = tp.topic[prefix_length:], tp.partition
            for record in records:
                if record.offset < position:  # fetched before a rebalance, applied since
                    continue
                try:
                    outcome = handle(topic, partition, record.key, record.value, now)
                except Exception as exc:
                    raise ProcessingFailed(record, exc) from exc
                if outcome.key is not None:
                    changed[outcome.table, partition].add(outcome.key)
                elif outcome.rejection is not None:
                    dead.append((record, outcome.rejection))
                position = record.offset + 1
            if position != self.positions[tp]:
                applied[tp] = self.positions[tp] = position
        if not applied:
            return None
        sends = self._changelog_sends(changed)
        sends += [self._dead_letter_send(record, rejection) for record, rejection in dead]
        return sends, applied

    def _changelog_sends(self, changed: dict[tuple[str, int], set[str]]) -> list[Send]:
        """One changelog record per changed entity, in batches per (table, partition)."""
        sends = []
        for (table, partition), keys in changed.items():
            topic = self.changelogs[table]
            records = [
                (key.encode(), self.processor.record_bytes(table, partition, key)) for key in keys
            ]
            sends.extend(self._batch_sends(topic, partition, records))
        return sends

    def _batch_sends(
        self, topic: str, partition: int, records: list[tuple[bytes, bytes | None]]
    ) -> list[Send]:
        """Producer batches holding `records`, as re-runnable sends."""
        sends = []
        batch = self.producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                sends.append(self._send_batch(batch, topic, partition))
                batch = self.producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        if batch.record_count():
            sends.append(self._send_batch(batch, topic, partition))
        return sends

    def _send_batch(self, batch: Any, topic: str, partition: int) -> Send:
        async def send() -> Any:
            return await (await self.producer.send_batch(batch, topic, partition=partition))

        return send

    def _dead_letter_send(self, record: ConsumerRecord[bytes, bytes], rejection: Rejection) -> Send:
        """The original key and value (cut to fit if too large), why and where from in headers."""
        letter = dead_letter(
            rejection, record.topic, record.partition, record.offset, record.key, record.value
        )
        partition = record.partition % self.dlq_partitions

        async def send() -> Any:
            return await (
                await self.producer.send(
                    self.dlq_topic,
                    letter.value,
                    key=letter.key,
                    partition=partition,
                    headers=letter.headers,
                )
            )

        return send

    async def _deliver(self, sends: list[Send]) -> None:
        """Run every send until the broker acknowledged it; a failed one is sent again.

        Broker trouble (KafkaError) never loses a record and never skips one: the batch
        waits, uncommitted, until the broker takes it.
        """
        pending = sends
        while pending:
            results = await asyncio.gather(*(send() for send in pending), return_exceptions=True)
            failed = [
                s for s, r in zip(pending, results, strict=True) if isinstance(r, BaseException)
            ]
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, KafkaError):
                    raise result
            if failed:
                errors = {type(r).__name__ for r in results if isinstance(r, BaseException)}
                log.warning(
                    "%d writes not acknowledged (%s); retrying",
                    len(failed),
                    ", ".join(sorted(errors)),
                )
                await asyncio.sleep(RETRY_S)
            else:
                self.health.broker_ok_at = time.monotonic()
            pending = failed

    async def _commit(self, offsets: Offsets) -> None:
        """Commit applied offsets; a group that moved on meanwhile replays them elsewhere."""
        while True:
            try:
                await self.consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # The group rebalanced without us (e.g. we stalled past the session timeout):
                # the new owner replays from the last commit, which the merge makes harmless.
                log.warning("offsets not committed, the group moved on: %r", exc)
                return
            except KafkaError as exc:
                log.warning("committing offsets failed (%r); retrying", exc)
                await asyncio.sleep(RETRY_S)
                continue
            self.health.progress_at = self.health.broker_ok_at = time.monotonic()
            return

    # -- rebalancing ---------------------------------------------------------------------

    async def on_revoked(self) -> None:
        """Finish the batch (the lock), then stop serving until the next assignment.

        aiokafka revokes everything at every rebalance; the state of partitions this
        worker keeps is not dropped, only not exported until `on_assigned` (which drops
        what moved away and restores what is new).
        """
        async with self.lock:
            await self.pipeline.drain()
            self.serving = False
            self.rebalances += 1
            self.positions.clear()
            tps = [TopicPartition(c, p) for c in self.changelogs.values() for p in self.owned]
            try:
                self._changelog_end = await self.restorer.end_offsets(tps) if tps else {}
            except KafkaError as exc:  # then every kept partition is restored again
                log.warning("changelog end offsets unknown at revocation: %r", exc)
                self._changelog_end = {}

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Drop partitions that moved away; restore new ones from the changelog; serve."""
        async with self.lock:
            started = time.monotonic()
            numbers = frozenset(tp.partition for tp in assigned if tp.topic in self.input_topics)
            lost = self.owned - numbers
            if lost and self.standbys is not None:  # those now kept warm here stay loaded
                kept = lost & set(self.assignor.standby)
                await self.standbys.adopt(self.processor, kept, self._changelog_end)
            if lost:
                self.processor.revoke(lost)
            new = numbers - self.owned
            self.owned = numbers - new  # kept partitions stay while the new ones load
            stale = await self._stale(self.owned)
            if stale:
                self.processor.revoke(stale)
                new |= stale
            restoring = time.monotonic()
            restored = await self._restore(new)
            indexing = time.monotonic()
            self.processor.assign(new)
            # The restored records and indexes live on: moved out of the collector's way, a
            # full collection no longer walks them (~300 ms at 200,000 tickets, bench.latency).
            gc.freeze()
            self.owned = numbers
            positioning = time.monotonic()
            await self._load_positions(assigned)
            self.serving = True
            if self.standbys is not None:
                await self.standbys.follow(set(self.assignor.standby) - numbers)
            log.info(
                "assigned partitions %s (%d records restored for %s; restore %.2f s, "
                "index %.2f s, input positions %.2f s) in %.2f s",
                sorted(numbers),
                restored,
                sorted(new),
                indexing - restoring,
                positioning - indexing,
                time.monotonic() - positioning,
                time.monotonic() - started,
            )

    async def _stale(self, kept: frozenset[int]) -> frozenset[int]:
        """Kept partitions whose changelog someone else wrote since (they need a restore)."""
        if not kept:
            return frozenset()
        tps = [TopicPartition(c, p) for c in self.changelogs.values() for p in kept]
        ends = await self.restorer.end_offsets(tps)
        return frozenset(tp.partition for tp in tps if ends[tp] != self._changelog_end.get(tp))

    async def _restore(self, partitions: frozenset[int]) -> int:
        """Load `partitions` into the processor: the local snapshot if there is a usable
        one, then the changelog from its offset (from the start without one) to the end.

        The changelogs are read one partition at a time; the index of a table partition
        read whole from its changelog is built in a child process (`_index_in_child`)
        while the next partition is read: the rebuild is CPU-bound, as the read is."""
        table_of = {topic: table for table, topic in self.changelogs.items()}
        tps = [TopicPartition(c, p) for c in self.changelogs.values() for p in partitions]
        started = time.monotonic()
        ends = await self.restorer.end_offsets(tps) if tps else {}
        ended = time.monotonic()
        warm = {} if self.standbys is None else await self.standbys.take(partitions, self.processor)
        starts = {}
        count = 0
        for tp in tps:
            if tp in warm:  # taken over from a standby: only the tail after its offset
                starts[tp] = warm[tp]
                continue
            table = table_of[tp.topic]
            snapshot = await asyncio.to_thread(
                snapshots.read, self.snapshot_dir, table, tp.partition
            )
            if snapshot is None or snapshot.offset > ends[tp]:  # none, too old, or a new topic
                starts[tp] = 0
                continue
            self.processor.load(
                table, tp.partition, snapshot.records, snapshot.index, snapshot.state_key
            )
            count += len(snapshot.records)
            starts[tp] = snapshot.offset
        loaded = time.monotonic()

        def apply(tp: TopicPartition, records: Records) -> None:
            self.processor.restore(table_of[tp.topic], tp.partition, records)

        tail = 0
        builds = []
        children = asyncio.Semaphore(FORKED_INDEX_CHILDREN)
        for partition in sorted(partitions):
            mine = {tp: start for tp, start in starts.items() if tp.partition == partition}
            tail += await read_changelogs(self.restorer, mine, apply)
            if other_cores():
                builds += [
                    asyncio.create_task(
                        self._index_in_child(table_of[tp.topic], partition, children)
                    )
                    for tp, start in mine.items()
                    if start == 0 and tp not in warm
                ]
        read = time.monotonic()
        built = sum(await asyncio.gather(*builds))
        log.info(
            "restored %d records from local snapshots and %d from changelogs "
            "(end offsets %.2f s, snapshots %.2f s, changelogs %.2f s, then %d indexes built "
            "in child processes %.2f s)",
            count,
            tail,
            ended - started,
            loaded - ended,
            read - loaded,
            built,
            time.monotonic() - read,
        )
        return count + tail

    async def _index_in_child(
        self, table: str, partition: int, children: asyncio.Semaphore
    ) -> bool:
        """Build the index of a restored table partition in a child process (at most
        `FORKED_INDEX_CHILDREN` at a time) and hand it to the processor with the records
        (which nothing changes meanwhile: the lock is held); True if it did. A small
        partition, or a failed child, is left to `processor.assign`, which builds it here."""
        async with children:
            records = self.processor.records(table, partition)
            if len(records) < FORKED_INDEX_MIN_RECORDS:
                return False
            built_at = now_ms()
            try:
                index = await in_child(lambda: self.processor.index_state(table, records, built_at))
            except (OSError, EOFError) as exc:
                log.warning("index of %s[%d] not built in a child: %r", table, partition, exc)
                return False
            self.processor.load(table, partition, records, index, self.processor.state_key)
            return True

    async def save_snapshots(self) -> None:
        """Write a local snapshot of every served table partition with its changelog offset.

        One partition at a time: under the lock, with the pipeline drained (every record
        in memory is on the changelog), its changelog end is taken, then its records are
        copied a slice at a time (`processor.record_steps`), batches running between the
        slices. A record an event changes, adds or removes meanwhile is written to the
        changelog at or after that end, so reading the changelog from the end on top of
        the copy gives it whatever the slice took; before the file is written the
        pipeline is drained again, so the copy holds nothing the changelog lacks (a crash
        then would keep in the file a record whose event, applied again, is a duplicate
        that writes nothing). The index of the copy is built and the file written in a
        thread. A rebalance during the copy drops that partition's snapshot this time.
        After a clean stop no batch runs any more: the records and the served index are
        written as they are, at once (no build; the web server waits those few seconds).
        """
        started = time.monotonic()
        table_of = {topic: table for table, topic in self.changelogs.items()}
        stopped = self._stopping.is_set()
        written = 0
        for tp in [TopicPartition(c, p) for c in self.changelogs.values() for p in self.owned]:
            table, partition = table_of[tp.topic], tp.partition
            async with self.lock:
                if not self.serving or partition not in self.owned:
                    continue
                await self.pipeline.drain()  # the records in memory are all on the changelog
                try:
                    end = (await self.restorer.end_offsets([tp]))[tp]
                except KafkaError as exc:  # without the offset a snapshot would be useless
                    log.warning("no local snapshot written: %r", exc)
                    return
                if stopped:
                    records = self.processor.records(table, partition)
                    index = self.processor.live_index_state(table, partition, now_ms())
                    try:
                        written += self._write_snapshot(table, partition, end, records, index)
                    except OSError as exc:  # only restart time depends on it
                        log.warning("local snapshot not written to %s: %r", self.snapshot_dir, exc)
                        return
                    continue
                rebalances = self.rebalances
                steps = self.processor.record_steps(table, partition)
                copy = step(steps)
            while copy is None and rebalances == self.rebalances:
                await asyncio.sleep(0)  # the batch loop and the web server run between slices
                async with self.lock:
                    if rebalances == self.rebalances:
                        copy = step(steps)
            if copy is None:
                continue
            async with self.lock:
                await self.pipeline.drain()  # what later batches changed is on the changelog
            try:
                written += await asyncio.to_thread(
                    self._write_snapshot, table, partition, end, copy, None
                )
            except OSError as exc:
                log.warning("local snapshot not written to %s: %r", self.snapshot_dir, exc)
                return
        log.info(
            "local snapshots of %d records written in %.2f s", written, time.monotonic() - started
        )

    def _write_snapshot(
        self,
        table: str,
        partition: int,
        offset: int,
        records: dict[str, bytes],
        index: list[object] | None,
    ) -> int:
        """Write a snapshot file; without `index`, build the index of the records copy.
        With the garbage collector paused: what it allocates dies at the end, and a
        collection in this thread would hold up the event loop too."""
        with paused_gc():
            if index is None:
                index = self.processor.index_state(table, records, now_ms())
            return snapshots.write(
                self.snapshot_dir,
                table,
                partition,
                offset,
                records,
                index,
                self.processor.state_key,
            )

    async def _load_positions(self, assigned: set[TopicPartition]) -> None:
        """Next offset to apply per input partition: the committed one, else the beginning.

        The consumer is sought there too. aiokafka may fetch a new partition before this
        callback runs, and the loop skips records of partitions that are not ours yet: the
        seek fetches them again, so none is lost. Records fetched before it and applied
        after it are skipped by offset when they come again.
        """
        inputs = [tp for tp in assigned if tp.topic in self.input_topics]
        committed = await asyncio.gather(*(self.consumer.committed(tp) for tp in inputs))
        missing = [tp for tp, offset in zip(inputs, committed, strict=True) if offset is None]
        beginnings = await self.consumer.beginning_offsets(missing) if missing else {}
        self.positions = {
            tp: offset if offset is not None else beginnings[tp]
            for tp, offset in zip(inputs, committed, strict=True)
        }
        for tp, offset in self.positions.items():
            self.consumer.seek(tp, offset)

    # -- timers --------------------------------------------------------------------------

    async def _every(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            await action()

    def _sweep_interval(self) -> float:
        """Often enough that expiry lags retention by at most a quarter of it."""
        return min(SWEEP_INTERVAL_S, self.settings.kpi.retention_ms / 4000)

    async def _sweep(self) -> None:
        """Entities past retention leave the processor; a tombstone each on the changelog."""
        async with self.lock:
            if not self.serving:
                return
            removed = self.processor.expire(now_ms())
            tombstones: dict[tuple[str, int], list[tuple[bytes, bytes | None]]] = defaultdict(list)
            for table, partition, key in removed:
                tombstones[table, partition].append((key.encode(), None))
            sends = []
            for (table, partition), records in tombstones.items():
                sends += self._batch_sends(self.changelogs[table], partition, records)
            await self.pipeline.submit(sends, {})  # after the batches before it, per key

    async def _refresh_offsets(self) -> None:
        """High watermarks of the owned input partitions, which also proves the broker is up.

        A timer does it, never a scrape. At least one partition is always asked, so that a
        worker that owns none still notices a lost broker.
        """
        owned = list(self.positions) or [TopicPartition(self.input_topics[0], 0)]
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that meets the answer, and this timer then outlived a failing worker's `run`.
            async with asyncio.timeout(BROKER_LOST_S / 3):
                highwaters = await self.consumer.end_offsets(owned)
        except (KafkaError, TimeoutError) as exc:
            log.debug("high watermarks not refreshed: %r", exc)
            return
        self.health.broker_ok_at = time.monotonic()
        self.highwaters = {tp: hw for tp, hw in highwaters.items() if tp in self.positions}
        self.health.lag = sum(self.lag().values())
        if self.health.lag == 0:
            self.health.progress_at = time.monotonic()

    # -- what the web server reads ---------------------------------------------------------

    def lag(self) -> dict[TopicPartition, int]:
        """Messages not yet applied, per owned input partition."""
        result = {}
        for tp, position in self.positions.items():
            highwater = max(self.highwaters.get(tp, -1), self.consumer.highwater(tp) or -1)
            if highwater >= 0:
                result[tp] = max(0, highwater - position)
        return result

    @property
    def ready(self) -> bool:
        """Partitions assigned and restored, the broker answering, and not stopping (a
        worker saving its snapshots at shutdown still answers, but takes no new traffic)."""
        return (
            self.serving
            and not self._stopping.is_set()
            and self.stale_reason() != "broker_unreachable"
        )

    def stale_reason(self) -> str | None:
        """Why the numbers may be behind: "broker_unreachable", "no_progress" or None."""
        return self.health.stale_reason(time.monotonic())

    def peers(self) -> dict[str, list[int]]:
        """Web URL -> partitions of every member, from the last assignment."""
        return self.assignor.peers


def step(steps: Generator[None, None, T]) -> T | None:
    """Run `steps` to its next yield (None), or to its end (what it returns)."""
    try:
        next(steps)
    except StopIteration as done:
        result: T = done.value
        return result
    return None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka's rebalance callbacks; an error in them stops the worker."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self.runtime.on_revoked()
        except Exception as exc:
            self.runtime.fail(exc)
            raise

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self.runtime.on_assigned(assigned)
        except Exception as exc:
            self.runtime.fail(exc)
            raise
