"""Chaos against the real broker: while the simulator produces, workers are SIGKILLed again
and again, the broker restarts, and the group rebalances between one and three workers.
At the end the last worker's `/metrics` must equal `kpi-stream report` on exactly the
events that reached the input topics (read back from Kafka), sample for sample.

A commit of offsets past events whose changelog records were never acknowledged loses
those events at the next SIGKILL; the kills fall while a restarted worker is catching up
its backlog (one batch after another), which is when such a window is open.

The CI version does 10 kills, 1 broker restart and 1 -> 3 -> 1 workers (`make test`);
`make soak` runs 50 kills, 5 broker restarts and 20 rebalances (KPI_SOAK=1). Both print
their figures.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from kpi_devtools.broker.harness import LocalBroker, free_ports
from kpi_devtools.supervisor import Supervised
from stream.kpi.types import INPUT_TOPICS, TOPIC_OF_TYPE
from tests.integration.worker_harness import (
    Scenario,
    Worker,
    assert_same,
    scrape_matching_report,
    wait_caught_up,
)

PARTITIONS = 6
SIMULATOR_RATE = "3000000"  # tickets per hour at the diurnal peak: ~250 events/s at 18:00 UTC


@dataclass
class Plan:
    """How much chaos, in which order (actions: kill, broker, scale)."""

    actions: list[str]
    pause_s: tuple[float, float] = (0.3, 1.5)

    @classmethod
    def ci(cls) -> Plan:
        return cls([*["kill"] * 3, "scale", *["kill"] * 2, "broker", *["kill"] * 3, "scale",
                    *["kill"] * 2])  # fmt: skip

    @classmethod
    def soak(cls, rng: random.Random) -> Plan:
        actions = ["kill"] * 50 + ["broker"] * 5 + ["scale"] * 20
        rng.shuffle(actions)
        return cls(actions)


@dataclass
class Figures:
    kills: int = 0
    broker_restarts: int = 0
    rebalances: int = 0
    simulator_restarts: int = 0
    events: int = 0
    longest_recovery_s: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def line(self, slow_answers: int) -> str:
        return (
            f"chaos: {self.kills} SIGKILLs, {self.broker_restarts} broker restarts, "
            f"{self.rebalances} rebalances (1 <-> 3 workers), {self.simulator_restarts} "
            f"simulator restarts, {self.events} input messages, longest recovery "
            f"{self.longest_recovery_s:.1f} s, {slow_answers} /readyz requests unanswered "
            f"for 10 s, {time.monotonic() - self.started:.0f} s in all"
        )


class Simulator:
    """`kpi-stream simulate` producing to the scenario's topics, restarted if it dies."""

    def __init__(self, scenario: Scenario, figures: Figures) -> None:
        self.scenario, self.figures = scenario, figures
        self.child = Supervised(
            "simulator", ["-m", "stream"], log=scenario.workdir / "simulator.log", stop_grace_s=20
        )
        self.seed = 7

    def start(self) -> None:
        env = {
            **os.environ,
            "KPI_BROKER": f"kafka://{self.scenario.bootstrap}",
            "KPI_TOPIC_PREFIX": self.scenario.prefix,
        }
        self.child.args = [
            sys.executable, "-m", "stream", "simulate", "--rate", SIMULATOR_RATE,
            "--contact-rate", "0", "--backfill", "0.05", "--duration", "3600",
            "--seed", str(self.seed),
        ]  # fmt: skip
        self.child.env = env
        self.child.start()

    def keep_running(self) -> None:
        if self.child.process is not None and not self.child.running():
            self.figures.simulator_restarts += 1
            self.seed += 1
            self.start()

    def stop(self) -> None:
        self.child.stop()


class Cluster:
    """Workers w1..w3 of one group (static membership), at most three running."""

    def __init__(self, scenario: Scenario, started: list[Worker]) -> None:
        self.scenario = scenario
        self.workers = [
            Worker(scenario, f"w{n}", extra_env={"KPI_GROUP_INSTANCE_ID": f"w{n}"})
            for n in (1, 2, 3)
        ]
        started.extend(self.workers)
        self.size = 0
        self.slow_answers = 0

    @property
    def running(self) -> list[Worker]:
        return self.workers[: self.size]

    def scale(self, size: int) -> None:
        for worker in self.workers[size : self.size]:
            worker.stop()
        for worker in self.workers[self.size : size]:
            worker.start()
        self.size = size

    def settle(self, timeout_s: float = 120.0) -> float:
        """Until every running worker serves partitions and together they serve each once;
        returns how long it took."""
        began = time.monotonic()
        deadline = began + timeout_s
        while True:
            try:
                owned = [set(w.ready_partitions()) for w in self.running]
            except TimeoutError:  # /readyz unanswered for 10 s: counted, asked again
                self.slow_answers += 1
                continue
            every = set().union(*owned)
            if all(owned) and sum(map(len, owned)) == len(every) == PARTITIONS:
                return time.monotonic() - began
            assert time.monotonic() < deadline, f"not settled: {owned}\n{self.logs()}"
            time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.log_tail(30)}" for w in self.running)


