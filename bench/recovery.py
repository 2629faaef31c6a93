"""Recovery time and memory on 1,000,000 tickets of state; /metrics scrape time.

    python -m bench.recovery [--quick] [--repeat N] [--no-scrape]

Recovery: a worker applies one `ticket.opened` per ticket and is stopped (SIGTERM: it writes
its local snapshots). Warm restart: started again with the same app id and data directory,
it loads the snapshots (records and KPI index) and reads only the changelog tail. Cold
restore: stopped again, its snapshot files deleted, started again: it reads the whole
changelog and rebuilds the index (what another worker does with a dead worker's
partitions). Each is the time from process start to /readyz 200, with the worker's CPU
time to that point. Memory: resident memory after the load minus before it, per ticket.
Scrape: a fresh worker holding 100,000 open tickets, /metrics requested 20 times, each more
than 250 ms after the last so that every scrape computes a fresh snapshot (the worker
reuses a snapshot for 250 ms). `--repeat N` restarts N times each way (warm, then cold) and
gives medians; `--no-scrape` measures recovery and memory only.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import orjson

from bench.common import (
    Figure,
    Message,
    Namespace,
    WorkerProcess,
    cpu_seconds,
    http_get,
    median,
    metric_sum,
    rss_bytes,
    running_worker,
    scaled,
    standalone,
)
from kpi_devtools.simulate.generator import DEFAULT_QUEUES

TICKETS = 1_000_000
SCRAPE_TICKETS = 100_000
SCRAPES = 20
SCRAPE_SPACING_S = 0.3
MANY_QUEUES = tuple(f"queue-{n:03d}" for n in range(100))  # the default max_queues
CHANNELS = ("phone", "email", "chat", "social", "web", "other")
PRIORITIES = ("low", "normal", "high", "urgent")
TARGET_RECOVERY_S = 10
TARGET_WARM_S = 2
TARGET_BYTES = 600
TARGET_SCRAPE_MS = {5: 50, 100: 250}


def opened_events(count: int, queues: tuple[str, ...], tag: str) -> Iterator[Message]:
    """One `ticket.opened` per new ticket, opened over the last 24 h, every label set used."""
    now_ms = time.time_ns() // 1_000_000
    for n in range(count):
        ticket_id = f"tk-{tag}-{n:07d}"
        value = orjson.dumps(
            {
                "event_id": f"{n:08x}-7c4e-4a8e-9b1d-{tag}{n:06x}",  # UUID-sized
                "type": "ticket.opened",
                "ticket_id": ticket_id,
                "occurred_at": now_ms - (n * 86_400_000 // count),
                "queue": queues[n % len(queues)],
                "channel": CHANNELS[n % len(CHANNELS)],
                "priority": PRIORITIES[n // len(CHANNELS) % len(PRIORITIES)],
            }
        )
        yield "cs.ticket.opened", ticket_id.encode(), value


@contextmanager
def loaded_worker(
    bootstrap: str, workdir: Path, tag: str, count: int, queues: tuple[str, ...]
) -> Iterator[tuple[WorkerProcess, int]]:
    """A ready worker that has applied `count` new tickets; (worker, RSS before the load)."""
    namespace = Namespace(bootstrap, tag)
    namespace.create_topics()
    with running_worker(namespace, workdir) as worker:
        worker.start()
        worker.wait_ready()
        time.sleep(2)  # let start-up settle before the empty-state RSS
        empty_rss = rss_bytes(worker.pid)
        namespace.produce(opened_events(count, queues, namespace.prefix[1:7]))
        worker.wait_processed(count, timeout_s=3600)
        yield worker, empty_rss


def indexing_seconds(log: Path) -> float | None:
    """How long the last restore + index rebuild took, from the worker's log."""
    text = log.read_text(errors="replace")
    found = re.findall(r"assigned partitions .* restored for \[\d.* in ([\d.]+) s", text)
    return float(found[-1]) if found else None


class Restart(NamedTuple):
    """One restart of a stopped worker, measured."""

    ready_s: float  # process start → /readyz 200
    cpu_s: float  # the worker's CPU time then
    indexing_s: float | None  # restore + index, from its log
    whole: bool  # every ticket back
    rss: int  # resident memory once ready
    stop_s: float  # the stop (SIGTERM) after it, with the snapshot write


def restart(worker: WorkerProcess, count: int) -> Restart:
    """Start the stopped worker, wait until it is ready, measure, stop it again."""
    started = worker.start()
    ready_s = worker.wait_ready(timeout_s=1800, interval_s=0.02) - started
    cpu_s = cpu_seconds(worker.pid)
    open_tickets = metric_sum(worker.metrics(), "cs_tickets_open")
    rss = rss_bytes(worker.pid)
    stopping = time.perf_counter()
    worker.stop()
    stop_s = time.perf_counter() - stopping
    indexing_s = indexing_seconds(worker.log_path)
    return Restart(ready_s, cpu_s, indexing_s, open_tickets == count, rss, stop_s)


