"""The worker's state machine, free of Faust: events in, ticket records and KPI indexes out.

The Faust agent hands each raw message to `Processor.handle` together with the ticket
table (any mutable mapping). The processor validates, merges, updates the index of the
message's partition and counts outcomes; the agent only does the I/O around it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from stream.config import KpiConfig
from stream.events import Rejection, decode
from stream.kpi.contrib import Contribution, Layout, contribution
from stream.kpi.index import KpiIndex
from stream.kpi.snapshot import Snapshot
from stream.kpi.ticket import Ticket, merge


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message: accepted, duplicate, or rejected (with a reason).

    `ticket` is the new record when it changed and must be written back.
    """

    kind: str
    rejection: Rejection | None = None
    ticket: Ticket | None = None


UNCHANGED = {True: Outcome("duplicate"), False: Outcome("accepted")}


class Processor:
    """Per-partition KPI indexes of the partitions this worker owns, and pipeline counters."""

    def __init__(self, config: KpiConfig, tz: ZoneInfo, started_ms: int = 0) -> None:
        self.config = config
        self.tz = tz
        self.layout = Layout(config.sla)
        self.indexes: dict[int, KpiIndex] = {}
        self.events: Counter[tuple[str, str]] = Counter()
        self.rejections: Counter[tuple[str, str]] = Counter()
        self.last_event_occurred_ms: int | None = None
        # Until the first event, the start time: a worker stuck from start-up looks stalled.
        self.last_processed_ms = started_ms

    def handle(
        self,
        tickets: MutableMapping[str, Ticket],
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        now_ms: int,
    ) -> Outcome:
        """Validate and apply one message of `topic`/`partition`."""
        self.last_processed_ms = now_ms
        event = decode(value or b"", now_ms, topic=topic, key=key)
        if isinstance(event, Rejection):
            self.events[topic, "rejected"] += 1
            self.rejections[topic, event.reason] += 1
            return Outcome("rejected", event)
        old = tickets.get(event.entity_id)
        new, duplicate = merge(old, event)
        kind = "duplicate" if duplicate else "accepted"
        self.events[topic, kind] += 1
        if self.last_event_occurred_ms is None or event.occurred_at > self.last_event_occurred_ms:
            self.last_event_occurred_ms = event.occurred_at
        if new is old:
            return UNCHANGED[duplicate]
        tickets[event.entity_id] = new
        index = self.indexes.get(partition)
        if index is not None:
            index.update(self.contribution(old), self.contribution(new))
        return Outcome(kind, ticket=new)

    def contribution(self, ticket: Ticket | None) -> Contribution | None:
        """A ticket's contribution under this worker's policy (None for no ticket)."""
        return None if ticket is None else contribution(ticket, self.config.sla, self.layout)

    def assign(self, partitions: Iterable[int], tickets: Iterable[tuple[int, Ticket]]) -> None:
        """Build the indexes of newly owned `partitions` from their ticket records."""
        fresh = {p: KpiIndex(self.config.sla, self.layout, self.tz) for p in partitions}
        for partition, ticket in tickets:
            index = fresh.get(partition)
            if index is not None:
                index.update(None, contribution(ticket, self.config.sla, self.layout))
        self.indexes.update(fresh)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget the indexes of partitions this worker no longer owns."""
        for partition in partitions:
            self.indexes.pop(partition, None)

    def expired(
        self, tickets: Iterable[tuple[str, Ticket]], now_ms: int
    ) -> list[tuple[str, Ticket]]:
        """The (id, record) pairs of tickets past their retention at `now_ms`."""
        retention = self.config.retention_ms
        return [(tid, ticket) for tid, ticket in tickets if ticket.is_expired(now_ms, retention)]

    def forget(self, partition: int, ticket: Ticket) -> None:
        """Take an expired ticket out of its partition's index."""
        index = self.indexes.get(partition)
        if index is not None:
            index.update(self.contribution(ticket), None)

    def snapshot(self, now_ms: int) -> Snapshot:
        """The merged snapshot of every owned partition at `now_ms` (queues not yet capped)."""
        merged = Snapshot(now_ms)
        for partition, index in sorted(self.indexes.items()):
            part = index.snapshot(now_ms)
            part.partitions = frozenset({partition})
            merged.merge(part)
        return merged
