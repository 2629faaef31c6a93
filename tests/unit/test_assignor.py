"""The group assignor (`stream.runtime.assignor`): actives balanced and sticky, a dead
member's partitions to their standbys, each standby on a member other than the owner.
Expected assignments worked out by hand from the rules in `plan`'s docstring."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from stream.runtime.assignor import CoPartitionAssignor, plan


def test_first_assignment_of_two_members_gives_contiguous_halves_and_swapped_standbys() -> None:
    active, standby = plan(8, ["b", "a"], {}, {}, 1)
    assert active == {"a": [0, 1, 2, 3], "b": [4, 5, 6, 7]}
    assert standby == {"a": [4, 5, 6, 7], "b": [0, 1, 2, 3]}


def test_first_assignment_of_three_members_spreads_each_members_standbys() -> None:
    # Sizes 3/3/2. Standby of p: the member with fewest so far, the first after p's owner
    # on a tie: 0 -> b, 1 -> c, 2 -> b (b 1, c 1: b is first after a), 3 -> a, 4 -> c
    # (a 1, c 1: c is first after b), 5 -> a, 6 -> a (a 2, b 2: a is first after c), 7 -> b.
    active, standby = plan(8, ["a", "b", "c"], {}, {}, 1)
    assert active == {"a": [0, 1, 2], "b": [3, 4, 5], "c": [6, 7]}
    assert standby == {"a": [3, 5, 6], "b": [0, 2, 7], "c": [1, 4]}


def test_a_dead_members_partitions_go_to_their_standbys_and_the_others_stay() -> None:
    previous = {"a": [0, 1, 2], "b": [3, 4, 5], "c": [6, 7]}
    previous_standby = {"a": [3, 5, 6], "b": [0, 2, 7], "c": [1, 4]}
    active, standby = plan(8, ["a", "b"], previous, previous_standby, 1)
    assert active == {"a": [0, 1, 2, 6], "b": [3, 4, 5, 7]}  # 6 was on a, 7 on b
    # Kept where they were when the holder is not the owner now; c's (1, 4) to the other.
    assert standby == {"a": [3, 4, 5, 7], "b": [0, 1, 2, 6]}


def test_a_standby_holder_without_room_leaves_the_partition_to_the_first_with_room() -> None:
    # c dies; both of its partitions had their standby on a, which has room for one.
    previous = {"a": [0, 1, 2], "b": [3, 4, 5], "c": [6, 7]}
    active, _ = plan(8, ["a", "b"], previous, {"a": [6, 7]}, 1)
    assert active == {"a": [0, 1, 2, 6], "b": [3, 4, 5, 7]}


def test_a_new_member_takes_partitions_from_the_fullest_and_the_rest_stay() -> None:
    # 8 over 3: a and b had most, so they keep 3 each (their lowest); 3 and 7 go to c.
    previous = {"a": [0, 1, 2, 3], "b": [4, 5, 6, 7]}
    active, standby = plan(8, ["a", "b", "c"], previous, {"a": [4, 5, 6, 7], "b": [0, 1, 2, 3]}, 1)
    assert active == {"a": [0, 1, 2], "b": [4, 5, 6], "c": [3, 7]}
    # Standbys (at most 3 each while a choice is left): 0, 1, 2 stay on b (b full);
    # 3 (owner c; b full) -> a; 4, 5 stay on a (a full); 6 (owner b; a full) -> c;
    # 7 (owner c; a and b full) -> the fewer of a and b, a on the tie (first after c).
    assert standby == {"a": [3, 4, 5, 7], "b": [0, 1, 2], "c": [6]}


@pytest.mark.parametrize("members", [["a"], ["a", "b"], ["a", "b", "c"], list("abcdefgh")])
def test_every_partition_has_one_owner_and_a_standby_elsewhere(members: list[str]) -> None:
    active, standby = plan(8, members, {}, {}, 1)
    owned = sorted(p for ps in active.values() for p in ps)
    assert owned == list(range(8))
    sizes = {len(ps) for ps in active.values()}
    assert max(sizes) - min(sizes) <= 1
    kept = sorted(p for ps in standby.values() for p in ps)
    assert kept == ([] if len(members) == 1 else list(range(8)))
    for member in members:
        assert not set(active[member]) & set(standby[member])


def test_without_replicas_no_standbys() -> None:
    active, standby = plan(8, ["a", "b"], {}, {}, 0)
    assert active == {"a": [0, 1, 2, 3], "b": [4, 5, 6, 7]}
    assert standby == {"a": [], "b": []}


def member(url: str, version: int = 1) -> ConsumerProtocolMemberMetadata:
    return ConsumerProtocolMemberMetadata(version, ["in"], url.encode())


CLUSTER = SimpleNamespace(partitions_for_topic=lambda topic: set(range(4)))


def test_the_assignment_carries_active_and_standby_maps_to_every_member() -> None:
    leader = CoPartitionAssignor("http://a", standby_replicas=1)
    result = leader.assign(CLUSTER, {"m2": member("http://b"), "m1": member("http://a")})
    assert result["m1"].assignment == [("in", [0, 1])]
    assert result["m2"].assignment == [("in", [2, 3])]
    follower = CoPartitionAssignor("http://b", standby_replicas=1)
    follower.on_assignment(result["m2"])
    assert follower.peers == {"http://a": [0, 1], "http://b": [2, 3]}
    assert follower.standby == [0, 1]


def test_a_member_of_the_version_before_standbys_gets_the_old_assignment() -> None:
    leader = CoPartitionAssignor("http://a", standby_replicas=1)
    result = leader.assign(CLUSTER, {"m1": member("http://a"), "m2": member("http://b", 0)})
    assert orjson.loads(result["m2"].user_data) == {"http://a": [0, 1], "http://b": [2, 3]}
    leader.on_assignment(result["m1"])
    assert leader.peers == {"http://a": [0, 1], "http://b": [2, 3]}
    assert leader.standby == []


def test_two_members_with_one_url_never_share_partitions() -> None:
    leader = CoPartitionAssignor("http://a")
    result = leader.assign(CLUSTER, {"m1": member("http://a"), "m2": member("http://a")})
    assert result["m1"].assignment == [("in", [0, 1])]
    assert result["m2"].assignment == [("in", [2, 3])]