def input_messages(scenario: Scenario) -> list[tuple[str, bytes | None, bytes | None]]:
    """Every message of the input topics, as (unprefixed topic, key, value)."""

    async def read() -> list[tuple[str, bytes | None, bytes | None]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=scenario.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [
                TopicPartition(scenario.topic(t), p)
                for t in INPUT_TOPICS
                for p in range(PARTITIONS)
            ]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            found: list[tuple[str, bytes | None, bytes | None]] = []
            left = {tp for tp in tps if ends[tp] > 0}
            while left:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    topic = tp.topic.removeprefix(scenario.prefix)
                    found.extend((topic, r.key, r.value) for r in records)
                    if records and records[-1].offset + 1 >= ends[tp]:
                        left.discard(tp)
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


def report_lines(messages: list[tuple[str, bytes | None, bytes | None]]) -> list[bytes]:
    """The lines `report` gets: every message except those only Kafka can judge (a type on
    another topic, a key that is not the ticket id), which the worker rejects."""
    lines = []
    for topic, key, value in messages:
        try:
            event = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            event = None
        if isinstance(event, dict) and event.get("type") in TOPIC_OF_TYPE:
            if TOPIC_OF_TYPE[event["type"]] != topic:
                continue
            if not isinstance(event.get("ticket_id"), str) or key != event["ticket_id"].encode():
                continue
        lines.append((value or b"").replace(b"\n", b" "))
    return lines


@pytest.fixture
def broker(kafka_libs: Path, tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of this test's own (it is restarted): fixed ports, data kept across restarts."""
    port, controller = free_ports(2)
    broker = LocalBroker(
        tmp_path / "kafka", port=port, controller_port=controller, partitions=PARTITIONS
    )
    broker.start()
    yield broker
    broker.stop()


def test_chaos_kills_broker_restart_and_rebalances_end_exactly_like_the_report(
    broker: LocalBroker, tmp_path: Path, workers: list[Worker]
) -> None:
    soak = os.environ.get("KPI_SOAK", "") not in ("", "0")
    rng = random.Random(2026)
    plan = Plan.soak(rng) if soak else Plan.ci()
    scenario = Scenario(broker.bootstrap, tmp_path, partitions=PARTITIONS)
    scenario.create_topics()
    figures = Figures()
    cluster = Cluster(scenario, workers)
    cluster.scale(1)
    cluster.settle()
    simulator = Simulator(scenario, figures)
    simulator.start()
    try:
        for action in plan.actions:
            time.sleep(rng.uniform(*plan.pause_s))
            simulator.keep_running()
            if action == "kill":
                victim = rng.choice(cluster.running)
                victim.kill()
                victim.start()
                figures.kills += 1
            elif action == "broker":
                broker.stop()
                time.sleep(rng.uniform(1.0, 4.0))
                broker.start()
                figures.broker_restarts += 1
            else:
                cluster.scale(3 if cluster.size == 1 else 1)
                figures.rebalances += 1
            figures.longest_recovery_s = max(figures.longest_recovery_s, cluster.settle())
        time.sleep(1.0)
    finally:
        simulator.stop()
    if cluster.size != 1:
        cluster.scale(1)
        cluster.settle()
    messages = input_messages(scenario)
    figures.events = len(messages)
    (last,) = cluster.running
    wait_caught_up([last], timeout_s=180)
    scraped, expected = scrape_matching_report(last, report_lines(messages), scenario.workdir)
    print(figures.line(cluster.slow_answers))
    assert figures.kills >= (50 if soak else 10)
    assert figures.broker_restarts >= (5 if soak else 1)
    assert figures.rebalances >= (20 if soak else 2)
    assert any(name == "cs_first_responses" for name, _ in expected), "no events reached"
    assert_same(scraped, expected)
