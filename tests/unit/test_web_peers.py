"""The peer view: what a peer may ask, the cluster token, and the fan-out's merge rules."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from stream.kpi.centre import CentreSnapshot
from stream.kpi.snapshot import Live, Snapshot
from stream.web import peers as peers_module
from stream.web.peers import (
    CLOCK_BAND_MS,
    PEER_PATH,
    SNAPSHOT_CACHE_S,
    SNAPSHOT_FRESH_S,
    BadPeerRequest,
    PeerView,
    authorized,
    peer_instant,
)

OWN = 1_795_341_630_000  # 2026-11-22T10:00:30Z
CELL = 3  # cells of 3 counters in these tests


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        pytest.param(str(OWN), OWN, id="same-instant"),
        pytest.param(str(OWN - 1500), OWN - 1500, id="behind-by-the-fan-out-latency"),
        pytest.param(str(OWN - 10_000), OWN - 10_000, id="behind-at-the-band-edge"),
        pytest.param(str(OWN + 1), OWN, id="ahead-by-1ms-gets-our-clock"),
        pytest.param(str(OWN + 10_000), OWN, id="ahead-at-the-band-edge-gets-our-clock"),
    ],
)
def test_peer_instant_is_within_the_band_and_never_after_our_clock(
    asked: str, expected: int
) -> None:
    assert CLOCK_BAND_MS == 10_000
    assert peer_instant(asked, OWN) == expected


@pytest.mark.parametrize(
    "asked",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param(str(OWN + 10_001), id="ahead-past-the-band"),
        pytest.param(str(OWN - 10_001), id="behind-past-the-band"),
        pytest.param("253402300800000", id="year-10000"),
        pytest.param("99999999999999999999999999", id="huge"),
        pytest.param("-1", id="negative"),
        pytest.param("0", id="epoch-zero"),
        pytest.param("1.7e12", id="float"),
        pytest.param(" 1795341630000", id="leading-space"),
        pytest.param("١٧٩٥٣٤١٦٣٠٠٠٠", id="arabic-indic-digits"),
    ],
)
def test_peer_instant_out_of_range_or_malformed_is_refused(asked: str | None) -> None:
    with pytest.raises(BadPeerRequest):
        peer_instant(asked, OWN)


@pytest.mark.parametrize(
    ("header", "token", "allowed"),
    [
        pytest.param(None, None, True, id="no-token-set"),
        pytest.param("Bearer anything", None, True, id="no-token-set-header-ignored"),
        pytest.param("Bearer s3cret", "s3cret", True, id="right-token"),
        pytest.param(None, "s3cret", False, id="missing"),
        pytest.param("Bearer s3cre", "s3cret", False, id="prefix"),
        pytest.param("Bearer s3cret ", "s3cret", False, id="trailing-space"),
        pytest.param("s3cret", "s3cret", False, id="without-scheme"),
        pytest.param("Bearer S3CRET", "s3cret", False, id="case"),
        pytest.param("Bearer ünïcode", "ünïcode", True, id="non-ascii-token"),
    ],
)
def test_cluster_token(header: str | None, token: str | None, allowed: bool) -> None:
    assert authorized(header, token) is allowed


def part(
    partitions: set[int], open_tickets: int, now_ms: int = OWN, per_agent: bool = True
) -> Snapshot:
    centre = CentreSnapshot(per_agent=per_agent)
    snapshot = Snapshot(now_ms, partitions=frozenset(partitions), centre=centre)
    snapshot.live[("billing", "email", "normal")] = Live(open=open_tickets)
    snapshot.windows["1h"][("billing", "email", "normal")] = [open_tickets, 0, 1]
    return snapshot


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def own_part(partitions: set[int], open_tickets: int) -> Callable[[int], Awaitable[Snapshot]]:
    """This worker's snapshot function over `part`."""

    async def local(now_ms: int, per_agent: bool) -> Snapshot:
        return part(partitions, open_tickets, now_ms, per_agent)

    return local


