"""The contract's topics, created idempotently with one partition count."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from kpi_devtools.broker.harness import BrokerError
from stream.kpi.types import DLQ_TOPIC, INPUT_TOPICS

__all__ = ["DLQ_TOPIC", "INPUT_TOPICS", "ensure_topics"]

_NO_ERROR = 0
_TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(bootstrap: str, partitions: int = 8, *, prefix: str = "") -> None:
    """Create the input topics and the DLQ where missing; wait until all have leaders.

    `prefix` goes before every topic name (KPI_TOPIC_PREFIX). The input topics must be
    co-partitioned, so an existing input topic with another partition count is an
    error. The DLQ needs no co-partitioning and keeps whatever count it already has.
    """
    if partitions < 1:
        raise BrokerError(f"partitions must be at least 1, not {partitions}")
    inputs = [prefix + name for name in INPUT_TOPICS]
    wanted = [*inputs, prefix + DLQ_TOPIC]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        counts = await _partition_counts(admin, wanted)
        _check_co_partitioning(counts, inputs, partitions)
        missing = [name for name in wanted if name not in counts]
        if missing:
            new_topics = [NewTopic(name, partitions, 1) for name in missing]
            response = await admin.create_topics(new_topics)
            for name, code, *_ in response.topic_errors:
                if code not in (_NO_ERROR, _TOPIC_ALREADY_EXISTS):  # exists: a concurrent run won
                    raise BrokerError(f"Creating topic {name!r} failed: {for_code(code).__name__}")
        await _wait_for_leaders(admin, wanted)
        _check_co_partitioning(await _partition_counts(admin, wanted), inputs, partitions)
    finally:
        await admin.close()


def _check_co_partitioning(counts: dict[str, int], inputs: list[str], partitions: int) -> None:
    wrong = {name: counts[name] for name in inputs if counts.get(name, partitions) != partitions}
    if wrong:
        found = ", ".join(f"{name} has {count}" for name, count in wrong.items())
        raise BrokerError(
            f"The input topics must all have {partitions} partitions to stay co-partitioned, "
            f"but {found}. Use --partitions/KPI_PARTITIONS matching the existing topics, "
            "or recreate them."
        )


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition count of each of `names` that exists."""
    return {
        topic["topic"]: len(topic["partitions"])
        for topic in await _describe(admin, names)
        if topic["error_code"] == _NO_ERROR
    }


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        topics = await _describe(admin, names)
        if len(topics) == len(names) and all(
            topic["error_code"] == _NO_ERROR
            and topic["partitions"]
            and all(partition["leader"] >= 0 for partition in topic["partitions"])
            for topic in topics
        ):
            return
        await asyncio.sleep(0.2)
    raise BrokerError(f"Topics {names} got no partition leaders within {timeout_s:.0f} s.")


async def _describe(admin: AIOKafkaAdminClient, names: list[str]) -> list[dict[str, Any]]:
    """Metadata of those of `names` that exist.

    Asking the broker about topics by name would auto-create missing ones with the
    broker's default partition count, so this reads the metadata of all topics.
    """
    return [topic for topic in await admin.describe_topics() if topic["topic"] in names]
