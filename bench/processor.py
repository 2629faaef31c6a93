"""The processor alone, in this process: cost per event, bulk restore, memory, scrape steps.

    python -m bench.processor [--quick] [--handle-only]

No broker: it isolates what `stream/processor.py` costs from the Kafka I/O around it.
- handle: the simulator's events through `Processor.handle`, with the changelog value of
  each changed entity taken once per batch of 1,000 (as the runtime does), against
  `orjson.loads` of the same values in the same run (CPU time, median of 3).
- restore: 1,000,000 `ticket.opened` tickets (UUID ids, 5 queues) dumped with
  `Processor.records`, then `restore` + `assign` (index rebuild) into a fresh processor;
  warm: the same saved as local snapshot files (records + index, as the runtime saves
  them), then read + `load` + `assign`.
- memory: resident memory of this process before and after handling those tickets.
- scrape: 100,000 open tickets in 5 and in 100 queues; the longest single step of
  `snapshot_steps` and `exposition_chunks` (what one scrape holds the event loop for)
  and the whole snapshot + text.
Times are CPU time of this process (the machine is shared; wall time is in the notes).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from bench.common import Figure, machine_facts, print_figures, scaled, simulator_events
from stream.kpi.entity import partition_of
from stream.kpi.settings import KpiConfig
from stream.kpi.snapshot import Snapshot
from stream.metrics import exposition_chunks
from stream.processor import Processor
from stream.runtime import snapshots

PARTITIONS = 8
BATCH = 1_000  # messages per batch: the changelog value of each changed entity once per batch
EVENTS = 200_000
TICKETS = 1_000_000
SCRAPE_TICKETS = 100_000
REPEATS = 3
CHANNELS = ("phone", "email", "chat", "social", "web", "other")
PRIORITIES = ("low", "normal", "high", "urgent")
TARGET_US = 12
TARGET_RESTORE_S = 10
TARGET_WARM_S = 2
TARGET_BYTES = 600
TARGET_STEP_MS = 20
TARGET_SCRAPE_MS = {5: 50, 100: 250}
UTC = ZoneInfo("UTC")


def rss() -> int:
    """Resident memory of this process, bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def cpu_us_per(count: int, work: Callable[[], None]) -> float:
    """Median CPU microseconds per item of `work` over REPEATS runs."""
    runs = []
    for _ in range(REPEATS):
        started = time.process_time()
        work()
        runs.append((time.process_time() - started) / count * 1e6)
    return statistics.median(runs)


def fresh(now_ms: int) -> Processor:
    """A processor serving every partition, its windows already placed at `now_ms`."""
    processor = Processor(KpiConfig(), UTC, PARTITIONS)
    processor.assign(range(PARTITIONS))
    processor.snapshot(now_ms)
    return processor


def handle_cost(quick: bool) -> list[Figure]:
    count = scaled(EVENTS, quick)
    messages = [
        (topic, partition_of(key.decode(), PARTITIONS), key, value)
        for topic, key, value in simulator_events(count)
    ]
    now_ms = time.time_ns() // 1_000_000

    def decode_only() -> None:
        for _, _, _, value in messages:
            with contextlib.suppress(orjson.JSONDecodeError):
                orjson.loads(value)

    def handle_only() -> None:
        handle = fresh(now_ms).handle
        for topic, partition, key, value in messages:
            handle(topic, partition, key, value, now_ms)

    def handle_all() -> None:
        apply_batches(fresh(now_ms), messages, now_ms)

    base, handled = cpu_us_per(count, decode_only), cpu_us_per(count, handle_all)
    alone = cpu_us_per(count, handle_only)
    return [
        Figure(f"orjson.loads of {count:,} simulator values (CPU)", base, "µs/event"),
        Figure(
            "Processor.handle alone (records never put back at rest)",
            alone,
            "µs/event",
            note=f"{alone / base:.0f}x orjson.loads",
        ),
        Figure(
            "Processor.handle of the same messages + changelog values (CPU)",
            handled,
            "µs/event",
            f"<= {TARGET_US}",
            handled <= TARGET_US,
            f"{1e6 / handled:,.0f} events/s on one core; {handled / base:.0f}x orjson.loads",
        ),
    ]


