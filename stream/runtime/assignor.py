"""Group assignment: partition p of every input topic to one member, its warm standby to
another, and who serves what.

Each member puts its web URL in its join metadata. The leader gives every member the
same partition numbers on all subscribed topics (co-partitioning: the events of one
entity meet on one worker whatever their topic), and with standby replicas each partition
number also to one other member, which tails its changelogs without serving them. It
sends everyone the maps url -> active partitions (which the web fan-out uses to find its
peers) and url -> standby partitions; the next leader starts from them, so a member keeps
its partitions across a rebalance and a dead member's partitions go to their standbys.

A member of this version joins with metadata version 1. A group with an older member
(version 0, during a rolling upgrade) gets the old assignment: the url -> partitions map
alone, no standbys.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

Shares = dict[str, list[int]]  # member url -> partition numbers


def plan(
    partitions: int,
    members: Iterable[str],
    previous: Mapping[str, Sequence[int]],
    previous_standby: Mapping[str, Sequence[int]],
    replicas: int,
) -> tuple[Shares, Shares]:
    """Active and standby partition numbers per member url.

    Actives are balanced (counts differ by at most one; the larger shares go to the
    members that had most). A member keeps what it had; any other partition goes to the
    member that kept its standby if that one has room, else to the first member (in url
    order) with room. With `replicas` 1 and two members or more, each partition has a
    standby on one member other than its owner: the one that had it if it has room, else
    the one with the fewest, the first after the owner in url order on a tie.
    """
    ordered = sorted(set(members))
    count = len(ordered)
    share, extra = divmod(partitions, count)
    by_size = sorted(ordered, key=lambda m: (-len(previous.get(m, ())), m))
    room = {m: share + (1 if i < extra else 0) for i, m in enumerate(by_size)}
    active: Shares = {m: [] for m in ordered}
    owner: dict[int, str] = {}
    for member in ordered:
        kept = sorted({p for p in previous.get(member, ()) if 0 <= p < partitions} - set(owner))
        for p in kept[: room[member]]:
            active[member].append(p)
            owner[p] = member
    holder = _holders(previous_standby, ordered)
    for p in range(partitions):
        if p in owner:
            continue
        warm = holder.get(p)
        member = (
            warm
            if warm is not None and len(active[warm]) < room[warm]
            else next(m for m in ordered if len(active[m]) < room[m])
        )
        active[member].append(p)
        owner[p] = member
    standby: Shares = {m: [] for m in ordered}
    if replicas < 1 or count < 2:
        return {m: sorted(ps) for m, ps in active.items()}, standby
    cap = math.ceil(partitions / count)
    for p in range(partitions):
        own = ordered.index(owner[p])
        others = [ordered[(own + step) % count] for step in range(1, count)]
        warm = holder.get(p)
        if warm is not None and warm != owner[p] and len(standby[warm]) < cap:
            member = warm
        else:
            member = min(others, key=lambda m: len(standby[m]))  # the first on a tie
        standby[member].append(p)
    return {m: sorted(ps) for m, ps in active.items()}, standby


def _holders(shares: Mapping[str, Sequence[int]], members: list[str]) -> dict[int, str]:
    """Partition -> the member (still in the group) holding it in `shares`."""
    return {p: m for m in members for p in shares.get(m, ())}


def spread(partitions: int, members: list[str]) -> Shares:
    """Contiguous, balanced ranges of partition numbers over the sorted members."""
    return plan(partitions, members, {}, {}, 0)[0]


class CoPartitionAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    """Assigns partition numbers, not topic partitions; carries each member's URL and
    the standby partitions each member keeps warm."""

    name = "kpi-copartition"
    version = 1  # 1: understands the assignment with standbys

    def __init__(self, url: str, standby_replicas: int = 0) -> None:
        self.url = url
        self.standby_replicas = standby_replicas
        self.peers: Shares = {}  # url -> active partitions, from the last assignment
        self.standby_peers: Shares = {}  # url -> standby partitions, from the last assignment

    @property
    def standby(self) -> list[int]:
        """This member's standby partitions in the last assignment."""
        return self.standby_peers.get(self.url, [])

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), self.url.encode())

    def assign(
        self, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = sorted({t for m in members.values() for t in m.subscription})
        counts = {len(cluster.partitions_for_topic(t) or ()) for t in topics}
        if len(counts) != 1:
            raise ValueError(f"input topics are not co-partitioned: {sorted(counts)} partitions")
        urls: dict[str, str] = {}  # member id -> its url (made unique: a url is a key)
        for member in sorted(members):
            url = bytes(members[member].user_data or b"").decode()
            urls[member] = url if url not in urls.values() else f"{url}#{member}"
        upgraded = all(m.version >= 1 for m in members.values())
        replicas = self.standby_replicas if upgraded else 0
        active, standby = plan(
            counts.pop(), urls.values(), self.peers, self.standby_peers, replicas
        )
        data = orjson.dumps({"active": active, "standby": standby} if upgraded else active)
        return {
            member: ConsumerProtocolMemberAssignment(
                self.version,
                [(t, active[urls[member]]) for t in topics if t in m.subscription],
                data,
            )
            for member, m in members.items()
        }

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        data = orjson.loads(assignment.user_data or b"{}")
        if "active" in data:
            self.peers, self.standby_peers = data["active"], data["standby"]
        else:  # from a leader of the version before standbys
            self.peers, self.standby_peers = data, {}
