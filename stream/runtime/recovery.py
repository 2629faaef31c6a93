"""Bulk reads of changelog partitions (everything from an offset up to the high watermark),
and CPU-bound restore work in a forked child process."""

from __future__ import annotations

import asyncio
import gc
import marshal
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any

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


def other_cores() -> bool:
    """Whether this process may run on more than one core (work in a child then runs
    beside it, not instead of it)."""
    return len(os.sched_getaffinity(0)) > 1


async def in_child(compute: Callable[[], Any]) -> Any:
    """What `compute()` returns (anything `marshal` takes), computed in a forked child
    process: CPU-bound work on another core, on a copy-on-write view of this process's
    memory as it is now. EOFError if the child died without an answer."""
    fork = multiprocessing.get_context("fork")
    receiver, sender = fork.Pipe(duplex=False)
    child = fork.Process(target=_answer, args=(compute, sender), daemon=True)
    child.start()
    sender.close()
    try:
        raw = await asyncio.to_thread(receiver.recv_bytes)
    finally:
        receiver.close()
        await asyncio.to_thread(child.join)
    return marshal.loads(raw)


def _answer(compute: Callable[[], Any], sender: Any) -> None:
    """In the child: no cyclic collection (it would write to, and so copy, every tracked
    object of the parent), no signal handlers of the parent's event loop."""
    gc.disable()
    signal.set_wakeup_fd(-1)
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)
    sender.send_bytes(marshal.dumps(compute()))
    sender.close()