def apply_batches(
    processor: Processor, messages: Iterable[tuple[str, int, bytes, bytes]], now_ms: int
) -> None:
    """What the runtime does: handle a batch, then take the changelog value of each entity
    it changed (which also puts the record back at rest)."""
    handle, record_bytes = processor.handle, processor.record_bytes
    stream = iter(messages)
    while batch := list(itertools.islice(stream, BATCH)):
        changed = set()
        for topic, partition, key, value in batch:
            outcome = handle(topic, partition, key, value, now_ms)
            if outcome.key is not None:
                changed.add((outcome.table, partition, outcome.key))
        for table, partition, entity in changed:
            record_bytes(table, partition, entity)  # type: ignore[arg-type]


def opened_messages(count: int, queues: int, now_ms: int) -> Iterator[tuple[int, bytes, bytes]]:
    """(partition, key, value) of one `ticket.opened` per new ticket, over the last 24 h."""
    rng = random.Random(count)
    for n in range(count):
        ticket_id = str(uuid.UUID(int=rng.getrandbits(128)))
        value = orjson.dumps(
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "type": "ticket.opened",
                "ticket_id": ticket_id,
                "occurred_at": now_ms - rng.randrange(86_400_000),
                "queue": f"queue-{n % queues:03d}",
                "channel": CHANNELS[n % len(CHANNELS)],
                "priority": PRIORITIES[n // len(CHANNELS) % len(PRIORITIES)],
            }
        )
        yield partition_of(ticket_id, PARTITIONS), ticket_id.encode(), value


def loaded(count: int, queues: int, now_ms: int) -> Processor:
    processor = fresh(now_ms)
    messages = (
        ("cs.ticket.opened", partition, key, value)
        for partition, key, value in opened_messages(count, queues, now_ms)
    )
    apply_batches(processor, messages, now_ms)
    return processor


def restore_and_memory(quick: bool) -> list[Figure]:
    count = scaled(TICKETS, quick)
    now_ms = time.time_ns() // 1_000_000
    gc.collect()
    before = rss()
    processor = loaded(count, 5, now_ms)
    gc.collect()
    per_ticket = (rss() - before) / count
    changelog = {
        p: [(k.encode(), v) for k, v in processor.records("tickets", p).items()]
        for p in range(PARTITIONS)
    }
    size = sum(len(k) + len(v) for records in changelog.values() for k, v in records)
    expected = processor.snapshot(now_ms)
    directory = Path(tempfile.mkdtemp(prefix="kpi-bench-"))
    pause_ms, save_s = save_snapshots(processor, directory, now_ms)
    del processor
    gc.collect()
    wall, started = time.perf_counter(), time.process_time()
    restored = Processor(KpiConfig(), UTC, PARTITIONS)
    for partition, records in changelog.items():
        restored.restore("tickets", partition, records)
    loaded_at = time.process_time()
    restored.assign(range(PARTITIONS))
    done = time.process_time()
    wall = time.perf_counter() - wall
    same = restored.snapshot(now_ms) == expected
    total = done - started
    del restored
    gc.collect()
    wall_warm, warm_started = time.perf_counter(), time.process_time()
    warm = Processor(KpiConfig(), UTC, PARTITIONS)
    for partition in range(PARTITIONS):
        snapshot = snapshots.read(directory, "tickets", partition)
        assert snapshot is not None, "the snapshot just written"
        warm.load("tickets", partition, snapshot.records, snapshot.index, snapshot.state_key)
    warm.assign(range(PARTITIONS))
    warm_s = time.process_time() - warm_started
    wall_warm = time.perf_counter() - wall_warm
    warm_same = warm.snapshot(now_ms) == expected
    shutil.rmtree(directory)
    return [
        Figure(
            f"restore + index rebuild, {count:,} tickets (CPU)",
            total,
            "s",
            f"<= {TARGET_RESTORE_S}",
            total <= TARGET_RESTORE_S and same,
            f"restore {loaded_at - started:.2f} s, rebuild {done - loaded_at:.2f} s; "
            f"wall {wall:.2f} s; snapshot equal to the one before: {same}",
        ),
        Figure(
            f"warm start from local snapshots, {count:,} tickets (CPU)",
            warm_s,
            "s",
            f"<= {TARGET_WARM_S}",
            warm_s <= TARGET_WARM_S and warm_same,
            f"read + load + assign; wall {wall_warm:.2f} s; {total / warm_s:.1f}x faster than "
            f"the cold restore; snapshot equal to the one before: {warm_same}",
        ),
        Figure(
            "saving them: longest hold of the event loop (a step of the records copy, CPU)",
            pause_ms,
            "ms",
            f"<= {TARGET_STEP_MS}",
            pause_ms <= TARGET_STEP_MS,
            f"then index build + write in a thread: {save_s:.2f} s CPU in all",
        ),
        Figure(
            f"RSS per ticket, {count:,} open tickets",
            per_ticket,
            "bytes",
            f"<= {TARGET_BYTES}",
            per_ticket <= TARGET_BYTES,
            f"changelog {size / count:.0f} bytes per ticket (key + value)",
        ),
    ]


