"""The worker's web server: wallboard, /api/kpis, /metrics, /healthz, /readyz.

System-wide numbers come from a fan-out: this worker asks every other worker (their URLs
come with the group assignment, see `stream.runtime.assignor`) for the snapshot of its own
partitions at the same instant, and merges them. Partitions covered twice or not at all make the result incomplete.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any, Final

import aiohttp
import orjson
from aiohttp import web
from aiokafka.structs import TopicPartition
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from stream.centre_api import agents_document, contact_centre_document
from stream.centre_metrics import local_families, system_families
from stream.events import REASONS
from stream.kpi.contrib import Layout
from stream.kpi.gauges import kpis, total
from stream.kpi.snapshot import Live, Snapshot
from stream.kpi.windows import from_ms
from stream.metrics import components, kpi_gauges
from stream.processor import REASONS as PROCESSOR_REASONS
from stream.runtime.loop import Runtime
from stream.web.assets import STATIC_FILES, read_static

log = logging.getLogger(__name__)

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "font-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
PEER_TIMEOUT_S: Final = 1.5
SNAPSHOT_CACHE_S: Final = 0.25


class SystemView:
    """Snapshots of this worker's partitions and of the whole system, at one instant."""

    def __init__(self, kpi: Runtime) -> None:
        self.kpi = kpi
        self.session: aiohttp.ClientSession | None = None
        self._cached: tuple[float, Snapshot, Snapshot] | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> tuple[Snapshot, Snapshot]:
        """(local, system) snapshots now, reusing one computed in the last 250 ms."""
        async with self._lock:
            cached = self._cached
            if cached is not None and time.monotonic() - cached[0] < SNAPSHOT_CACHE_S:
                return cached[1], cached[2]
            now_ms = time.time_ns() // 1_000_000
            local = self.kpi.processor.snapshot(now_ms) if self.kpi.serving else Snapshot(now_ms)
            system = await self._system(local)
            self._cached = (time.monotonic(), local, system)
            return local, system

    async def _system(self, local: Snapshot) -> Snapshot:
        system = Snapshot(local.now_ms)
        system.merge(local)
        own = self.kpi.settings.web_url.rstrip("/")
        peers = [u.rstrip("/") for u in self.kpi.peers()]
        peers = [u for u in peers if u != own]
        parts = await asyncio.gather(*(self._peer(u, local.now_ms) for u in peers))
        for part in parts:
            if part is None:
                continue
            if part.partitions & system.partitions:
                log.warning("partitions %s reported twice; skipped", sorted(part.partitions))
                continue
            system.merge(part)
        return system

    async def _peer(self, url: str, now_ms: int) -> Snapshot | None:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        try:
            async with self.session.get(
                f"{url}/internal/snapshot",
                params={"now_ms": str(now_ms)},
                timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT_S),
            ) as response:
                response.raise_for_status()
                return Snapshot.from_json(await response.read())
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            log.warning("peer %s did not answer: %r", url, exc)
            return None

    async def close(self) -> None:
        """Close the peer HTTP session."""
        if self.session is not None:
            await self.session.close()


class HealthCollector:
    """Pipeline health of this worker: events by outcome, rejections, lag, coverage."""

    def __init__(self, kpi: Runtime, system: Snapshot, lag: dict[TopicPartition, int]) -> None:
        self.kpi, self.system, self.lag = kpi, system, lag

    def collect(self) -> Iterator[Metric]:
        processor = self.kpi.processor
        prefix = self.kpi.settings.topic_prefix
        events = CounterMetricFamily(
            "cs_events", "Events consumed, by outcome", labels=["topic", "outcome"]
        )
        for topic in processor.topics:
            for outcome in ("accepted", "duplicate", "rejected"):
                events.add_metric([prefix + topic, outcome], processor.events[topic, outcome])
        rejected = CounterMetricFamily(
            "cs_events_rejected",
            "Events sent to the dead-letter topic, by reason",
            labels=["topic", "reason"],
        )
        for topic in processor.topics:
            for reason in (*REASONS, *PROCESSOR_REASONS):
                rejected.add_metric([prefix + topic, reason], processor.rejections[topic, reason])
        yield from (events, rejected)
        last = GaugeMetricFamily(
            "cs_last_event_occurred_timestamp_seconds", "Largest occurred_at of the accepted events"
        )
        if processor.last_event_occurred_ms is not None:
            last.add_metric([], processor.last_event_occurred_ms / 1000)
        processed = GaugeMetricFamily(
            "cs_last_event_processed_timestamp_seconds",
            "Wall-clock time this worker last handled an event (its start time before the first)",
            value=processor.last_processed_ms / 1000,
        )
        lag = GaugeMetricFamily(
            "cs_consumer_lag_messages", "Messages not yet processed", labels=["topic", "partition"]
        )
        for tp, messages in sorted(self.lag.items()):
            lag.add_metric([tp.topic, str(tp.partition)], messages)
        yield from (last, processed, lag)
        yield GaugeMetricFamily(
            "cs_partitions_assigned",
            "Partitions this worker owns",
            value=len(self.kpi.owned) if self.kpi.serving else 0,
        )
        yield GaugeMetricFamily(
            "cs_kpi_partitions_covered",
            "Partitions the system-wide KPI gauges were computed over",
            value=len(self.system.partitions),
        )
        yield GaugeMetricFamily(
            "cs_kpi_partitions_total",
            "Partitions of the input topics",
            value=self.kpi.settings.partitions,
        )


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


