"""Dead-letter records: a rejected message, unchanged, with why and where it came from.

Pure (no Kafka): the runtime calls `dead_letter(...)` for every rejected message and sends
the returned record to `cs.events.dlq`. A message too large for the dead-letter topic is
never lost without a trace: its key and value are cut to fit, and headers give the full
size and SHA-256 of each part that was cut (contract section 1).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from stream.events import Rejection

# Default size limit of one dead-letter record: below Kafka's default `max.message.bytes`
# (1,048,588) and the producer's default `max_request_size` (1,048,576).
DLQ_MAX_BYTES: Final = 1_000_000
# Room kept for the record batch header and the varints that frame key, value and headers.
RECORD_OVERHEAD: Final = 512

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record for the dead-letter topic."""

    key: bytes | None
    value: bytes | None
    headers: Headers

    @property
    def size(self) -> int:
        """Bytes of key, value and headers (without Kafka's framing)."""
        return (
            len(self.key or b"")
            + len(self.value or b"")
            + sum(len(name) + len(value) for name, value in self.headers)
        )


def dead_letter(
    rejection: Rejection,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    max_bytes: int = DLQ_MAX_BYTES,
) -> DeadLetter:
    """The dead-letter record of a rejected message of `topic`/`partition` at `offset`.

    Headers: `kpi-reason`, `kpi-detail`, `kpi-topic`, `kpi-partition`, `kpi-offset`. When
    the record would pass `max_bytes`, the value (and, if that is not enough, the key) is
    cut to fit, and `kpi-value-size` + `kpi-value-sha256` (`kpi-key-…` for the key) give
    the size and digest of the original.
    """
    headers: Headers = [
        ("kpi-reason", rejection.reason.encode()),
        ("kpi-detail", rejection.detail.encode()),
        ("kpi-topic", topic.encode()),
        ("kpi-partition", str(partition).encode()),
        ("kpi-offset", str(offset).encode()),
    ]
    record = DeadLetter(key, value, headers)
    if record.size + RECORD_OVERHEAD <= max_bytes:
        return record
    # Room for key and value once the headers of both parts' sizes and digests are in.
    cut = {part: _cut_headers(part, data or b"") for part, data in (("key", key), ("value", value))}
    room = (
        max_bytes
        - RECORD_OVERHEAD
        - DeadLetter(None, None, headers + cut["key"] + cut["value"]).size
    )
    if room < 0:
        raise ValueError(f"max_bytes={max_bytes} leaves no room for a dead-letter record")
    key_room = min(len(key or b""), room // 2)  # the key gets at most half
    new_key, value_room = key, room - key_room
    if key is not None and len(key) > key_room:
        new_key, headers = key[:key_room], headers + cut["key"]
    new_value = value
    if value is not None and len(value) > value_room:
        new_value, headers = value[:value_room], headers + cut["value"]
    return DeadLetter(new_key, new_value, headers)


def _cut_headers(part: str, data: bytes) -> Headers:
    """The full size and SHA-256 of a part that is cut."""
    return [
        (f"kpi-{part}-size", str(len(data)).encode()),
        (f"kpi-{part}-sha256", hashlib.sha256(data).hexdigest().encode()),
    ]
