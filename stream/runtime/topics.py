"""Topics a worker needs: the input topics, the dead-letter topic and one compacted
changelog per entity table, created where missing and checked for co-partitioning."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code
from aiokafka.partitioner import murmur2

from stream.errors import KpiStreamError

NO_ERROR = 0
TOPIC_ALREADY_EXISTS = 36
METADATA_WAIT_S = 30.0
# Tombstones stay a day after compaction; local snapshots older than half that are not used.
COMPACTED = {"cleanup.policy": "compact", "delete.retention.ms": "86400000"}


class TopicError(KpiStreamError):
    """A topic is missing, cannot be created, or has the wrong partition count."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic with the partition count it must have (None: whatever it has)."""

    name: str
    partitions: int | None
    configs: Mapping[str, str] = field(default_factory=dict)


async def ensure(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], partitions: int, replication: int
) -> dict[str, int]:
    """Create the missing topics (with `partitions`), then check every count.

    Returns the partition count of each topic. Reads the metadata of all topics, since
    asking about a missing one by name can auto-create it with the broker's default.
    """
    counts = await partition_counts(admin)
    missing = [s for s in specs if s.name not in counts]
    if missing:
        response = await admin.create_topics(
            [
                NewTopic(
                    s.name,
                    s.partitions or partitions,
                    replication,
                    topic_configs=dict(s.configs),
                )
                for s in missing
            ]
        )
        for name, code, *_ in response.topic_errors:
            if code not in (NO_ERROR, TOPIC_ALREADY_EXISTS):  # exists: a concurrent start won
                raise TopicError(f"creating topic {name!r} failed: {for_code(code).__name__}")
        deadline = time.monotonic() + METADATA_WAIT_S
        counts = await partition_counts(admin)
        while any(s.name not in counts for s in specs) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # a new topic's metadata takes a moment to spread
            counts = await partition_counts(admin)
    wrong = [
        f"{s.name} has {counts.get(s.name)}"
        for s in specs
        if s.partitions is not None and counts.get(s.name) != s.partitions
    ]
    if wrong:
        raise TopicError(
            f"KPI_PARTITIONS={partitions}: every input and changelog topic must have "
            f"{partitions} partitions to stay co-partitioned, but {', '.join(wrong)}"
        )
    return {s.name: counts[s.name] for s in specs}


async def partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    """Partition count of every topic that exists and has metadata."""
    topics: list[dict[str, Any]] = await admin.describe_topics()
    return {
        t["topic"]: len(t["partitions"])
        for t in topics
        if t["error_code"] == NO_ERROR and t["partitions"]
    }


def key_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a message key."""
    digest: int = murmur2(key.encode())
    return (digest & 0x7FFFFFFF) % partitions
