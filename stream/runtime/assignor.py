"""Group assignment: partition p of every input topic to one member, and who serves what.

Each member puts its web URL in its join metadata. The leader gives every member the
same partition numbers on all subscribed topics (co-partitioning: the events of one
entity meet on one worker whatever their topic) and sends everyone the map
url -> partitions, which the web fan-out uses to find its peers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)


def spread(partitions: int, members: list[str]) -> dict[str, list[int]]:
    """Contiguous, balanced ranges of partition numbers over the sorted member ids."""
    ordered = sorted(members)
    share, extra = divmod(partitions, len(ordered))
    result: dict[str, list[int]] = {}
    start = 0
    for i, member in enumerate(ordered):
        size = share + (1 if i < extra else 0)
        result[member] = list(range(start, start + size))
        start += size
    return result


class CoPartitionAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    """Assigns partition numbers, not topic partitions; carries each member's URL."""

    name = "kpi-copartition"
    version = 0

    def __init__(self, url: str) -> None:
        self.url = url
        self.peers: dict[str, list[int]] = {}  # url -> partitions, from the last assignment

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), self.url.encode())

    def assign(
        self, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = sorted({t for m in members.values() for t in m.subscription})
        counts = {len(cluster.partitions_for_topic(t) or ()) for t in topics}
        if len(counts) != 1:
            raise ValueError(f"input topics are not co-partitioned: {sorted(counts)} partitions")
        shares = spread(counts.pop(), list(members))
        urls = {member: bytes(m.user_data or b"").decode() for member, m in members.items()}
        peers = orjson.dumps({urls[member]: shares[member] for member in members})
        return {
            member: ConsumerProtocolMemberAssignment(
                self.version,
                [(t, shares[member]) for t in topics if t in m.subscription],
                peers,
            )
            for member, m in members.items()
        }

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        self.peers = orjson.loads(assignment.user_data or b"{}")
