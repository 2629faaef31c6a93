"""Local snapshots of table partitions, so that a restarting worker reads only the tail.

One file per (table, partition) in KPI_DATA_DIR/<app id>/: a header line (JSON: the
changelog offset the records are complete up to, and when it was written), then each
record as two 4-byte big-endian lengths and the key and value bytes. Files are written
to a temporary name and renamed, so a crash never leaves half a snapshot. A snapshot is
used only if it is younger than `MAX_AGE_S`: compaction may drop tombstones after a day
(`delete.retention.ms`), and a deleted entity must not come back from an old file.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

MAX_AGE_S: Final = 12 * 3600.0
LENGTHS: Final = struct.Struct(">II")


@dataclass(frozen=True)
class Snapshot:
    """A partition's records as of changelog `offset`."""

    offset: int
    records: list[tuple[bytes, bytes]]


def path_of(directory: Path, table: str, partition: int) -> Path:
    return directory / f"{table}-{partition}.snapshot"


def write(
    directory: Path, table: str, partition: int, offset: int, records: Iterable[tuple[str, bytes]]
) -> int:
    """Write the snapshot file atomically; returns the number of records."""
    directory.mkdir(parents=True, exist_ok=True)
    target = path_of(directory, table, partition)
    temporary = target.with_suffix(".tmp")
    pack = LENGTHS.pack
    parts = [orjson.dumps({"offset": offset, "written_at": time.time()}) + b"\n"]
    for key, value in records:
        raw_key = key.encode()
        parts += (pack(len(raw_key), len(value)), raw_key, value)
    with temporary.open("wb") as out:
        out.write(b"".join(parts))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, target)
    return (len(parts) - 1) // 3


def read(directory: Path, table: str, partition: int) -> Snapshot | None:
    """The snapshot of a partition, or None when there is none, it is too old or damaged."""
    path = path_of(directory, table, partition)
    try:
        data = path.read_bytes()
        end = data.index(b"\n")
        header = orjson.loads(data[:end])
        if time.time() - float(header["written_at"]) > MAX_AGE_S:
            return None
        return Snapshot(int(header["offset"]), list(_records(data, end + 1)))
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None


def _records(data: bytes, position: int) -> Iterator[tuple[bytes, bytes]]:
    unpack = LENGTHS.unpack_from
    size = LENGTHS.size
    total = len(data)
    while position < total:
        key_length, value_length = unpack(data, position)
        key_start = position + size
        value_start = key_start + key_length
        position = value_start + value_length
        if position > total:
            raise ValueError("truncated snapshot")
        yield data[key_start:value_start], data[value_start:position]
