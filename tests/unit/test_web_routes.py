"""The web layer in-process (aiohttp's test client) over a real processor.

The worker around the processor is a plain object with what the routes read of the
runtime (`stream.web.server.Worker`): settings, serving, owned partitions, staleness,
peers and lag. Expected values are worked out by hand from the events below.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from stream.config import Settings
from stream.kpi.settings import KpiConfig
from stream.kpi.snapshot import Snapshot
from stream.processor import Processor
from stream.runtime.loop import EntityProcessor
from stream.web.server import Routes, peer_view

MINUTE = 60_000
TOKEN = "s3cret"


def wall() -> int:
    return time.time_ns() // 1_000_000


def kafka_partition(key: str, partitions: int) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@dataclass
class FakeWorker:
    """The runtime's side of a worker, with a real processor inside."""

    settings: Settings
    processor: EntityProcessor
    serving: bool = True
    owned: frozenset[int] = frozenset()
    stale: str | None = None
    members: dict[str, list[int]] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.serving and self.stale != "broker_unreachable"

    def stale_reason(self) -> str | None:
        return self.stale

    def peers(self) -> Mapping[str, object]:
        return self.members

    def lag(self) -> dict[TopicPartition, int]:
        return {TopicPartition("cs.ticket.opened", p): 0 for p in sorted(self.owned)}


def ticket_events(ticket: str, now: int) -> list[tuple[str, dict[str, object]]]:
    """Opened 20 min ago, first reply 10 min ago: FRT 600 s, within the normal target."""
    common = {"ticket_id": ticket}
    return [
        (
            "cs.ticket.opened",
            {
                **common,
                "event_id": f"{ticket}-o",
                "type": "ticket.opened",
                "occurred_at": now - 20 * MINUTE,
                "queue": "billing",
                "channel": "email",
                "priority": "normal",
            },
        ),
        (
            "cs.ticket.first_reply",
            {
                **common,
                "event_id": f"{ticket}-r",
                "type": "ticket.first_reply",
                "occurred_at": now - 10 * MINUTE,
            },
        ),
    ]


def worker_with(
    tickets: list[str], partitions: int, owned: set[int], **settings: object
) -> FakeWorker:
    now = wall()
    processor = Processor(KpiConfig(), ZoneInfo("UTC"), partitions, now)
    processor.assign(owned)
    for ticket in tickets:
        partition = kafka_partition(ticket, partitions)
        if partition not in owned:
            continue
        for topic, event in ticket_events(ticket, now):
            processor.handle(topic, partition, ticket.encode(), orjson.dumps(event), now)
    merged = {"partitions": partitions, "web_host": "127.0.0.1", **settings}
    return FakeWorker(Settings(**merged), processor, owned=frozenset(owned))  # type: ignore[arg-type]


async def client_of(worker: FakeWorker) -> TestClient:
    view = peer_view(worker)
    client = TestClient(TestServer(Routes(worker, view).app()))
    await client.start_server()
    return client


@pytest.fixture
async def single() -> AsyncIterator[tuple[FakeWorker, TestClient]]:
    worker = worker_with(["T-1", "T-2"], 1, {0}, cluster_token=TOKEN)
    client = await client_of(worker)
    yield worker, client
    await client.close()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_api_kpis_document(single: tuple[FakeWorker, TestClient]) -> None:
    _, client = single
    response = await client.get("/api/kpis")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    document = await response.json()
    assert (document["stale"], document["stale_reason"], document["complete"]) == (
        False,
        None,
        True,
    )
    assert document["partitions"] == {"covered": 1, "total": 1}
    hour = document["windows"]["1h"]["overall"]
    assert hour["first_responses"] == 2
    assert hour["first_response_time_average_seconds"] == 600
    assert hour["first_response_sla_attainment_ratio"] == 1
    assert document["live"]["open"] == 2
    assert document["live"]["awaiting"] == {"ok": 0, "at_risk": 0, "breached": 0}


