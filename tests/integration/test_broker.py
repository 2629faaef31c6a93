"""The local broker harness against a real Kafka: clients, contract topics, lifecycle."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from kpi_devtools.broker.harness import (
    BrokerError,
    LocalBroker,
    is_broker_process,
    pid_alive,
    stop_broker,
)
from kpi_devtools.broker.topics import DLQ_TOPIC, INPUT_TOPICS, ensure_topics
from kpi_devtools.supervisor import Supervised

REPO_ROOT = Path(__file__).resolve().parents[2]


async def partition_counts(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
    finally:
        await admin.close()


async def test_aiokafka_round_trip_keeps_every_message_and_per_key_order(
    kafka_bootstrap: str, unique_id: str
) -> None:
    topic = f"test.roundtrip.{unique_id}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        await admin.close()
    sent = [(f"ticket-{i % 7}".encode(), f"event-{i}".encode()) for i in range(60)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for key, value in sent:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"test-{unique_id}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received: list[tuple[bytes, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    received.extend((r.key, r.value) for r in records if r.key and r.value)
    finally:
        await consumer.stop()

    assert sorted(received) == sorted(sent)
    for key in {key for key, _ in sent}:
        assert [v for k, v in received if k == key] == [v for k, v in sent if k == key]


async def test_contract_topics_exist_with_eight_partitions(kafka_bootstrap: str) -> None:
    counts = await partition_counts(kafka_bootstrap)
    assert {name: counts.get(name) for name in (*INPUT_TOPICS, DLQ_TOPIC)} == {
        name: 8 for name in (*INPUT_TOPICS, DLQ_TOPIC)
    }


async def test_one_ticket_lands_on_the_same_partition_of_every_input_topic(
    kafka_bootstrap: str, unique_id: str
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for ticket in (f"T-{unique_id}-{n}" for n in range(5)):
            sent = [
                await producer.send_and_wait(t, b"{}", key=ticket.encode()) for t in INPUT_TOPICS
            ]
            assert len({metadata.partition for metadata in sent}) == 1, ticket
    finally:
        await producer.stop()


async def test_ensure_topics_creates_prefixed_topics_with_the_given_partition_count(
    kafka_bootstrap: str, unique_id: str
) -> None:
    prefix = f"t{unique_id}."
    before = await partition_counts(kafka_bootstrap)
    await ensure_topics(kafka_bootstrap, partitions=2, prefix=prefix)
    counts = await partition_counts(kafka_bootstrap)
    assert {name: counts.get(prefix + name) for name in (*INPUT_TOPICS, DLQ_TOPIC)} == {
        name: 2 for name in (*INPUT_TOPICS, DLQ_TOPIC)
    }
    assert {name: counts[name] for name in before} == before


async def test_ensure_topics_is_idempotent(kafka_bootstrap: str) -> None:
    before = await partition_counts(kafka_bootstrap)
    await ensure_topics(kafka_bootstrap)
    await ensure_topics(kafka_bootstrap)
    assert await partition_counts(kafka_bootstrap) == before


async def test_ensure_topics_refuses_a_different_partition_count(kafka_bootstrap: str) -> None:
    before = await partition_counts(kafka_bootstrap)
    with pytest.raises(BrokerError, match=r"co-partitioned, but cs\.ticket\.opened has 8"):
        await ensure_topics(kafka_bootstrap, partitions=3)
    assert await partition_counts(kafka_bootstrap) == before


async def produce_one(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000)
        return [record.value or b"" for records in batches.values() for record in records]
    finally:
        await consumer.stop()


def test_broker_in_a_data_dir_stops_cleanly_and_keeps_messages_across_restarts(
    kafka_libs: Path, tmp_path: Path
) -> None:
    broker = LocalBroker(tmp_path)
    first = broker.start()
    pid = broker.pid
    try:
        assert pid is not None
        assert is_broker_process(pid, tmp_path / "server.properties")
        asyncio.run(produce_one(first, "kept", b"before restart"))
    finally:
        broker.stop()
    assert not pid_alive(pid)
    assert (tmp_path / "server.log").stat().st_size > 0

    second = broker.start()
    second_pid = broker.pid
    try:
        assert second_pid is not None
        assert asyncio.run(read_all(second, "kept")) == [b"before restart"]
    finally:
        broker.stop()
    assert not pid_alive(second_pid)


def test_broker_jvm_dies_when_its_python_parent_is_killed(kafka_libs: Path, tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from kpi_devtools.broker.harness import LocalBroker\n"
        "broker = LocalBroker(Path(sys.argv[1]))\n"
        "broker.start()\n"
        "print(broker.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    log = tmp_path / "parent.log"
    parent = Supervised(
        "parent",
        [sys.executable, "-c", script, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        log=log,
    ).start()
    jvm_pid = 0
    try:
        parent.wait_until(lambda: log.read_text().strip().isdigit(), 120)
        jvm_pid = int(log.read_text())
        assert is_broker_process(jvm_pid, tmp_path / "server.properties")
        parent.kill()
        deadline = time.monotonic() + 20
        while pid_alive(jvm_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pid_alive(jvm_pid)
    finally:
        parent.kill()
        if is_broker_process(jvm_pid, tmp_path / "server.properties"):
            stop_broker(jvm_pid)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream", "broker", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )


def test_cli_starts_in_background_reports_status_and_stops(
    kafka_libs: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "broker"
    started = run_cli("start", "--data-dir", str(data_dir), "--partitions", "2")
    try:
        assert started.returncode == 0, started.stderr
        bootstrap = started.stdout.strip()
        assert bootstrap.startswith("127.0.0.1:")
        status = run_cli("status", "--data-dir", str(data_dir))
        assert status.returncode == 0, status.stdout
        assert bootstrap in status.stdout
        counts = asyncio.run(partition_counts(bootstrap))
        assert all(counts[name] == 2 for name in (*INPUT_TOPICS, DLQ_TOPIC))
        again = run_cli("start", "--data-dir", str(data_dir))
        assert again.returncode != 0
        assert "already runs" in again.stderr
    finally:
        stopped = run_cli("stop", "--data-dir", str(data_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert "Stopped" in stopped.stdout
    after = run_cli("status", "--data-dir", str(data_dir))
    assert after.returncode == 1
    assert "No broker is running" in after.stdout
