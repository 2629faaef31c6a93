"""Local snapshots of table partitions, so that a restarting worker reads only the tail.

One file per (table, partition) in KPI_DATA_DIR/<app id>/: a header line (JSON: the
changelog offset the records are complete up to, when it was written, the processor's
`state_key` and how many parts follow), then `marshal` parts, each a 4-byte big-endian
length and the bytes: the records (key -> changelog value) in chunks, then the partition's
KPI index in parts (`stream.kpi.state`), so a restart neither decodes the records nor
rebuilds the index. Parts are small so that writing them in a thread never holds the
event loop for long. Files are written to a temporary name and renamed, so a crash never
leaves half a snapshot. A snapshot is used only if it is younger than `MAX_AGE_S`:
compaction may drop tombstones after a day (`delete.retention.ms`), and a deleted entity
must not come back from an old file.
"""

from __future__ import annotations

import itertools
import marshal
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from stream.kpi.state import paused_gc

MAX_AGE_S: Final = 12 * 3600.0
LENGTH: Final = struct.Struct(">I")
RECORDS_PER_PART: Final = 10_000


@dataclass(frozen=True)
class Snapshot:
    """A partition's records as of changelog `offset`, and its index (None: not saved)."""

    offset: int
    records: dict[str, bytes]
    index: list[object] | None
    state_key: str


def path_of(directory: Path, table: str, partition: int) -> Path:
    return directory / f"{table}-{partition}.snapshot"


def write(
    directory: Path,
    table: str,
    partition: int,
    offset: int,
    records: dict[str, bytes],
    index: list[object] | None,
    state_key: str,
) -> int:
    """Write the snapshot file atomically; returns the number of records."""
    directory.mkdir(parents=True, exist_ok=True)
    target = path_of(directory, table, partition)
    temporary = target.with_suffix(".tmp")
    items = iter(records.items())
    chunks = [
        dict(itertools.islice(items, RECORDS_PER_PART))
        for _ in range(0, len(records), RECORDS_PER_PART)
    ]
    header = {
        "offset": offset,
        "written_at": time.time(),
        "state_key": state_key,
        "record_parts": len(chunks),
        "index_parts": None if index is None else len(index),
    }
    with temporary.open("wb") as out:
        out.write(orjson.dumps(header) + b"\n")
        for part in [*chunks, *(index or ())]:
            raw = marshal.dumps(part)
            out.write(LENGTH.pack(len(raw)))
            out.write(raw)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, target)
    return len(records)


def read(directory: Path, table: str, partition: int) -> Snapshot | None:
    """The snapshot of a partition, or None when there is none, it is too old or damaged."""
    path = path_of(directory, table, partition)
    try:
        data = path.read_bytes()
        end = data.index(b"\n")
        header = orjson.loads(data[:end])
        if time.time() - float(header["written_at"]) > MAX_AGE_S:
            return None
        parts = _parts(memoryview(data), end + 1)
        records: dict[str, bytes] = {}
        with paused_gc():
            for _ in range(int(header["record_parts"])):
                records.update(next(parts))
            count = header["index_parts"]
            index = None if count is None else [next(parts) for _ in range(int(count))]
        if list(parts):
            raise ValueError("more parts than the header says")
        return Snapshot(int(header["offset"]), records, index, str(header["state_key"]))
    except (OSError, ValueError, KeyError, TypeError, EOFError, StopIteration, struct.error):
        return None


def _parts(data: memoryview, position: int) -> Iterator[Any]:
    total = len(data)
    while position < total:
        (length,) = LENGTH.unpack_from(data, position)
        start = position + LENGTH.size
        position = start + length
        if position > total:
            raise ValueError("truncated snapshot")
        yield marshal.loads(data[start:position])