async def test_api_kpis_says_what_the_worker_says_about_staleness(
    single: tuple[FakeWorker, TestClient],
) -> None:
    worker, client = single
    worker.stale = "broker_unreachable"
    document = await (await client.get("/api/kpis")).json()
    assert (document["stale"], document["stale_reason"]) == (True, "broker_unreachable")
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["stale_reason"] == "broker_unreachable"


async def test_api_agents_carries_the_freshness_and_levels_of_api_kpis(
    single: tuple[FakeWorker, TestClient],
) -> None:
    """The agents view needs what the wallboard needs to say stale, partial and too few."""
    worker, client = single
    response = await client.get("/api/agents")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    document = await response.json()
    assert document["agents"] == []  # tickets without agents: nobody to list
    assert (document["stale"], document["stale_reason"], document["complete"]) == (
        False,
        None,
        True,
    )
    assert document["partitions"] == {"covered": 1, "total": 1}
    assert (document["timezone"], document["min_answers"]) == ("UTC", 20)
    assert document["thresholds"]["csat_ratio"] == {
        "direction": "higher_is_better",
        "green": 0.85,
        "amber": 0.8,
    }
    worker.stale = "no_progress"
    document = await (await client.get("/api/agents")).json()
    assert (document["stale"], document["stale_reason"]) == (True, "no_progress")


async def test_metrics_serve_gauges_components_and_health(
    single: tuple[FakeWorker, TestClient],
) -> None:
    _, client = single
    response = await client.get("/metrics")
    assert response.status == 200
    found = samples(await response.text())
    assert found["cs_first_response_time_average_seconds", frozenset({("window", "1h")})] == 600
    events = {
        dict(labels)["outcome"]: value
        for (name, labels), value in found.items()
        if name == "cs_events_total" and ("topic", "cs.ticket.opened") in labels
    }
    assert events == {"accepted": 2, "duplicate": 0, "rejected": 0}
    reasons = {
        dict(labels)["reason"]
        for (name, labels), _ in found.items()
        if name == "cs_events_rejected_total"
    }
    assert {"invalid_json", "key_mismatch", "invalid_timestamp"} <= reasons
    assert found["cs_partitions_assigned", frozenset()] == 1
    assert found["cs_kpi_partitions_covered", frozenset()] == 1


async def test_healthz_and_readyz(single: tuple[FakeWorker, TestClient]) -> None:
    worker, client = single
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"ready": True, "partitions": [0], "stale_reason": None}
    worker.serving = False
    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/healthz")).status == 200


async def test_wallboard_and_static_files(single: tuple[FakeWorker, TestClient]) -> None:
    _, client = single
    page = await client.get("/")
    assert page.status == 200
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    agents = await client.get("/agents")
    assert agents.status == 200
    assert agents.headers["Content-Security-Policy"] == page.headers["Content-Security-Policy"]
    assert await agents.read() == await page.read()  # one page; the script picks the board
    assert (await client.get("/static/wallboard.js")).status == 200
    assert (await client.get("/static/..%2Fserver.py")).status == 404
    assert (await client.get("/static/server.py")).status == 404


def peer_url(now_ms: int | str) -> str:
    return f"/internal/snapshot?now_ms={now_ms}"


BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="no-token"),
        pytest.param({"Authorization": "Bearer wrong"}, 401, id="wrong-token"),
        pytest.param({"Authorization": TOKEN}, 401, id="token-without-scheme"),
        pytest.param(BEARER, 200, id="right-token"),
    ],
)
async def test_peer_endpoint_requires_the_cluster_token_when_set(
    single: tuple[FakeWorker, TestClient], headers: dict[str, str], status: int
) -> None:
    _, client = single
    response = await client.get(peer_url(wall()), headers=headers)
    assert response.status == status


async def test_peer_endpoint_is_open_without_a_token_set() -> None:
    worker = worker_with(["T-1"], 1, {0})
    client = await client_of(worker)
    try:
        assert (await client.get(peer_url(wall()))).status == 200
    finally:
        await client.close()


