"""Bulk reads of changelog partitions: everything from an offset up to the high watermark."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

Records = list[tuple[bytes, bytes | None]]
RESTORE_BATCH = 20_000  # records per getmany; each batch is applied, then the loop runs


async def read_changelogs(
    consumer: AIOKafkaConsumer,
    starts: Mapping[TopicPartition, int],
    apply: Callable[[TopicPartition, Records], None],
    timeout_s: float = 300.0,
) -> int:
    """Read each partition of `starts` from its offset to its end as of now; returns the count.

    `apply` gets the records of one partition in offset order, a batch at a time.
    `consumer` is a group-less consumer used only for this; it is left unassigned.
    """
    if not starts:
        return 0
    partitions = list(starts)
    consumer.assign(partitions)
    ends = await consumer.end_offsets(partitions)
    pending = set()
    for tp, offset in starts.items():
        if offset < ends[tp]:
            consumer.seek(tp, offset)
            pending.add(tp)
    count = 0
    deadline = time.monotonic() + timeout_s
    try:
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"changelog restore did not finish in {timeout_s:.0f} s")
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=RESTORE_BATCH)
            for tp, records in batch.items():
                apply(tp, [(r.key or b"", r.value) for r in records])
                count += len(records)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        consumer.assign([])
    return count
