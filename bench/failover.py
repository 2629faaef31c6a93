"""How long a dead worker's partitions take to come back on another worker, without and
with warm standbys, in one run.

    python -m bench.failover [--quick]

Two workers of one group (static membership, 8 partitions: 4 each) are started, then
1,000,000 tickets (one `ticket.opened` each) produced. When both have applied everything (and, with
standbys, the survivor has its standbys of the other's partitions indexed), one is
SIGKILLed. The survivor's `/readyz` is polled every 20 ms: detection is kill -> the first
503 (the group coordinator expired the dead member after the session timeout and the
survivor began the rebalance); takeover is that 503 -> 200 serving all 8 partitions.
Meanwhile `/healthz` is requested every 50 ms: its slowest answer is how long the
survivor's event loop was held (which also holds its heartbeats). The runs are standbys
off (`KPI_STANDBY_REPLICAS=0`: the partitions are a cold restore of the changelog and an
index rebuild) and on (1: taken over from the standby, only the changelog tail read),
both at the default session timeout, and standbys on at a 10 s session timeout.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.common import (
    PARTITIONS,
    Figure,
    Namespace,
    WorkerProcess,
    cpu_seconds,
    http_get,
    metric_sum,
    rss_bytes,
    scaled,
    standalone,
)
from bench.recovery import opened_events
from kpi_devtools.simulate.generator import DEFAULT_QUEUES
from stream.config import Settings

TICKETS = 1_000_000
TARGET_S = 10
POLL_S = 0.02
HEALTH_POLL_S = 0.05
ASSIGNED = re.compile(r"assigned partitions .* in ([\d.]+) s")
STANDBY_READY = re.compile(r"standby partition (\d+) ready")


@dataclass
class Failover:
    """One kill and takeover, in seconds from the kill; memory and CPU before it."""

    replicas: int
    session_timeout_s: int
    detection_s: float
    takeover_s: float
    on_assigned_s: float | None
    longest_hold_s: float
    open_tickets: float
    survivor_rss: int
    survivor_cpu_s: float

    @property
    def total_s(self) -> float:
        return self.detection_s + self.takeover_s


class HealthProbe(threading.Thread):
    """Requests `url` every 50 ms until stopped; the slowest answer in seconds."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.slowest = url, 0.0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            with contextlib.suppress(OSError):
                self.slowest = max(self.slowest, http_get(self.url, timeout_s=60)[2])
            time.sleep(HEALTH_POLL_S)


def ready_partitions(worker: WorkerProcess) -> tuple[int, set[int]]:
    """(status, partitions) of the worker's /readyz."""
    status, body, _ = http_get(f"{worker.url}/readyz")
    return status, set(orjson.loads(body).get("partitions", [])) if status == 200 else set()


def failover(bootstrap: str, workdir: Path, count: int, replicas: int, session_s: int) -> Failover:
    namespace = Namespace(bootstrap, f"fo{replicas}s{session_s}")
    namespace.create_topics()
    env = {"KPI_STANDBY_REPLICAS": str(replicas), "KPI_KAFKA_SESSION_TIMEOUT_S": str(session_s)}
    survivor, victim = (
        WorkerProcess(namespace, workdir / name, {**env, "KPI_GROUP_INSTANCE_ID": name})
        for name in ("a", "b")
    )
    for worker in (survivor, victim):
        worker.data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        survivor.start()
        victim.start()
        survivor.wait_ready(timeout_s=600)
        victim.wait_ready(timeout_s=600)
        deadline = time.monotonic() + 120
        while len(ready_partitions(survivor)[1]) + len(ready_partitions(victim)[1]) != PARTITIONS:
            assert time.monotonic() < deadline, "the partitions were not split"
            time.sleep(0.2)
        theirs = ready_partitions(victim)[1]
        namespace.produce(opened_events(count, DEFAULT_QUEUES, namespace.prefix[1:7]))
        survivor.wait_committed(count, timeout_s=3600)
        if replicas:
            deadline = time.monotonic() + 600
            while {int(p) for p in STANDBY_READY.findall(survivor.log_path.read_text())} < theirs:
                assert time.monotonic() < deadline, survivor.log_tail()
                time.sleep(0.5)
        time.sleep(3)  # the last changelog records reach the standby
        rss, cpu = rss_bytes(survivor.pid), cpu_seconds(survivor.pid)
        probe = HealthProbe(f"{survivor.url}/healthz")
        probe.start()
        killed = time.perf_counter()
        victim.child.kill()
        detected = None
        while True:
            status, partitions = ready_partitions(survivor)
            now = time.perf_counter()
            if status != 200 and detected is None:
                detected = now
            if detected is not None and partitions == set(range(PARTITIONS)):
                break
            assert now - killed < 900, survivor.log_tail()
            time.sleep(POLL_S)
        probe.halt.set()
        probe.join()
        found = ASSIGNED.findall(survivor.log_path.read_text())
        return Failover(
            replicas,
            session_s,
            detected - killed,
            now - detected,
            float(found[-1]) if found else None,
            probe.slowest,
            metric_sum(survivor.metrics(), "cs_tickets_open"),
            rss,
            cpu,
        )
    finally:
        victim.stop()
        survivor.stop()


def run(bootstrap: str, workdir: Path, quick: bool) -> list[Figure]:
    count = scaled(TICKETS, quick)
    default_s = Settings().session_timeout_s
    cold, warm, short = (
        failover(bootstrap, workdir, count, replicas, session_s)
        for replicas, session_s in ((0, default_s), (1, default_s), (1, 10))
    )
    figures = []
    for run_ in (cold, warm, short):
        mode = (
            f"standbys {'on' if run_.replicas else 'off'}, session timeout "
            f"{run_.session_timeout_s} s"
        )
        whole = run_.open_tickets == count
        figures += [
            Figure(
                f"kill -> all partitions served, {count:,} tickets, {mode}",
                run_.total_s,
                "s",
                f"<= {TARGET_S}",
                run_.total_s <= TARGET_S and whole,
                f"{run_.open_tickets:,.0f} open tickets after",
            ),
            Figure(f"  detection (kill -> rebalance begins), {mode}", run_.detection_s, "s"),
            Figure(
                f"  takeover (rebalance -> /readyz 200 with all), {mode}",
                run_.takeover_s,
                "s",
                note=f"on_assigned {run_.on_assigned_s} s; longest event-loop hold "
                f"{run_.longest_hold_s:.2f} s",
            ),
        ]
    figures += [
        Figure(
            "cold takeover / standby takeover (same run)",
            cold.takeover_s / warm.takeover_s,
            "x",
        ),
        Figure(
            "survivor RSS before the kill, standbys off / on",
            warm.survivor_rss / 2**20,
            "MiB",
            note=f"off {cold.survivor_rss / 2**20:,.0f} MiB: standbys cost "
            f"{(warm.survivor_rss - cold.survivor_rss) / (count / 2):.0f} bytes per "
            "ticket kept warm",
        ),
        Figure(
            "survivor CPU to apply its half, standbys on",
            warm.survivor_cpu_s,
            "s",
            note=f"off {cold.survivor_cpu_s:.1f} s: the standby tail and index cost "
            f"{warm.survivor_cpu_s - cold.survivor_cpu_s:.1f} s",
        ),
    ]
    return figures


if __name__ == "__main__":
    standalone("failover: a dead worker's partitions on another worker", run)