def restarts(worker: WorkerProcess, count: int, repeat: int, cold: bool) -> list[Restart]:
    """`repeat` restarts (cold: the snapshot files deleted before each)."""
    runs = []
    for _ in range(repeat):
        if cold:
            for file in worker.data_dir.rglob("*.snapshot"):
                file.unlink()
        runs.append(restart(worker, count))
    return runs


def summary(runs: list[Restart]) -> str:
    """CPU and restore + index medians, and every run's time when there are several."""
    indexing = [r.indexing_s for r in runs if r.indexing_s is not None]
    note = f"CPU {median(r.cpu_s for r in runs):.2f} s; restore + index "
    note += f"{median(indexing):.2f} s of it" if indexing else "not logged"
    if len(runs) > 1:
        note += f"; median of {', '.join(f'{r.ready_s:.2f}' for r in runs)} s"
    return note


def recovery(bootstrap: str, workdir: Path, quick: bool, repeat: int = 1) -> list[Figure]:
    count = scaled(TICKETS, quick)
    with loaded_worker(bootstrap, workdir, "recovery", count, DEFAULT_QUEUES) as loaded:
        worker, empty_rss = loaded
        time.sleep(5)  # the last batches' changelog records go out; memory settles
        per_ticket = (rss_bytes(worker.pid) - empty_rss) / count
        stopping = time.perf_counter()
        worker.stop()  # SIGTERM: the worker writes its local snapshots
        stop_s = time.perf_counter() - stopping
        files = list(worker.data_dir.rglob("*.snapshot"))
        snapshot_bytes = sum(f.stat().st_size for f in files)
        warm = restarts(worker, count, repeat, cold=False)
        cold = restarts(worker, count, repeat, cold=True)
    warm_s, cold_s = median(r.ready_s for r in warm), median(r.ready_s for r in cold)
    warm_whole, cold_whole = all(r.whole for r in warm), all(r.whole for r in cold)
    per_ticket_after = (median(r.rss for r in warm) - empty_rss) / count
    return [
        Figure(
            f"cold restore, {count:,} tickets (start → /readyz 200, no local state)",
            cold_s,
            "s",
            f"<= {TARGET_RECOVERY_S}",
            cold_s <= TARGET_RECOVERY_S and cold_whole,
            f"{summary(cold)}; every ticket back: {cold_whole}",
        ),
        Figure(
            f"warm restart, {count:,} tickets (start → /readyz 200, local snapshots)",
            warm_s,
            "s",
            f"<= {TARGET_WARM_S}",
            warm_s <= TARGET_WARM_S and warm_whole,
            f"{summary(warm)}; every ticket back: {warm_whole}; "
            f"{cold_s / warm_s:.1f}x faster than cold",
        ),
        Figure(
            "stop (SIGTERM) with the snapshot write",
            stop_s,
            "s",
            note=f"{len(files)} files, {snapshot_bytes / count:.0f} bytes per ticket; "
            f"after a warm restart {median(r.stop_s for r in warm):.2f} s",
        ),
        Figure(
            "RSS per ticket after the load",
            per_ticket,
            "bytes",
            f"<= {TARGET_BYTES}",
            per_ticket <= TARGET_BYTES,
            f"empty worker {empty_rss / 2**20:.0f} MiB",
        ),
        Figure("RSS per ticket after the warm restart", per_ticket_after, "bytes"),
    ]


def scrape_time(bootstrap: str, workdir: Path, quick: bool, queues: tuple[str, ...]) -> Figure:
    count = scaled(SCRAPE_TICKETS, quick)
    with loaded_worker(bootstrap, workdir, f"scrape{len(queues)}", count, queues) as loaded:
        worker = loaded[0]
        times, size, lines = [], 0, 0
        for _ in range(SCRAPES):
            time.sleep(SCRAPE_SPACING_S)
            _, body, seconds = http_get(f"{worker.url}/metrics")
            times.append(1000 * seconds)
            size, lines = len(body), body.count(b"\n")
    scrape_ms = median(times)
    return Figure(
        f"/metrics scrape, {count:,} open tickets, {len(queues)} queues (median)",
        scrape_ms,
        "ms",
        f"<= {TARGET_SCRAPE_MS[len(queues)]}",
        scrape_ms <= TARGET_SCRAPE_MS[len(queues)],
        f"{lines:,} lines, {size / 2**20:.1f} MiB; min {min(times):.0f} max {max(times):.0f}",
    )


def run(
    bootstrap: str, workdir: Path, quick: bool, repeat: int = 1, no_scrape: bool = False
) -> list[Figure]:
    figures = recovery(bootstrap, workdir, quick, repeat)
    if not no_scrape:
        figures += [
            scrape_time(bootstrap, workdir, quick, DEFAULT_QUEUES),
            scrape_time(bootstrap, workdir, quick, MANY_QUEUES),
        ]
    return figures


if __name__ == "__main__":
    options = argparse.ArgumentParser(description="recovery, memory and scrape time")
    options.add_argument("--repeat", type=int, default=1, help="restarts each way (medians)")
    options.add_argument("--no-scrape", action="store_true", help="recovery and memory only")
    standalone("recovery, memory and scrape time", run, options)
