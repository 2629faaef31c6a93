"""TEMPORARY: today's `Processor` behind the entity-table interface of PROTOCOL.md.

The entity helper is rewriting `stream/processor.py` to that interface; this adapter
lets the runtime run meanwhile and is deleted when their version lands.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from stream.config import KpiConfig
from stream.events import Rejection
from stream.kpi import ticket as codec
from stream.kpi.contrib import Layout
from stream.kpi.snapshot import Snapshot
from stream.kpi.ticket import Ticket
from stream.kpi.types import INPUT_TOPICS
from stream.processor import Processor as TicketProcessor

TABLE = "tickets"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message, and which entity it changed."""

    kind: str
    rejection: Rejection | None
    table: str | None = None
    key: str | None = None


class Processor:
    """Ticket records per partition around today's processor."""

    tables: tuple[str, ...] = (TABLE,)
    topics: tuple[str, ...] = INPUT_TOPICS

    def __init__(
        self, config: KpiConfig, tz: ZoneInfo, partitions: int, started_ms: int = 0
    ) -> None:
        self._inner = TicketProcessor(config, tz, started_ms)
        self.partitions = partitions
        self.data: dict[int, dict[str, Ticket]] = {}

    @property
    def layout(self) -> Layout:
        return self._inner.layout

    @property
    def events(self) -> Counter[tuple[str, str]]:
        return self._inner.events

    @property
    def rejections(self) -> Counter[tuple[str, str]]:
        return self._inner.rejections

    @property
    def last_event_occurred_ms(self) -> int | None:
        return self._inner.last_event_occurred_ms

    @property
    def last_processed_ms(self) -> int:
        return self._inner.last_processed_ms

    def handle(
        self, topic: str, partition: int, key: bytes | None, value: bytes | None, now_ms: int
    ) -> Outcome:
        outcome = self._inner.handle(
            self.data.setdefault(partition, {}), topic, partition, key, value, now_ms
        )
        changed = outcome.ticket
        if changed is None:
            return Outcome(outcome.kind, outcome.rejection)
        return Outcome(outcome.kind, None, TABLE, changed.ticket_id)

    def record_bytes(self, table: str, partition: int, key: str) -> bytes | None:
        ticket = self.data.get(partition, {}).get(key)
        return None if ticket is None else codec.dumps(ticket)

    def restore(
        self, table: str, partition: int, records: Iterable[tuple[bytes, bytes | None]]
    ) -> None:
        tickets = self.data.setdefault(partition, {})
        for key, value in records:
            if value is None:
                tickets.pop(key.decode(), None)
            else:
                tickets[key.decode()] = codec.loads(value)

    def records(self, table: str, partition: int) -> Iterable[tuple[str, bytes]]:
        for key, ticket in self.data.get(partition, {}).items():
            yield key, codec.dumps(ticket)

    def assign(self, partitions: Iterable[int]) -> None:
        new = set(partitions)
        self._inner.assign(new, ((p, t) for p in new for t in self.data.setdefault(p, {}).values()))

    def revoke(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self._inner.revoke(gone)
        for partition in gone:
            self.data.pop(partition, None)

    def expire(self, now_ms: int) -> list[tuple[str, int, str]]:
        removed = []
        for partition, tickets in self.data.items():
            for key, ticket in self._inner.expired(list(tickets.items()), now_ms):
                self._inner.forget(partition, ticket)
                del tickets[key]
                removed.append((TABLE, partition, key))
        return removed

    def snapshot(self, now_ms: int) -> Snapshot:
        return self._inner.snapshot(now_ms)