def api_document(system: Snapshot, kpi: Runtime) -> dict[str, Any]:
    """The wallboard's JSON: KPIs per window (overall and per queue) and live SLA state."""
    size = kpi.processor.layout.size
    windows = {}
    for name, cells in system.windows.items():
        by_queue: dict[str, list[list[int]]] = {}
        for (queue, _, _), cell in cells.items():
            by_queue.setdefault(queue, []).append(cell)
        windows[name] = {
            "overall": _kpi_row(total(cells.values(), size)),
            "queues": [
                {"queue": q, **_kpi_row(total(c, size))} for q, c in sorted(by_queue.items())
            ],
        }
    overall, queues = Live(), dict[str, Live]()
    for (queue, _, _), live in system.live.items():
        overall.add(live)
        queues.setdefault(queue, Live()).add(live)
    return {
        "as_of": _rfc3339(system.now_ms),
        "stale": kpi.stale_reason() is not None,
        "stale_reason": kpi.stale_reason(),
        "complete": len(system.partitions) == kpi.settings.partitions,
        "partitions": {"covered": len(system.partitions), "total": kpi.settings.partitions},
        "timezone": str(kpi.settings.timezone),
        "windows": windows,
        "live": {
            **_live_row(overall, system.now_ms),
            "queues": [
                {"queue": q, **_live_row(v, system.now_ms)} for q, v in sorted(queues.items())
            ],
        },
        "thresholds": kpi.settings.kpi.thresholds,
        "contact_centre": contact_centre_document(system.centre, system.now_ms),
    }


def _kpi_row(cell: list[int]) -> dict[str, Any]:
    return {
        **kpis(cell),
        "first_responses": cell[Layout.FRT_COUNT],
        "resolutions": cell[Layout.RES_COUNT],
        "csat_responses": cell[Layout.CSAT_COUNT],
        "nps_responses": sum(cell[Layout.NPS : Layout.NPS + 3]),
    }


def _live_row(live: Live, now_ms: int) -> dict[str, Any]:
    oldest = live.oldest_awaiting
    return {
        "open": live.open,
        "awaiting": {"ok": live.ok, "at_risk": live.at_risk, "breached": live.breached},
        "oldest_awaiting_opened_at": None
        if oldest is None
        else from_ms(oldest).isoformat().replace("+00:00", "Z"),
        "oldest_awaiting_age_seconds": None if oldest is None else max(0, now_ms - oldest) / 1000,
    }


class WebServer:
    """aiohttp server of one worker."""

    def __init__(self, kpi: Runtime) -> None:
        self.kpi = kpi
        self.view = SystemView(kpi)
        self.runner: web.AppRunner | None = None

    def routes(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application()
        app.router.add_get("/", self.wallboard)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/api/kpis", self.api_kpis)
        app.router.add_get("/api/agents", self.api_agents)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/internal/snapshot", self.internal_snapshot)
        return app

    async def start(self) -> None:
        """Listen on KPI_WEB_HOST:KPI_WEB_PORT."""
        self.runner = web.AppRunner(self.routes(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.kpi.settings.web_host, self.kpi.settings.web_port)
        await site.start()
        log.info("web server on %s", self.kpi.settings.web_url)

    async def stop(self) -> None:
        """Close the peer session and the listener."""
        await self.view.close()
        if self.runner is not None:
            await self.runner.cleanup()

    async def wallboard(self, _: web.Request) -> web.Response:
        return web.Response(
            body=read_static("wallboard.html"),
            content_type="text/html",
            charset="utf-8",
            headers=SECURITY_HEADERS,
        )

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(
            body=read_static(name), content_type=STATIC_FILES[name], headers=SECURITY_HEADERS
        )

    async def api_kpis(self, _: web.Request) -> web.Response:
        system = (await self.view.current())[1]
        capped = system.cap_queues(self.kpi.settings.kpi.max_queues)
        return web.Response(
            body=orjson.dumps(api_document(capped, self.kpi)),
            content_type="application/json",
            headers={"Cache-Control": "no-store", **SECURITY_HEADERS},
        )

    async def api_agents(self, _: web.Request) -> web.Response:
        system = (await self.view.current())[1]
        return web.Response(
            body=orjson.dumps(agents_document(system.centre, system.now_ms)),
            content_type="application/json",
            headers={"Cache-Control": "no-store", **SECURITY_HEADERS},
        )

    async def metrics(self, _: web.Request) -> web.Response:
        local, system = await self.view.current()
        max_queues = self.kpi.settings.kpi.max_queues
        layout = self.kpi.processor.layout
        config = self.kpi.settings.kpi
        families: list[Metric] = []
        if len(system.partitions) == self.kpi.settings.partitions:
            families.extend(kpi_gauges(system.cap_queues(max_queues), layout))
            families.extend(system_families(system, config))
        families.extend(components(local.cap_queues(max_queues), layout))
        families.extend(local_families(local, config, self.kpi.settings.agent_metrics))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed(families))
        registry.register(HealthCollector(self.kpi, system, self.kpi.lag()))
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, _: web.Request) -> web.Response:
        ready = self.kpi.ready
        partitions = sorted(self.kpi.owned) if self.kpi.serving else []
        return web.json_response(
            {"ready": ready, "partitions": partitions, "stale_reason": self.kpi.stale_reason()},
            status=200 if ready else 503,
        )

    async def internal_snapshot(self, request: web.Request) -> web.Response:
        try:
            now_ms = int(request.query["now_ms"])
        except (KeyError, ValueError) as exc:
            raise web.HTTPBadRequest(text="now_ms required") from exc
        if not self.kpi.serving:
            raise web.HTTPServiceUnavailable(text="recovering")
        snapshot = self.kpi.processor.snapshot(now_ms)
        return web.Response(body=snapshot.to_json(), content_type="application/json")


def _rfc3339(ms: int) -> str:
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")
