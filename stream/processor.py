"""The worker's state machine, free of Kafka: messages in, entity records and KPI indexes out.

Records are kept per table and per partition (the partition a message came in on; its
changelog record goes to the same partition number). Each entity kind
(`stream.kpi.entity.EntityKind`) folds its own events; the processor does the generic part:
decode, duplicate check by event-id fingerprint, the `max_events_per_entity` bound, the
partition check for new entities, and the index update (old contribution out, new in).
The runtime asks it for `topics` and `tables` and knows nothing about tickets.

At rest a record is kept as its changelog value (`bytes`): it is decoded when an event
touches it and encoded back when the runtime asks for its changelog value. A million bytes
values cost far less memory than a million record objects, are invisible to the cyclic
garbage collector, and make a local snapshot a cheap copy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Iterable
from hashlib import blake2b
from itertools import islice
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

from stream.events import Rejection, decode
from stream.kpi.agent import AgentKind
from stream.kpi.centre import CentreSnapshot
from stream.kpi.contact import ContactKind
from stream.kpi.contrib import Layout
from stream.kpi.entity import (
    EntityKind,
    EntityRecord,
    Index,
    admit,
    fingerprint,
    partition_of,
)
from stream.kpi.event import Event
from stream.kpi.index import STATE_LAYOUT
from stream.kpi.settings import KpiConfig
from stream.kpi.snapshot import Snapshot
from stream.kpi.state import paused_gc
from stream.kpi.ticket import TicketKind

# The entity kinds a worker runs, each built from the KPI policy and the time zone.
KINDS: Final = (TicketKind, ContactKind, AgentKind)


class Outcome(NamedTuple):
    """What happened to one message, and the entity record it changed (if any).

    A named tuple (immutable, fields by name) because one is made per message. A duplicate
    names a record too when its content still changed it (two events under one id).
    """

    kind: str  # "accepted" | "duplicate" | "rejected"
    rejection: Rejection | None  # when rejected: fixed reason word + detail
    table: str | None = None  # entity table the message changed
    key: str | None = None  # id of the changed entity


DUPLICATE: Final = Outcome("duplicate", None)
NO_KEY: Final = Rejection("key_mismatch", "message has no key")
WRONG_PARTITION: Final = Rejection(
    "wrong_partition", "the key does not hash to this partition (Kafka's default partitioner)"
)
TOO_MANY_EVENTS: Final = Rejection(
    "too_many_events", "the entity already holds max_events_per_entity distinct events"
)
# Reason words the processor adds to those of `stream.events.REASONS`.
REASONS: Final = (WRONG_PARTITION.reason, TOO_MANY_EVENTS.reason)

Kind = EntityKind[Any, Any]
# A record, or at rest its changelog value (decoded when an event touches it).
Stored = EntityRecord | bytes


class Processor:
    """Entity records and KPI indexes of the partitions this worker holds, and counters."""

    def __init__(
        self, config: KpiConfig, tz: ZoneInfo, partitions: int, started_ms: int = 0
    ) -> None:
        self.config = config
        self.partitions = partitions
        self.kinds: dict[str, Kind] = {k.table: k for k in (make(config, tz) for make in KINDS)}
        # Index states saved under another policy, time zone or index layout are not used.
        self.state_key = blake2b(
            f"{config!r} {tz.key} {STATE_LAYOUT}".encode(), digest_size=16
        ).hexdigest()
        self.kind_of_topic = {t: k for k in self.kinds.values() for t in k.topics}
        self.tables = tuple(self.kinds)
        self.topics = tuple(self.kind_of_topic)
        self.layout = Layout(config.sla)  # the slots of the ticket cells, for the exposition
        self.max_events = config.max_events_per_entity
        self._records: dict[str, dict[int, dict[str, Stored]]] = {t: {} for t in self.tables}
        self._indexes: dict[str, dict[int, Index[Any]]] = {t: {} for t in self.tables}
        self.assigned: set[int] = set()
        self.events: Counter[tuple[str, str]] = Counter()
        self.rejections: Counter[tuple[str, str]] = Counter()
        self.last_event_occurred_ms: int | None = None
        # Until the first event, the start time: a worker stuck from start-up looks stalled.
        self.last_processed_ms = started_ms

    def handle(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        now_ms: int,
    ) -> Outcome:
        """Validate and apply one message of (unprefixed) `topic` / `partition`."""
        self.last_processed_ms = now_ms
        event = decode(value or b"", now_ms, topic, key)
        if isinstance(event, Rejection):
            return self._rejected(topic, event)
        if key is None:
            return self._rejected(topic, NO_KEY)
        return self.apply(topic, partition, event)

    def apply(self, topic: str, partition: int, event: Event) -> Outcome:
        """Fold a decoded event of `topic` into its entity on `partition`."""
        kind = self.kind_of_topic[topic]
        table = kind.table
        key = event.entity_id
        tables = self._records[table]
        records = tables.get(partition)
        if records is None:
            records = tables[partition] = {}
        stored = records.get(key)
        record: EntityRecord | None
        if type(stored) is bytes:
            record = records[key] = kind.loads(stored)
        else:
            record = stored  # type: ignore[assignment]  # a record or None
        index = self._indexes[table].get(partition)
        old = None
        if record is None:
            # Checked once per entity: a record only ever lives on its key's partition.
            if self.partitions > 1 and partition_of(key, self.partitions) != partition:
                return self._rejected(topic, WRONG_PARTITION)
            record = records[key] = kind.new()
        elif index is not None:
            old = kind.contribution(record)  # the seen set is not part of it
        added = admit(record, fingerprint(event.event_id), event.occurred_at, self.max_events)
        if added is None:
            return self._rejected(topic, TOO_MANY_EVENTS)
        last = self.last_event_occurred_ms
        if last is None or event.occurred_at > last:
            self.last_event_occurred_ms = event.occurred_at
        if not added:
            # A seen id is still folded in: a redelivery changes nothing, and two different
            # events under one id give the same state in any order (the join of both).
            self.events[topic, "duplicate"] += 1
            moved = event.occurred_at > record.last_event_at
            if moved:
                record.last_event_at = event.occurred_at
            if kind.apply(record, event):
                if index is not None:
                    index.update(old, kind.contribution(record))
            elif not moved:
                return DUPLICATE
            return Outcome("duplicate", None, table, key)
        changed = kind.apply(record, event) or old is None
        if index is not None and changed:
            index.update(old, kind.contribution(record))
        self.events[topic, "accepted"] += 1
        return Outcome("accepted", None, table, key)

    def _rejected(self, topic: str, rejection: Rejection) -> Outcome:
        self.events[topic, "rejected"] += 1
        self.rejections[topic, rejection.reason] += 1
        return Outcome("rejected", rejection)

    def record_bytes(self, table: str, partition: int, key: str) -> bytes | None:
        """The changelog value of an entity now (None: it is gone, write a tombstone).

        The record is kept as that value from now on, until an event touches it again.
        """
        records = self._records[table].get(partition)
        if records is None:
            return None
        record = records.get(key)
        if record is None or type(record) is bytes:
            return record
        raw = records[key] = compact(self.kinds[table].dumps(record))
        return raw

    def restore(
        self, table: str, partition: int, records: Iterable[tuple[bytes, bytes | None]]
    ) -> None:
        """Load changelog records in bulk (a later one wins, None deletes)."""
        kind = self.kinds[table]
        store = self._records[table].setdefault(partition, {})
        index = self._indexes[table].get(partition)
        for raw_key, value in records:
            key = raw_key.decode()
            if index is not None:  # restoring into a served partition: keep its index exact
                old = store.get(key)
                index.update(
                    None if old is None else kind.contribution(decoded(kind, old)),
                    None if value is None else kind.contribution(kind.loads(value)),
                )
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value

    def records(self, table: str, partition: int) -> dict[str, bytes]:
        """Key -> changelog value of every record of a table partition, for local
        snapshots: a copy of the dict, cheap (one C call, no object per record) since
        records at rest are their values already."""
        records = self._records[table].get(partition, {})
        if set(map(type, records.values())) - {bytes}:  # some decoded: put them at rest
            dumps = self.kinds[table].dumps
            for key in [k for k, r in records.items() if type(r) is not bytes]:
                records[key] = compact(dumps(records[key]))
        return records.copy()  # type: ignore[return-value]  # all bytes now

    def record_steps(
        self, table: str, partition: int, keys_per_step: int = 20_000
    ) -> Generator[None, None, dict[str, bytes]]:
        """`records` in steps, the caller running other work (events) at each yield: first
        a copy of the dict (one C call), then its decoded records encoded a slice at a
        time. A record decoded (touched by an event) may be copied as it is a few events
        later than the rest; its changelog value then comes after the copy's start too."""
        copy = self._records[table].get(partition, {}).copy()
        dumps = self.kinds[table].dumps
        items = iter(copy.items())
        while True:
            yield
            records = list(islice(items, keys_per_step))
            if not records:
                return copy  # type: ignore[return-value]  # all bytes now
            for key, record in records:
                if type(record) is not bytes:
                    copy[key] = compact(dumps(record))

    def index_state(
        self, table: str, records: dict[str, bytes], now_ms: int
    ) -> list[object] | None:
        """The index of `records` (a copy from `records`) at `now_ms`, as `marshal`-able
        parts for a local snapshot (None: this kind rebuilds it). Reads no processor state,
        so it may run in a thread while the processor goes on."""
        kind = self.kinds[table]
        index = self._built(kind, records.values())
        return index.state(now_ms)

    def live_index_state(self, table: str, partition: int, now_ms: int) -> list[object] | None:
        """The served index of a partition as `index_state` gives it (its parts are copies):
        cheaper than a build, but only while nothing else changes the processor."""
        return self._indexes[table][partition].state(now_ms)

    def load(
        self,
        table: str,
        partition: int,
        records: dict[str, bytes],
        state: list[object] | None,
        state_key: str,
    ) -> None:
        """Take a local snapshot of a partition: its records (the dict itself) and, when it
        was saved under this policy, its index (then `assign` need not rebuild it)."""
        self._records[table][partition] = records  # type: ignore[assignment]  # values at rest
        if state is not None and state_key == self.state_key and partition not in self.assigned:
            index = self.kinds[table].new_index()
            index.load_state(state)
            self._indexes[table][partition] = index

    def move_to(self, other: Processor, partition: int) -> None:
        """Hand a partition's records and indexes (those built) to `other`, which then
        serves it once assigned: a warm standby taking over, without a copy."""
        for table in self.tables:
            other._records[table][partition] = self._records[table].pop(partition, {})
            index = self._indexes[table].pop(partition, None)
            if index is not None and partition not in other.assigned:
                other._indexes[table][partition] = index
        self.assigned.discard(partition)

    def assign(self, partitions: Iterable[int]) -> None:
        """Build the indexes of newly owned partitions from their records (unless a local
        snapshot gave them); serve them."""
        for partition in partitions:
            if partition in self.assigned:
                continue
            for table, kind in self.kinds.items():
                if partition not in self._indexes[table]:
                    records = self._records[table].get(partition, {}).values()
                    self._indexes[table][partition] = self._built(kind, records)
            self.assigned.add(partition)

    @staticmethod
    def _built(kind: Kind, records: Iterable[Stored]) -> Index[Any]:
        """A new index holding `records`."""
        index = kind.new_index()
        contribution = kind.contribution
        with paused_gc():
            found = (contribution(decoded(kind, r)) for r in records)
            index.build([c for c in found if c is not None])
        return index

    def revoke(self, partitions: Iterable[int]) -> None:
        """Drop the records and indexes of partitions this worker no longer owns."""
        for partition in partitions:
            for table in self.tables:
                self._records[table].pop(partition, None)
                self._indexes[table].pop(partition, None)
            self.assigned.discard(partition)

    def expire(self, now_ms: int) -> list[tuple[str, int, str]]:
        """Remove entities past retention; their (table, partition, key) need tombstones."""
        removed = []
        for table, kind in self.kinds.items():
            cutoff = now_ms - kind.retention_ms
            for partition, records in self._records[table].items():
                index = self._indexes[table].get(partition)
                last_event_at = kind.last_event_at
                for key in [
                    k
                    for k, r in records.items()
                    if (last_event_at(r) if type(r) is bytes else r.last_event_at) < cutoff  # type: ignore[union-attr]
                ]:
                    record = records.pop(key)
                    if index is not None:
                        index.update(kind.contribution(decoded(kind, record)), None)
                    removed.append((table, partition, key))
        return removed

    def snapshot(self, now_ms: int, per_agent: bool = True) -> Snapshot:
        """The merged snapshot of every owned partition at `now_ms` (queues not yet capped);
        the per-agent cells only when `per_agent` (`stream.kpi.centre.CentreSnapshot`)."""
        steps = self.snapshot_steps(now_ms, per_agent)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                snapshot: Snapshot = done.value
                return snapshot

    def snapshot_steps(
        self, now_ms: int, per_agent: bool = True
    ) -> Generator[None, None, Snapshot]:
        """`snapshot` one partition at a time: the caller may run other work at each yield
        (a scrape at the 100-queue cap must not hold up the batch loop)."""
        merged = Snapshot(now_ms, centre=CentreSnapshot(per_agent=per_agent))
        for partition in sorted(self.assigned):
            with paused_gc():  # the cells added live on: the collector would walk them again
                for indexes in self._indexes.values():
                    index = indexes.get(partition)
                    if index is not None:
                        index.add_to(merged)
            merged.partitions = merged.partitions | {partition}
            yield
        return merged


def decoded(kind: Kind, record: Stored) -> Any:
    """The record object of a stored record (decoded when at rest)."""
    return kind.loads(record) if type(record) is bytes else record


def compact(raw: bytes) -> bytes:
    """A copy of `raw` of its own size: orjson's output keeps its whole 4 KiB buffer."""
    return memoryview(raw).tobytes()
