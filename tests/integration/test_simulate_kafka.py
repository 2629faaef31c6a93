"""`kpi-stream simulate` producing to a real broker, under a topic prefix."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections import Counter, defaultdict

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from kpi_devtools.broker.topics import ensure_topics
from stream.kpi.types import DLQ_TOPIC, INPUT_TOPICS
from stream.runtime.topics import key_partition

PARTITIONS = 8
WEEKDAY_AFTERNOON = "2026-11-18T15:00:00Z"  # a fixed, busy hour: the same events every run
SUMMARY = re.compile(r"\): (\d+) events \((.*)\); (\d+) duplicates, (\d+) invalid$")


def summary_counts(stderr: str) -> dict[str, int]:
    """{contract topic: records sent} from the simulator's summary line."""
    match = SUMMARY.search(stderr.strip().splitlines()[-1])
    assert match, stderr
    counts = {}
    for part in match[2].split(", "):
        topic, count = part.rsplit(" ", 1)
        counts[topic] = int(count)
    assert sum(counts.values()) == int(match[1])
    return counts


async def read_all(bootstrap: str, topics: list[str]) -> list[tuple[str, int, bytes]]:
    """(topic, partition, key) of every record now in `topics`, from the start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[tuple[str, int, bytes]] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend((r.topic, r.partition, r.key or b"") for r in batch)
        return records
    finally:
        await consumer.stop()


def test_backfill_reaches_the_prefixed_topics_co_partitioned_by_ticket(
    kafka_bootstrap: str,
) -> None:
    """An hour of history: per-topic counts equal the summary, and every record of a ticket
    sits in the partition Kafka's default partitioner gives its key, on every topic."""
    prefix = f"sim{uuid.uuid4().hex[:8]}."
    asyncio.run(ensure_topics(kafka_bootstrap, PARTITIONS, prefix=prefix))
    command = [sys.executable, "-m", "stream", "simulate", "--backfill", "1", "--duration", "0",
               "--now", WEEKDAY_AFTERNOON, "--seed", "5", "--broker", f"kafka://{kafka_bootstrap}",
               "--topic-prefix", prefix]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    expected = summary_counts(done.stderr)
    assert set(expected) <= set(INPUT_TOPICS)
    assert expected["cs.ticket.opened"] > 100, "too little traffic to prove anything"

    topics = [prefix + t for t in (*INPUT_TOPICS, DLQ_TOPIC)]
    records = asyncio.run(read_all(kafka_bootstrap, topics))
    received = Counter(topic.removeprefix(prefix) for topic, _, _ in records)
    assert received == Counter(expected)  # and nothing in the dead-letter topic

    partitions_of: defaultdict[bytes, set[int]] = defaultdict(set)
    for _, partition, key in records:
        partitions_of[key].add(partition)
    assert len({p for ps in partitions_of.values() for p in ps}) == PARTITIONS
    spread = {key: ps for key, ps in partitions_of.items() if len(ps) != 1}
    assert not spread, f"tickets on several partitions: {list(spread.items())[:5]}"
    wrong = [
        (key, ps)
        for key, ps in partitions_of.items()
        if ps != {key_partition(key.decode(), PARTITIONS)}
    ]
    assert not wrong, f"not the default partitioner's partition: {wrong[:5]}"
    tickets_on_several_topics = Counter(key for topic, _, key in set(records))
    assert sum(n > 1 for n in tickets_on_several_topics.values()) > 100
