"""Fuzz a running worker with every bad-input case of issue 10 and the ordinary ones.

Each message of `fuzz_corpus` has a hand-written fate. After the corpus: the dead-letter
topic holds exactly one record per rejected message, at its own topic/partition/offset,
with the right reason (a record too large for it cut to fit, with the original's size and
SHA-256); `cs_events_rejected_total` counts the same; the worker never restarted; and it
still processes good events exactly as `kpi-stream report` says.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.partitioner import murmur2

from tests.integration.eventsets import mixed
from tests.integration.fuzz_corpus import HOT_LIMIT, Case, corpus, huge_invalid_case
from tests.integration.worker_harness import (
    Scenario,
    Worker,
    assert_same,
    now_ms,
    scrape_matching_report,
    wait_processed,
)

TOPIC_LIMIT = 6_000_000  # max.message.bytes of the opened topic, raised for the 5 MB case


def kafka_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


async def raise_topic_limit(scenario: Scenario, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=scenario.bootstrap)
    await admin.start()
    try:
        resource = ConfigResource(
            ConfigResourceType.TOPIC,
            scenario.topic(topic),
            configs={"max.message.bytes": str(TOPIC_LIMIT)},
        )
        await admin.alter_configs([resource])
    finally:
        await admin.close()


async def produce(scenario: Scenario, cases: list[Case]) -> list[tuple[str, int, int]]:
    """Send every case in order; its (topic, partition, offset) as the broker stored it."""
    producer = AIOKafkaProducer(
        bootstrap_servers=scenario.bootstrap, max_request_size=TOPIC_LIMIT, linger_ms=5
    )
    await producer.start()
    try:
        where = []
        for case in cases:
            sent = await producer.send_and_wait(
                scenario.topic(case.topic), case.value, key=case.key, partition=case.partition
            )
            where.append((sent.topic, sent.partition, sent.offset))
        return where
    finally:
        await producer.stop()


def test_fuzz_corpus_goes_to_the_dlq_with_its_reasons_and_the_worker_carries_on(
    scenario: Scenario, workers: list[Worker]
) -> None:
    scenario.write_sla_config(f"max_events_per_entity = {HOT_LIMIT}\n")
    asyncio.run(raise_topic_limit(scenario, "cs.ticket.opened"))
    worker = Worker(scenario).start()
    workers.append(worker)
    worker.wait_ready()
    assert worker.process is not None
    pid = worker.process.pid

    partitions = scenario.partitions
    cases = [
        *corpus(now_ms(), partitions, lambda k: (kafka_partition(k, partitions) + 1) % partitions),
        huge_invalid_case(),
    ]
    where = asyncio.run(produce(scenario, cases))
    wait_processed([worker], len(cases))

    rejected = [(case, spot) for case, spot in zip(cases, where, strict=True) if case.reason]
    dead = scenario.read_dlq(len(rejected))
    assert len(dead) == len(rejected), "every rejected message, once"
    by_spot = {
        (h["kpi-topic"].decode(), int(h["kpi-partition"]), int(h["kpi-offset"])): (value, h)
        for value, h in dead
    }
    for case, spot in rejected:
        assert spot in by_spot, f"{case.name} is not in the dead-letter topic"
        value, headers = by_spot[spot]
        assert headers["kpi-reason"].decode() == case.reason, case.name
        original = case.value or b""
        if "kpi-value-size" in headers:  # cut to fit: the headers identify the original
            assert len(original) > 1_000_000, case.name
            assert int(headers["kpi-value-size"]) == len(original)
            assert headers["kpi-value-sha256"].decode() == hashlib.sha256(original).hexdigest()
            assert original.startswith(value) and len(value) < len(original)
        else:
            assert value == original, case.name
    assert {"invalid-1MB", "invalid-5MB"} <= {
        case.name for case, spot in rejected if "kpi-value-size" in by_spot[spot][1]
    }

    health = worker.metrics()
    by_reason: Counter[str] = Counter()
    for (name, labels), value in health.items():
        if name == "cs_events_rejected_total":
            by_reason[dict(labels)["reason"]] += int(value)
    assert +by_reason == Counter(case.reason for case, _ in rejected)
    assert sum(by_reason.values()) == len(dead) == len(rejected)

    # Alive, never restarted, and still exact on good events.
    assert worker.process.poll() is None and worker.process.pid == pid
    good = mixed(now_ms(), seed=21, tickets=150)
    scenario.produce(good.messages)
    wait_processed([worker], len(cases) + len(good.messages))
    accepted = [case.value or b"" for case in cases if case.reason is None]
    lines = [*good.report_lines, *accepted]
    scraped, expected = scrape_matching_report(worker, lines, scenario.workdir, scenario.sla_config)
    assert_same(scraped, expected)
    assert worker.process.poll() is None and worker.process.pid == pid
