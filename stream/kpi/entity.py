"""What every entity kind (tickets; contacts and agents next) gives the processor.

An entity kind is a pure module: its table name, the input topics it consumes, a record
class, an order-independent and idempotent `apply`, its contribution to a per-partition
index, and a codec. The processor (`stream/processor.py`) does everything generic around
it: the duplicate check by event-id fingerprint, the `max_events_per_entity` bound, the
partition check, and the index update (old contribution out, new one in).

Records are mutable and updated in place, so the cost of an event does not grow with the
entity: the seen-id set is a small packed `bytes` (8-byte fingerprints, kept sorted) that
turns into a `set` once it is large, and is never copied per event after that.

To add a kind: subclass `EntityRecord` (slotted dataclass, fields with defaults), write
`apply(record, event) -> bool` (True when a field other than the seen set changed), a
contribution and an index, and register an `EntityKind` in `stream.processor.KINDS`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from hashlib import blake2b
from typing import Any, Final, Protocol, TypeVar

from stream.kpi.snapshot import Snapshot

FINGERPRINT_BYTES: Final = 8
# Up to this many fingerprints stay packed in one immutable bytes object (an add copies at
# most 256 bytes); beyond, a set takes them: constant cost per event however busy.
PACKED_SEEN_MAX: Final = 32

Seen = bytes | set[bytes]


@dataclass(slots=True, eq=False)
class EntityRecord:
    """The generic part of every record: event ids seen, and the latest event time.

    Subclasses are slotted dataclasses with `eq=False`: equality is this one, where the
    seen ids compare as a set (their packed order is arrival order).
    """

    seen: Seen = b""
    last_event_at: int = 0

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return pack_seen(self.seen) == pack_seen(other.seen) and all(
            getattr(self, f.name) == getattr(other, f.name) for f in fields(self)[1:]
        )

    __hash__ = None  # type: ignore[assignment]  # mutable


def fingerprint(event_id: str) -> bytes:
    """A stable 8-byte digest of an event id (process-independent, unlike hash())."""
    return blake2b(event_id.encode(), digest_size=FINGERPRINT_BYTES).digest()


def seen_count(seen: Seen) -> int:
    """How many distinct event ids a seen set holds."""
    return len(seen) // FINGERPRINT_BYTES if isinstance(seen, bytes) else len(seen)


def admit(record: EntityRecord, mark: bytes, occurred_at: int, max_events: int) -> bool | None:
    """Add the fingerprint `mark` to the seen set and move `last_event_at` (the generic part
    of a fold): True when added, False when it was seen already (a duplicate), None when the
    set holds `max_events` ids without it. Only True changes the record."""
    seen = record.seen
    if isinstance(seen, set):
        if mark in seen:
            return False
        if len(seen) >= max_events:
            return None
        seen.add(mark)
    else:
        grown = with_mark(seen, mark)
        if grown is None:
            return False
        if seen_count(seen) >= max_events:
            return None
        small = len(grown) <= PACKED_SEEN_MAX * FINGERPRINT_BYTES
        record.seen = grown if small else set(split_seen(grown))
    if occurred_at > record.last_event_at:
        record.last_event_at = occurred_at
    return True


def with_mark(marks: bytes, mark: bytes) -> bytes | None:
    """`marks` (sorted fingerprints) with `mark` added, or None when it is already in.

    Sorted, so the same set of events gives the same bytes in any arrival order. A binary
    search over the packed bytes: no list of the marks per event, however busy the entity.
    """
    size = FINGERPRINT_BYTES
    low, high = 0, len(marks) // size
    while low < high:
        middle = (low + high) // 2
        if marks[middle * size : middle * size + size] < mark:
            low = middle + 1
        else:
            high = middle
    cut = low * size
    if marks[cut : cut + size] == mark:
        return None
    return marks[:cut] + mark + marks[cut:]


def pack_seen(seen: Seen) -> bytes:
    """The seen set as sorted, concatenated fingerprints: one state, one encoding (a packed
    set is kept sorted, so it is its own encoding)."""
    return seen if isinstance(seen, bytes) else b"".join(sorted(seen))


def unpack_seen(packed: bytes) -> Seen:
    """Inverse of `pack_seen`."""
    if len(packed) <= PACKED_SEEN_MAX * FINGERPRINT_BYTES:
        return packed
    return set(split_seen(packed))


def split_seen(packed: bytes) -> list[bytes]:
    """The fingerprints of a packed seen set."""
    return [packed[i : i + FINGERPRINT_BYTES] for i in range(0, len(packed), FINGERPRINT_BYTES)]


R = TypeVar("R", bound=EntityRecord)
C = TypeVar("C")


class Index(Protocol[C]):
    """The KPI index of one partition of one table."""

    def update(self, old: C | None, new: C | None) -> None:
        """Replace an entity's old contribution with its new one."""

    def build(self, contributions: list[C]) -> None:
        """Add many contributions at once into an empty index (after recovery)."""

    def add_to(self, snapshot: Snapshot) -> None:
        """Add this partition's part of the KPIs at `snapshot.now_ms` into `snapshot`."""

    def state(self, now_ms: int) -> list[object] | None:
        """The index at `now_ms` as `marshal`-able parts for a local snapshot, each small
        enough to write without holding up the event loop (None: rebuilt from records)."""

    def load_state(self, parts: list[object]) -> None:
        """Become the index `state` gave (on a new, empty index)."""


class EntityKind(Protocol[R, C]):
    """One entity kind under one KPI policy."""

    table: str
    topics: tuple[str, ...]
    retention_ms: int

    def new(self) -> R:
        """A record that has seen no event yet."""

    def apply(self, record: R, event: Any) -> bool:
        """Fold an unseen event into `record` in place; True when a KPI field changed."""

    def contribution(self, record: R) -> C | None:
        """What the record adds to its partition's index (None: nothing)."""

    def new_index(self) -> Index[C]:
        """An empty index for one partition."""

    def dumps(self, record: R) -> bytes:
        """The changelog value of a record."""

    def loads(self, raw: bytes) -> R:
        """Inverse of `dumps`."""

    def last_event_at(self, raw: bytes) -> int:
        """`loads(raw).last_event_at`, cheaper (expiry scans every record at rest)."""


def last_event_at_after_seen(raw: bytes) -> int:
    """`last_event_at` of a changelog value written as JSON `["<seen hex>",<last>,...`
    (tickets, contacts): the number between the first two commas, without a decode."""
    start = raw.index(b",") + 1
    return int(raw[start : raw.index(b",", start)])


_MURMUR_M: Final = 0x5BD1E995
_MURMUR_SEED: Final = 0x9747B28C
_MASK: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (the default partitioner's), a word at a time: ~2x aiokafka's."""
    length = len(data)
    h = (_MURMUR_SEED ^ length) & _MASK
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _MURMUR_M) & _MASK
        h = ((h * _MURMUR_M) ^ (((k ^ (k >> 24)) * _MURMUR_M) & _MASK)) & _MASK
    tail = data[words * 4 :]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _MURMUR_M) & _MASK
    h ^= h >> 13
    h = (h * _MURMUR_M) & _MASK
    return h ^ (h >> 15)


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a message key."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
