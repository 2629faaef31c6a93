"""Run real `kpi-stream worker` processes against the test broker and read what they serve.

Every test gets its own topic prefix and app id, so tests sharing the session broker never
see each other's events, consumer groups or changelogs.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from kpi_devtools.broker.harness import free_ports
from kpi_devtools.broker.topics import ensure_topics
from kpi_devtools.supervisor import ChildFailed, Supervised
from stream.kpi.types import DLQ_TOPIC, INPUT_TOPICS, TOPIC_OF_TYPE
from stream.kpi.windows import from_ms
from stream.web.peers import SNAPSHOT_CACHE_S

# Families that the batch report also prints (pipeline health is the worker's own).
HEALTH_PREFIXES = (
    "cs_events",
    "cs_last_event",
    "cs_consumer_lag",
    "cs_partitions_assigned",
    "cs_kpi_partitions",
    "cs_kpi_snapshot",
)

REPO = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Scenario:
    """One test's isolated namespace on the shared broker."""

    bootstrap: str
    workdir: Path
    partitions: int = 8
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}.")
    sla_config: Path | None = None

    @property
    def app_id(self) -> str:
        return f"kpi-{self.prefix.rstrip('.')}"

    def topic(self, contract_topic: str) -> str:
        return self.prefix + contract_topic

    def create_topics(self) -> None:
        asyncio.run(ensure_topics(self.bootstrap, self.partitions, prefix=self.prefix))

    def produce(self, messages: Iterable[tuple[str, bytes | None, bytes]]) -> int:
        """Send (contract topic, key, value) messages in order; returns how many."""
        return asyncio.run(self._produce(list(messages)))

    async def _produce(self, messages: list[tuple[str, bytes | None, bytes]]) -> int:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await producer.start()
        try:
            for topic, key, value in messages:
                await producer.send(self.topic(topic), value, key=key)
            await producer.flush()
        finally:
            await producer.stop()
        return len(messages)

    def read_dlq(
        self, expected: int, timeout_s: float = 30.0
    ) -> list[tuple[bytes, dict[str, bytes]]]:
        """Every message of the dead-letter topic (waits for `expected` of them)."""
        return asyncio.run(self._read_dlq(expected, timeout_s))

    async def _read_dlq(
        self, expected: int, timeout_s: float
    ) -> list[tuple[bytes, dict[str, bytes]]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            topic = self.topic(DLQ_TOPIC)
            consumer.assign([TopicPartition(topic, p) for p in range(self.partitions)])
            for p in range(self.partitions):
                consumer.seek(TopicPartition(topic, p), 0)
            found: list[tuple[bytes, dict[str, bytes]]] = []
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    found.extend((r.value or b"", dict(r.headers)) for r in records)
                if len(found) >= expected:
                    await asyncio.sleep(1.0)  # anything beyond `expected` would show up now
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        found.extend((r.value or b"", dict(r.headers)) for r in records)
                    break
            return found
        finally:
            await consumer.stop()

    def committed(self) -> dict[TopicPartition, int]:
        """The consumer group's committed offsets."""
        return asyncio.run(self._committed())

    async def _committed(self) -> dict[TopicPartition, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(self.app_id)
        finally:
            await admin.close()
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    def write_sla_config(self, text: str) -> Path:
        path = self.workdir / "policy.toml"
        path.write_text(text)
        self.sla_config = path
        return path


def route(event_line: bytes) -> tuple[str, bytes | None, bytes]:
    """(contract topic, key, value) for a valid event line: its type tells the topic."""
    event = orjson.loads(event_line)
    return TOPIC_OF_TYPE[event["type"]], event["ticket_id"].encode(), event_line


class Worker:
    """A `kpi-stream worker` subprocess."""

    def __init__(
        self,
        scenario: Scenario,
        name: str = "w1",
        timezone: str = "UTC",
        extra_env: Mapping[str, str] | None = None,
        module: str = "stream",
    ) -> None:
        self.scenario = scenario
        self.name = name
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = scenario.workdir / name
        self.log_path = scenario.workdir / f"{name}.log"
        self.timezone = timezone
        self.extra_env = dict(extra_env or {})  # set last: may override KPI_BROKER etc.
        self.module = module  # `python -m MODULE worker`; tests may wrap the real worker
        self.child = Supervised(
            name, ["-m", module, "worker"], log=self.log_path, cwd=scenario.workdir
        )

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KPI_BROKER=f"kafka://{self.scenario.bootstrap}",
            KPI_WEB_PORT=str(self.port),
            KPI_WEB_HOST="127.0.0.1",
            KPI_APP_ID=self.scenario.app_id,
            KPI_TOPIC_PREFIX=self.scenario.prefix,
            KPI_DATA_DIR=str(self.data_dir),
            KPI_PARTITIONS=str(self.scenario.partitions),
            KPI_TIMEZONE=self.timezone,
            KPI_KAFKA_SESSION_TIMEOUT_S="6",
        )
        if self.module != "stream":  # a test wrapper: importable from the repository root
            env["PYTHONPATH"] = str(REPO)
        if self.scenario.sla_config is not None:
            env["KPI_SLA_CONFIG"] = str(self.scenario.sla_config)
        env.update(self.extra_env)
        return env

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.child.process

    def start(self) -> Worker:
        self.child.env = self.env()
        self.child.start()
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until /readyz answers 200 (partitions assigned, state recovered)."""
        try:
            self.child.wait_ready(f"{self.url}/readyz", timeout_s)
        except ChildFailed as exc:
            raise AssertionError(f"worker {self.name}: {exc}") from None

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            body: bytes = response.read()
            return body

    def status(self, path: str) -> int:
        """The HTTP status of a GET of `path` (URLError when nothing answers)."""
        try:
            self.get(path)
        except urllib.error.HTTPError as exc:
            return exc.code
        return 200

    def ready_partitions(self) -> list[int]:
        try:
            return list(orjson.loads(self.get("/readyz"))["partitions"])
        except urllib.error.URLError:  # not ready (HTTPError 503) or not listening yet
            self._check_alive()
            return []

    def metrics(self) -> Samples:
        return parse_samples(self.get("/metrics").decode())

    def api(self) -> dict[str, object]:
        document: dict[str, object] = orjson.loads(self.get("/api/kpis"))
        return document

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit."""
        self.child.kill()

    def stop(self) -> None:
        """SIGTERM and wait for a clean shutdown (SIGKILL after 30 s)."""
        self.child.stop()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_exit(self, timeout_s: float = 60.0) -> int:
        """The exit code, once the process has ended by itself."""
        return self.child.wait_exit(timeout_s)

    def caught_up(self) -> bool:
        """True when the worker reports lag 0 for every input partition it serves."""
        owned = self.ready_partitions()
        lags = [v for (n, _), v in self.metrics().items() if n == "cs_consumer_lag_messages"]
        return bool(owned) and len(lags) == len(INPUT_TOPICS) * len(owned) and not any(lags)

    def _check_alive(self) -> None:
        try:
            self.child.check_alive()
        except ChildFailed as exc:
            raise AssertionError(f"worker {self.name}: {exc}") from None


def parse_samples(text: str) -> Samples:
    """Prometheus text -> {(sample name, sorted labels): value}."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def kpi_samples(samples: Samples) -> Samples:
    """Only the KPI families (those `kpi-stream report` prints too)."""
    return {k: v for k, v in samples.items() if not k[0].startswith(HEALTH_PREFIXES)}


def processed(samples: Samples) -> float:
    return sum(v for (name, _), v in samples.items() if name == "cs_events_total")


def simulate_backfill(scenario: Scenario, hours: float) -> dict[str, int]:
    """`kpi-stream simulate --backfill HOURS` into the scenario's topics; messages sent per
    contract topic (as the simulator reports them)."""
    command = [sys.executable, "-m", "stream", "simulate", "--backfill", str(hours),
               "--duration", "0", "--broker", f"kafka://{scenario.bootstrap}",
               "--topic-prefix", scenario.prefix]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True)
    breakdown = re.search(r": \d+ events \(([^)]*)\)", done.stderr)
    assert breakdown, done.stderr
    return {
        topic: int(count) for topic, count in (part.split() for part in breakdown[1].split(", "))
    }


def consumed(worker: Worker, sent: Mapping[str, int], scenario: Scenario) -> int:
    """How many of `sent` (per contract topic) the worker consumes: its input topics are
    those of its cs_events_total series."""
    topics = {
        dict(labels)["topic"] for name, labels in worker.metrics() if name == "cs_events_total"
    }
    return sum(n for topic, n in sent.items() if scenario.topic(topic) in topics)


def wait_processed(workers: list[Worker], count: int, timeout_s: float = 90.0) -> None:
    """Until the workers together have consumed `count` messages.

    Then it waits out the workers' snapshot cache: the scrape that saw the counters may
    have reused KPI numbers computed just before the last messages were applied.
    """
    deadline = time.monotonic() + timeout_s
    seen = 0.0
    while time.monotonic() < deadline:
        seen = sum(processed(w.metrics()) for w in workers)
        if seen >= count:
            time.sleep(SNAPSHOT_CACHE_S + 0.05)
            return
        time.sleep(0.3)
    raise AssertionError(f"processed {seen} of {count} messages in {timeout_s}s")


def wait_caught_up(workers: list[Worker], timeout_s: float = 90.0) -> None:
    """Until every worker has applied everything in its partitions (lag 0 everywhere)."""
    deadline = time.monotonic() + timeout_s
    while not all(w.caught_up() for w in workers):
        assert time.monotonic() < deadline, f"workers not caught up in {timeout_s}s"
        time.sleep(0.3)
    time.sleep(SNAPSHOT_CACHE_S + 0.05)  # the next scrape computes a fresh snapshot


def report(lines: list[bytes], now: str, workdir: Path, sla_config: Path | None = None) -> Samples:
    """Samples that `kpi-stream report` prints for `lines` at `now`."""
    path = workdir / f"events-{uuid.uuid4().hex[:6]}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    command = [sys.executable, "-m", "stream", "report", str(path), "--now", now]
    if sla_config is not None:
        command += ["--sla-config", str(sla_config)]
    result = subprocess.run(command, capture_output=True, check=True)
    return parse_samples(result.stdout.decode())


def assert_same(actual: Samples, expected: Samples) -> None:
    """Equal label sets and values (floats to 1e-9 relative)."""
    missing = sorted(set(expected) - set(actual))[:10]
    extra = sorted(set(actual) - set(expected))[:10]
    assert not missing and not extra, f"missing: {missing}\nextra: {extra}"
    wrong = [
        (key, actual[key], value)
        for key, value in expected.items()
        if abs(actual[key] - value) > 1e-9 * max(1.0, abs(value))
    ]
    assert not wrong, f"{len(wrong)} differing samples, e.g. {wrong[:10]}"


def now_ms() -> int:
    """The wall clock, epoch milliseconds."""
    return time.time_ns() // 1_000_000


def rfc3339(ms: int) -> str:
    """An instant as `kpi-stream report --now` takes it."""
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def scrape_matching_report(
    worker: Worker, lines: list[bytes], workdir: Path, sla_config: Path | None = None
) -> tuple[Samples, Samples]:
    """Scrape the worker and run the report at the instant its numbers were computed at
    (`cs_kpi_snapshot_timestamp_seconds`): the two must agree exactly, agents' time in
    status (which runs to the millisecond) included."""
    samples = worker.metrics()
    at = snapshot_ms(samples)
    return kpi_samples(samples), report(lines, rfc3339(at), workdir, sla_config)


def snapshot_ms(samples: Samples) -> int:
    """The instant (epoch ms) a scrape's KPIs were computed at."""
    return round(samples["cs_kpi_snapshot_timestamp_seconds", ()] * 1000)
