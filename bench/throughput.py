"""Replay throughput: the worker against a bare aiokafka + orjson loop over the same events.

python -m bench.throughput [--quick] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import (
    PARTITIONS,
    Figure,
    Namespace,
    WorkerProcess,
    cpu_seconds,
    median,
    rss_bytes,
    running_worker,
    scaled,
    simulator_events,
    standalone,
)
from stream.kpi.types import INPUT_TOPICS

EVENTS = 1_000_000
BASELINE_RUNS = 3
TARGET_EVENTS_S = 50_000
TARGET_RATIO = 0.25
MIXED_TARGET_RATIO = 0.8  # issue 11: the mixed stream within 20 % of ticket-only
PROFILE_SECONDS = 20


async def baseline(bootstrap: str, prefix: str, count: int) -> float:
    """Events/s of a consumer that only decodes: start → `count` values parsed."""
    started = time.perf_counter()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(
            [TopicPartition(prefix + t, p) for t in INPUT_TOPICS for p in range(PARTITIONS)]
        )
        consumed = 0
        while consumed < count:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    with contextlib.suppress(orjson.JSONDecodeError):
                        orjson.loads(record.value or b"")
                consumed += len(records)
    finally:
        await consumer.stop()
    return count / (time.perf_counter() - started)


def profile_worker(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling every thread of the worker, running or idle, for PROFILE_SECONDS."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [py_spy, "record", "-p", str(pid), "-d", str(PROFILE_SECONDS), "-f", "raw"]
    command += ["--full-filenames", "--threads", "--idle"]
    return subprocess.Popen([*command, "-o", str(output)], stdout=subprocess.DEVNULL)


def replay(worker: WorkerProcess, count: int, profile: Path | None) -> dict[str, float]:
    """Start the worker on topics that already hold `count` events; time it until its group
    committed the last one (so every changelog write is acknowledged too)."""
    started = worker.start()
    first_at, first_count = worker.wait_committed(1, timeout_s=300)
    cpu_at_first = cpu_seconds(worker.pid)
    profiler = profile_worker(worker.pid, profile) if profile else None
    done_at, _ = worker.wait_committed(count, timeout_s=1800)
    cpu = cpu_seconds(worker.pid) - cpu_at_first
    rss = rss_bytes(worker.pid)
    if profiler is not None:
        profiler.wait(PROFILE_SECONDS + 60)
    return {
        "total": count / (done_at - started),
        "steady": (count - first_count) / (done_at - first_at),
        "startup_s": first_at - started,
        "rss_mb": rss / 2**20,
        "cpu": cpu / (done_at - first_at),
    }


def run(bootstrap: str, workdir: Path, quick: bool, profile: Path | None = None) -> list[Figure]:
    count = scaled(EVENTS, quick)
    events = simulator_events(count)
    tickets = len({key for _, key, _ in events})
    namespace = Namespace(bootstrap, "throughput")
    namespace.create_topics()
    started = time.perf_counter()
    namespace.produce(events)
    produce_rate = count / (time.perf_counter() - started)
    del events
    print(f"produced {count:,} simulator events of {tickets:,} tickets", flush=True)

    runs = [asyncio.run(baseline(bootstrap, namespace.prefix, count)) for _ in range(BASELINE_RUNS)]
    print("baseline events/s: " + ", ".join(f"{r:,.0f}" for r in runs), flush=True)
    with running_worker(namespace, workdir) as worker:
        measured = replay(worker, count, profile)
    mixed = replay_mixed(bootstrap, workdir, count)
    base = median(runs)
    total, steady = measured["total"], measured["steady"]
    return [
        Figure(f"producer (acks=1) {count:,} events", produce_rate, "events/s"),
        Figure(
            "baseline aiokafka+orjson (median)",
            base,
            "events/s",
            note="runs " + " ".join(f"{r:,.0f}" for r in runs),
        ),
        Figure(
            "worker replay (process start → all committed)",
            total,
            "events/s",
            f">= {TARGET_EVENTS_S:,}",
            total >= TARGET_EVENTS_S,
        ),
        Figure(
            "worker/baseline ratio",
            total / base,
            "x",
            f">= {TARGET_RATIO}",
            total / base >= TARGET_RATIO,
        ),
        Figure("worker replay, first commit → all committed", steady, "events/s"),
        Figure("worker/baseline ratio, first commit → all", steady / base, "x"),
        Figure("worker start-up (process start → first commit)", measured["startup_s"], "s"),
        Figure(
            "worker CPU use, first commit → all committed", 100 * measured["cpu"], "% of a core"
        ),
        Figure(f"worker RSS after replay ({tickets:,} tickets)", measured["rss_mb"], "MiB"),
        Figure(
            f"mixed stream replay ({mixed['share']:.0%} contact and agent events)",
            mixed["total"],
            "events/s",
        ),
        Figure(
            "mixed / ticket-only throughput",
            mixed["total"] / total,
            "x",
            f">= {MIXED_TARGET_RATIO}",
            mixed["total"] / total >= MIXED_TARGET_RATIO,
        ),
    ]


def replay_mixed(bootstrap: str, workdir: Path, count: int) -> dict[str, float]:
    """The same replay on a mixed stream: tickets, contacts and agent statuses."""
    events = simulator_events(count, mixed=True)
    floor = sum(1 for topic, _, _ in events if topic.startswith(("cs.contact.", "cs.agent.")))
    namespace = Namespace(bootstrap, "throughput-mixed")
    namespace.create_topics()
    namespace.produce(events)
    del events
    print(f"produced {count:,} mixed events ({floor:,} contact and agent)", flush=True)
    with running_worker(namespace, workdir) as worker:
        return {**replay(worker, count, None), "share": floor / count}


def main() -> None:
    parser = argparse.ArgumentParser(description="Replay throughput of the worker")
    parser.add_argument(
        "--profile", type=Path, help=f"py-spy the worker for {PROFILE_SECONDS} s into FILE (raw)"
    )
    standalone("replay throughput", run, parser)


if __name__ == "__main__":
    main()