@pytest.mark.parametrize(
    "now_ms",
    [
        pytest.param("253402300799999", id="far-future"),
        pytest.param("99999999999999999999999", id="huge"),
        pytest.param("-5", id="negative"),
        pytest.param("0", id="zero"),
        pytest.param("1e12", id="float"),
        pytest.param("", id="empty"),
        pytest.param("now", id="word"),
    ],
)
async def test_out_of_range_peer_instant_is_400_and_changes_nothing(
    single: tuple[FakeWorker, TestClient], now_ms: str
) -> None:
    worker, client = single
    before = await (await client.get("/api/kpis")).json()
    response = await client.get(peer_url(now_ms), headers=BEARER)
    assert response.status == 400
    worker.processor.snapshot(wall())  # the windows where the own clock puts them
    after = await (await client.get("/api/kpis")).json()
    assert after["windows"] == before["windows"]
    assert after["windows"]["1h"]["overall"]["first_responses"] == 2


async def test_a_peer_clock_ahead_within_the_band_gets_our_own_instant(
    single: tuple[FakeWorker, TestClient],
) -> None:
    _, client = single
    asked = wall() + 9_000
    response = await client.get(peer_url(asked), headers=BEARER)
    assert response.status == 200
    answered = Snapshot.from_json(await response.read())
    assert answered.now_ms < asked - 8_000  # our clock, not the peer's
    assert answered.now_ms <= wall()


async def test_peer_endpoint_sends_per_agent_cells_unless_told_not_to(
    single: tuple[FakeWorker, TestClient],
) -> None:
    """Both first replies name no agent: two first responses of `unassigned` in 1h."""
    _, client = single
    now = wall()
    full = Snapshot.from_json(await (await client.get(peer_url(now), headers=BEARER)).read())
    assert full.centre.per_agent
    assert full.centre.tickets_by_agent["1h"]["unassigned"][1] == 2  # Layout.FRT_COUNT
    response = await client.get(f"{peer_url(now)}&per_agent=0", headers=BEARER)
    lean = Snapshot.from_json(await response.read())
    assert not lean.centre.per_agent
    assert lean.centre.tickets_by_agent == {w: {} for w in ("15m", "1h", "today", "24h")}
    assert lean.windows == full.windows and lean.live == full.live


async def test_peer_endpoint_answers_503_while_recovering(
    single: tuple[FakeWorker, TestClient],
) -> None:
    worker, client = single
    worker.serving = False
    assert (await client.get(peer_url(wall()), headers=BEARER)).status == 503


async def test_two_workers_fan_out_to_each_other_and_agree() -> None:
    tickets = [f"T-{n}" for n in range(12)]
    first = worker_with(tickets, 2, {0}, cluster_token=TOKEN)
    second = worker_with(tickets, 2, {1}, cluster_token=TOKEN)
    clients = [await client_of(first), await client_of(second)]
    try:
        first.members = {str(clients[1].make_url("")): [1]}
        second.members = {str(clients[0].make_url("")): [0]}
        found = [samples(await (await c.get("/metrics")).text()) for c in clients]
    finally:
        for client in clients:
            await client.close()
    for one in found:
        assert one["cs_kpi_partitions_covered", frozenset()] == 2
        assert one["cs_first_response_time_average_seconds", frozenset({("window", "1h")})] == 600
    components = [
        sum(v for (name, labels), v in one.items() if name == "cs_tickets_open") for one in found
    ]
    owned = [sum(kafka_partition(t, 2) == p for t in tickets) for p in (0, 1)]
    assert components == owned  # each exports its own partitions' tickets
    assert sum(components) == 12


async def test_stopping_the_web_server_closes_the_session_to_the_peers() -> None:
    """The application owns the peer session: it is closed once the last request has
    ended (it was left open, and aiohttp warned "Unclosed client session")."""
    first = worker_with(["T-1"], 2, {0}, cluster_token=TOKEN)
    second = worker_with(["T-1"], 2, {1}, cluster_token=TOKEN)
    view = peer_view(first)
    client = TestClient(TestServer(Routes(first, view).app()))
    await client.start_server()
    other = await client_of(second)
    try:
        first.members = {str(other.make_url("")): [1]}
        assert (await client.get("/metrics")).status == 200
        assert view.session is not None and not view.session.closed
    finally:
        await client.close()
        await other.close()
    assert view.session.closed
