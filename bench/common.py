"""Shared parts of the benchmarks: broker, namespaces, a fast producer, worker processes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from kpi_devtools.broker.harness import LocalBroker, free_ports
from kpi_devtools.broker.topics import ensure_topics
from kpi_devtools.simulate.generator import SimConfig, generate, to_ms
from kpi_devtools.supervisor import Supervised

logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries while fresh topics get leaders

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "bench"
PARTITIONS = 8
QUICK_FACTOR = 10  # --quick divides every event and ticket count by this
CACHE_MAX_AGE_S = 6 * 3600  # regenerate cached simulator events older than this

Message = tuple[str, bytes, bytes]  # (contract topic, key, value)


@dataclass
class Figure:
    """One measured figure, with its target and whether the target is met (None: no target)."""

    name: str
    value: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""


def scaled(count: int, quick: bool) -> int:
    """`count`, or a tenth of it for a quick smoke run."""
    return max(1, count // QUICK_FACTOR) if quick else count


@contextmanager
def local_broker() -> Iterator[str]:
    """A fresh single-node broker for the run; yields its bootstrap address."""
    broker = LocalBroker(partitions=PARTITIONS, heap="1g")
    bootstrap = broker.start()
    try:
        yield bootstrap
    finally:
        broker.stop()


@dataclass
class Namespace:
    """Topics and consumer group of one measurement, unseen by any other run."""

    bootstrap: str
    tag: str
    prefix: str = field(default_factory=lambda: f"b{uuid.uuid4().hex[:8]}.")

    @property
    def app_id(self) -> str:
        return f"bench-{self.tag}-{self.prefix.rstrip('.')}"

    def create_topics(self) -> None:
        asyncio.run(ensure_topics(self.bootstrap, PARTITIONS, prefix=self.prefix))

    def produce(self, messages: Iterable[Message]) -> int:
        """Send every message (acks=1, batched); returns how many were sent."""
        return asyncio.run(produce(self.bootstrap, self.prefix, messages))


def fast_producer(bootstrap: str, linger_ms: int = 20) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=linger_ms, max_batch_size=262_144
    )


async def produce(bootstrap: str, prefix: str, messages: Iterable[Message]) -> int:
    producer = fast_producer(bootstrap)
    await producer.start()
    sent = 0
    try:
        pending = []
        for topic, key, value in messages:
            pending.append(await producer.send(prefix + topic, value, key=key))
            sent += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def simulator_events(count: int, seed: int = 7, mixed: bool = False) -> list[Message]:
    """The first `count` events of a seeded simulation of the last 12 hours, cached on disk.

    The mix is the simulator's: about 2 % re-sent duplicates and 1 % invalid events.
    `mixed` adds the contact floor (calls, chats, agent statuses) beside the tickets.
    """
    path = CACHE / f"sim-{count}-{seed}{'-mixed' if mixed else ''}.tsv"
    if not path.is_file() or time.time() - path.stat().st_mtime > CACHE_MAX_AGE_S:
        CACHE.mkdir(parents=True, exist_ok=True)
        rate = max(1_000.0, count / 4)  # tickets per peak hour: `count` events well within 12 h
        # As many contacts as tickets, and enough agents for them (about 8 per 60 contacts/h).
        floor = {"contact_rate": rate, "floor_agents": int(rate / 7)} if mixed else {}
        config = SimConfig(seed=seed, rate=rate, agents=int(rate / 8), **floor)
        now = datetime.now(UTC)
        events = generate(config, now - timedelta(hours=12), None)
        lines, last_ms = [], 0
        for _, event in zip(range(count), events, strict=False):
            lines.append(b"\t".join((event.topic.encode(), event.key, event.value)))
            last_ms = event.emit_ms
        if last_ms > to_ms(now):
            raise RuntimeError("the simulation did not reach the event count before now")
        partial = path.with_suffix(".partial")
        partial.write_bytes(b"\n".join(lines) + b"\n")
        partial.rename(path)
    messages = []
    for line in path.read_bytes().splitlines():
        topic, key, value = line.split(b"\t", 2)
        messages.append((topic.decode(), key, value))
    return messages


def http_get(url: str, timeout_s: float = 10.0) -> tuple[int, bytes, float]:
    """(status, body, seconds until the whole body arrived)."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body: bytes = response.read()
            return response.status, body, time.perf_counter() - started
    except urllib.error.HTTPError as error:
        return error.code, error.read(), time.perf_counter() - started


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`, in Prometheus text."""
    heads = (name + "{", name + " ")
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(heads) and all(w in line for w in wanted)
    )


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, with that of its children that
    ended (a worker builds restored indexes in child processes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class WorkerProcess:
    """A `kpi-stream worker` subprocess on a namespace; its data directory survives restarts."""

    def __init__(
        self, namespace: Namespace, workdir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.namespace = namespace
        self.extra_env = env or {}
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = workdir / namespace.app_id
        self.log_path = workdir / f"{namespace.app_id}.log"
        self.child = Supervised(
            "worker", ["-m", "stream", "worker"], log=self.log_path, stop_grace_s=60
        )

    @property
    def pid(self) -> int:
        return self.child.pid

    def start(self) -> float:
        """Launch the process; returns the perf_counter time of the launch."""
        self.child.env = {
            **os.environ,
            "KPI_BROKER": f"kafka://{self.namespace.bootstrap}",
            "KPI_WEB_HOST": "127.0.0.1",
            "KPI_WEB_PORT": str(self.port),
            "KPI_APP_ID": self.namespace.app_id,
            "KPI_TOPIC_PREFIX": self.namespace.prefix,
            "KPI_DATA_DIR": str(self.data_dir),
            "KPI_PARTITIONS": str(PARTITIONS),
            **self.extra_env,
        }
        self.child.cwd = self.data_dir.parent
        started = time.perf_counter()
        self.child.start()
        return started

    def wait_ready(self, timeout_s: float = 300.0, interval_s: float = 0.05) -> float:
        """Poll /readyz until 200; returns the perf_counter time it first answered 200."""
        return self.child.wait_ready(f"{self.url}/readyz", timeout_s, interval_s)

    def metrics(self) -> str:
        return http_get(f"{self.url}/metrics")[1].decode()

    def processed(self) -> int:
        """Messages consumed and applied so far (all outcomes of cs_events_total)."""
        return int(metric_sum(self.metrics(), "cs_events_total"))

    def wait_processed(
        self, count: int, timeout_s: float, interval_s: float = 0.1, max_share: float = 0.05
    ) -> tuple[float, int]:
        """Poll until `count` messages are processed; (perf_counter time of the last, count).

        A scrape costs the worker CPU, so polls are spaced to take at most `max_share` of its
        time; the finishing time is the worker's own cs_last_event_processed_timestamp_seconds
        (the start of its last batch), not the time of the poll that saw it.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            started = time.perf_counter()
            try:
                text = self.metrics()
            except OSError:
                text = ""  # the web server is not up yet
            spent = time.perf_counter() - started
            done = int(metric_sum(text, "cs_events_total"))
            if done >= count:
                last = metric_sum(text, "cs_last_event_processed_timestamp_seconds")
                return time.perf_counter() - (time.time() - last), done
            time.sleep(max(interval_s, spent / max_share))
        raise TimeoutError(f"processed {self.processed()} of {count} within {timeout_s} s")

    def wait_committed(
        self, count: int, timeout_s: float, interval_s: float = 0.2
    ) -> tuple[float, int]:
        """Poll the broker until the worker's group committed `count` input messages;
        (perf_counter time of the poll that saw it, count committed then).

        Unlike a scrape this costs the worker nothing, however big its state; a commit
        comes after the changelog writes of what it covers are acknowledged.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                done = asyncio.run(group_committed(self.namespace.bootstrap, self.namespace.app_id))
            except KafkaError:  # e.g. no group coordinator yet on a fresh broker
                done = 0
            if done >= count:
                return time.perf_counter(), done
            time.sleep(interval_s)
        raise TimeoutError(f"committed fewer than {count} messages within {timeout_s} s")

    def stop(self) -> None:
        """SIGTERM and wait for a clean shutdown (SIGKILL after 60 s)."""
        self.child.stop()

    def log_tail(self, lines: int = 30) -> str:
        return self.child.log_tail(lines)

    def _check_alive(self) -> None:
        self.child.check_alive()


async def group_committed(bootstrap: str, group: str) -> int:
    """Sum of the offsets a consumer group committed (0 before its first commit)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(max(0, meta.offset) for meta in offsets.values())


@contextmanager
def running_worker(namespace: Namespace, workdir: Path) -> Iterator[WorkerProcess]:
    """A worker object that is stopped (SIGTERM) however the block ends; not yet started."""
    worker = WorkerProcess(namespace, workdir)
    try:
        yield worker
    finally:
        worker.stop()


def run_dir() -> Path:
    """A fresh directory for this run's worker logs and data, kept under .cache/bench/runs."""
    path = CACHE / "runs" / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


def standalone(
    title: str, run: Callable[..., list[Figure]], parser: argparse.ArgumentParser | None = None
) -> None:
    """`python -m bench.X [--quick] ...`: one benchmark on its own broker.

    `run(bootstrap, workdir, quick=..., **other options of the parser)` gives the figures.
    """
    parser = parser or argparse.ArgumentParser(description=title)
    parser.add_argument("--quick", action="store_true", help="a tenth of the events (smoke run)")
    options = vars(parser.parse_args())
    print(machine_facts(), flush=True)
    with local_broker() as bootstrap:
        figures = run(bootstrap, run_dir(), **options)
    print_figures(title, figures)
    print(machine_facts())


def median(values: Iterable[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], pct: float) -> float:
    """Linear-interpolated percentile (0..100)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def machine_facts() -> str:
    """Cores, Python and the load average right now (the machine is shared)."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"nproc {os.cpu_count()}, Python {sys.version.split()[0]}, load average {load}"


def print_figures(title: str, figures: list[Figure]) -> None:
    """A table of figures with their targets."""
    print(f"\n== {title} ==")
    for f in figures:
        value = "n/a" if f.value is None else f"{f.value:,.2f}"
        verdict = {True: "met", False: "NOT MET", None: ""}[f.met]
        target = f"target {f.target}" if f.target else ""
        print(
            f"  {f.name:<60} {value:>12} {f.unit:<11} {target:<26} {verdict:<7} {f.note}",
            flush=True,
        )