async def peer_server(handler: Handler) -> TestServer:
    app = web.Application()
    app.router.add_get(PEER_PATH, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def answering(snapshot: Snapshot, seen: list[web.Request] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        if seen is not None:
            seen.append(request)
        return web.Response(body=snapshot.to_json(), content_type="application/json")

    return handler


async def test_fan_out_merges_peers_and_sends_our_instant_and_the_token() -> None:
    seen: list[web.Request] = []
    other = await peer_server(answering(part({2, 3}, 5), seen))
    try:
        view = PeerView(
            own_part({0, 1}, 7),
            lambda: [str(other.make_url("/")), "http://own:1/"],
            "http://own:1",
            4,
            "s3cret",
            CELL,
            lambda: 0,
        )
        local, system = await view.current(per_agent=True)
        await view.close()
    finally:
        await other.close()
    assert local.partitions == {0, 1}
    assert system.partitions == {0, 1, 2, 3}
    assert system.live[("billing", "email", "normal")].open == 12
    assert system.windows["1h"][("billing", "email", "normal")] == [12, 0, 2]
    assert len(seen) == 1  # the own URL is not asked
    assert seen[0].query["now_ms"] == str(local.now_ms)
    assert seen[0].headers["Authorization"] == "Bearer s3cret"
    assert seen[0].query["per_agent"] == "1"


async def system_beside(handler: Handler) -> Snapshot:
    """The system snapshot of a worker owning partitions 0 and 1 (of 4) beside one peer."""
    other = await peer_server(handler)
    try:
        view = PeerView(
            own_part({0, 1}, 7), lambda: [str(other.make_url(""))], "x", 4, None, CELL, lambda: 0
        )
        _, system = await view.current(per_agent=True)
        await view.close()
    finally:
        await other.close()
    return system


@pytest.mark.parametrize(
    ("peer_partitions", "covered"),
    [
        pytest.param({1, 2}, {0, 1}, id="overlapping-partitions-skipped"),
        pytest.param({7}, {0, 1}, id="partition-beyond-the-topic-skipped"),
        pytest.param({2}, {0, 1, 2}, id="a-missing-partition-is-just-not-covered"),
    ],
)
async def test_fan_out_leaves_out_what_does_not_fit(
    peer_partitions: set[int], covered: set[int]
) -> None:
    system = await system_beside(answering(part(peer_partitions, 5)))
    assert system.partitions == covered


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>", id="not-json"),
        pytest.param(b"{}", id="empty-object"),
        pytest.param(b'{"now_ms": 1, "partitions": [2], "windows": {"15m": 5}, "live": []}', id="types"),
        pytest.param(b'{"now_ms": 1, "partitions": [2], "windows": [], "live": []}', id="list"),
        pytest.param(b'{"now_ms": 1, "partitions": [2], "windows": {"1h": [["q", "c", "p", [1]]]}, "live": []}', id="short-cell"),
        pytest.param(b'{"now_ms": 1, "partitions": [2], "windows": {"1h": [["q", "c", "p", [1, 2, "3"]]]}, "live": []}', id="text-in-cell"),
        pytest.param(b'{"now_ms": 1, "partitions": [2], "windows": {"2h": []}, "live": []}', id="unknown-window"),
        pytest.param(b'{"now_ms": 1, "partitions": [2], "windows": {}, "live": [["q", "c", "p", 1.5, 0, 0, 0, null]]}', id="float-live"),
    ],
)  # fmt: skip
async def test_a_peer_answering_junk_leaves_its_partitions_uncovered(body: bytes) -> None:
    async def junk(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    system = await system_beside(junk)
    assert system.partitions == {0, 1}
    assert system.live[("billing", "email", "normal")].open == 7


async def test_an_unreachable_peer_leaves_its_partitions_uncovered() -> None:
    view = PeerView(own_part({0}, 1), lambda: ["http://127.0.0.1:9"], "x", 2, None, CELL, lambda: 0)
    _, system = await view.current(per_agent=True)
    await view.close()
    assert system.partitions == {0}


async def test_a_snapshot_is_reused_while_nothing_is_applied_and_retaken_once_something_is() -> (
    None
):
    taken: list[int] = []
    applied = 0

    async def local(now_ms: int, _: bool) -> Snapshot:
        taken.append(now_ms)
        return part({0}, len(taken), now_ms)

    view = PeerView(local, lambda: [], "x", 1, None, CELL, lambda: applied)
    first = (await view.current(per_agent=True))[1]
    assert (await view.current(per_agent=True))[1] is first  # nothing applied since: reused
    applied = 10
    await asyncio.sleep(SNAPSHOT_FRESH_S + 0.01)
    second = (await view.current(per_agent=True))[1]
    assert second is not first and len(taken) == 2
    assert second.live[("billing", "email", "normal")].open == 2
    await asyncio.sleep(SNAPSHOT_CACHE_S + 0.01)
    third = (await view.current(per_agent=True))[1]  # nothing applied, but the clock moved on
    assert third is not second and len(taken) == 3
    await view.close()


async def test_a_slow_snapshot_is_reused_for_four_times_as_long_as_it_took_up_to_250_ms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """So scrapes take at most about a fifth of the worker's time (a clock of the test's)."""
    clock = [100.0]
    monkeypatch.setattr(peers_module, "monotonic", lambda: clock[0])
    taken: list[int] = []

    async def slow(now_ms: int, _: bool) -> Snapshot:
        taken.append(now_ms)
        clock[0] += 0.03  # it takes 30 ms: reused for 120 ms
        return part({0}, len(taken), now_ms)

    view = PeerView(slow, lambda: [], "x", 1, None, CELL, lambda: len(taken))  # always changed
    first = (await view.current(per_agent=True))[1]
    clock[0] += 0.1
    assert (await view.current(per_agent=True))[1] is first
    clock[0] += 0.03
    second = (await view.current(per_agent=True))[1]
    assert second is not first and len(taken) == 2
    took_long = 0.2  # a snapshot of 200 ms is reused for 250 ms, not 800 ms

    async def slower(now_ms: int, _: bool) -> Snapshot:
        taken.append(now_ms)
        clock[0] += took_long
        return part({0}, len(taken), now_ms)

    view = PeerView(slower, lambda: [], "x", 1, None, CELL, lambda: len(taken))
    third = (await view.current(per_agent=True))[1]
    clock[0] += SNAPSHOT_CACHE_S - 0.01
    assert (await view.current(per_agent=True))[1] is third
    clock[0] += 0.02
    assert (await view.current(per_agent=True))[1] is not third
    await view.close()


async def test_per_agent_cells_are_taken_only_when_asked_and_such_a_snapshot_serves_both() -> None:
    taken: list[bool] = []

    async def local(now_ms: int, per_agent: bool) -> Snapshot:
        taken.append(per_agent)
        return part({0}, len(taken), now_ms, per_agent)

    view = PeerView(local, lambda: [], "x", 1, None, CELL, lambda: 0)  # nothing applied
    without = (await view.current(per_agent=False))[1]
    assert not without.centre.per_agent
    assert (await view.current(per_agent=False))[1] is without
    with_agents = (await view.current(per_agent=True))[1]  # the cached one lacks them
    assert with_agents.centre.per_agent
    assert (await view.current(per_agent=False))[1] is with_agents  # a superset serves
    assert taken == [False, True]
    await view.close()


async def test_a_peer_is_asked_for_per_agent_cells_only_when_they_are_wanted() -> None:
    seen: list[web.Request] = []
    other = await peer_server(answering(part({1}, 5, per_agent=False), seen))
    try:
        view = PeerView(
            own_part({0}, 7), lambda: [str(other.make_url(""))], "x", 2, None, CELL, lambda: 0
        )
        _, system = await view.current(per_agent=False)
        assert seen[-1].query["per_agent"] == "0"
        assert system.partitions == {0, 1} and not system.centre.per_agent
        assert system.live[("billing", "email", "normal")].open == 12
        await asyncio.sleep(SNAPSHOT_CACHE_S + 0.01)
        # Asked for them, the peer answers without: its partitions are left out.
        _, system = await view.current(per_agent=True)
        assert seen[-1].query["per_agent"] == "1"
        assert system.partitions == {0} and system.centre.per_agent
        await view.close()
    finally:
        await other.close()