def save_snapshots(processor: Processor, directory: Path, now_ms: int) -> tuple[float, float]:
    """Write every partition's local snapshot as the runtime does; (longest step of the
    records copy in CPU ms, the whole save in CPU s)."""
    longest = 0.0
    started = time.process_time()
    for partition in range(PARTITIONS):
        # Under the runtime's lock, step by step, batches running between the steps.
        step_ms, _ = timed_steps(processor.record_steps("tickets", partition))
        longest = max(longest, step_ms)
        records = processor.records("tickets", partition)  # the same, at once
        index = processor.index_state("tickets", records, now_ms)  # in a thread
        snapshots.write(directory, "tickets", partition, 0, records, index, processor.state_key)
    return longest, time.process_time() - started


def timed_steps(steps: Iterator[object]) -> tuple[float, float]:
    """(longest step, total) in CPU ms of running an iterator to its end."""
    longest = total = 0.0
    while True:
        started = time.process_time()
        try:
            next(steps)
        except StopIteration:
            return longest, total + (time.process_time() - started) * 1000
        step = (time.process_time() - started) * 1000
        longest, total = max(longest, step), total + step


def scrape(quick: bool, queues: int) -> list[Figure]:
    count = scaled(SCRAPE_TICKETS, quick)
    now_ms = time.time_ns() // 1_000_000
    processor = loaded(count, queues, now_ms)
    steps, totals = [], []
    for n in range(1, 8):
        snapshot_steps = processor.snapshot_steps(now_ms + n * 300)
        snap_step, snap_total = timed_steps(snapshot_steps)
        snapshot: Snapshot = processor.snapshot(now_ms + n * 300)
        capped = snapshot.cap_queues(100)
        text_step, text_total = timed_steps(exposition_chunks(capped, capped, processor.layout))
        steps.append(max(snap_step, text_step))
        totals.append(snap_total + text_total)
    step, whole = statistics.median(steps), statistics.median(totals)
    return [
        Figure(
            f"snapshot + /metrics text, {count:,} open tickets, {queues} queues (CPU, median)",
            whole,
            "ms",
            f"<= {TARGET_SCRAPE_MS[queues]}",
            whole <= TARGET_SCRAPE_MS[queues],
        ),
        Figure(
            f"longest step of it, {queues} queues",
            step,
            "ms",
            f"<= {TARGET_STEP_MS}",
            step <= TARGET_STEP_MS,
            "the event loop runs between steps",
        ),
    ]


def run(_bootstrap: str | None, _workdir: object, quick: bool) -> list[Figure]:
    return [
        *handle_cost(quick),
        *restore_and_memory(quick),
        *scrape(quick, 5),
        *scrape(quick, 100),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the events (smoke run)")
    parser.add_argument(
        "--handle-only", action="store_true", help="only the cost per event (~1 minute)"
    )
    args = parser.parse_args()
    print(machine_facts(), flush=True)
    figures = handle_cost(args.quick) if args.handle_only else run(None, None, args.quick)
    print_figures("the processor alone", figures)
    print(machine_facts())


if __name__ == "__main__":
    main()
