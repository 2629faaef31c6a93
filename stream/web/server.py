"""The worker's web server: the routes and the listener.

`/` the wallboard and its static files, `/api/kpis` its JSON (`stream.web.model`), `/agents`
the same page showing the agents view, `/api/agents` its JSON,
`/metrics` (`stream.metrics`), `/healthz`, `/readyz`, and `/internal/snapshot`, what
workers ask each other (`stream.web.peers`). No request changes a worker's state.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
from collections.abc import Mapping
from typing import Final, Protocol

import orjson
from aiohttp import web
from aiokafka.structs import TopicPartition
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from stream.centre_metrics import CentreCollector, by_agent_exposition
from stream.config import Settings
from stream.kpi.centre import CentreSnapshot
from stream.kpi.snapshot import Snapshot
from stream.metrics import Health, HealthCollector, exposition_chunks
from stream.runtime.loop import EntityProcessor
from stream.web.assets import STATIC_FILES, read_static
from stream.web.model import agents_api_document, api_document
from stream.web.peers import PEER_PATH, BadPeerRequest, PeerView, authorized, peer_instant, wall_ms

log = logging.getLogger(__name__)

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "font-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Worker(Protocol):
    """What the web layer reads of a worker (`stream.runtime.loop.Runtime`)."""

    settings: Settings
    processor: EntityProcessor
    serving: bool  # partitions assigned and restored
    owned: frozenset[int]

    @property
    def ready(self) -> bool: ...
    def stale_reason(self) -> str | None: ...
    def peers(self) -> Mapping[str, object]: ...
    def lag(self) -> dict[TopicPartition, int]: ...


def peer_view(worker: Worker) -> PeerView:
    """The fan-out over the worker's group members."""

    async def local(now_ms: int, per_agent: bool) -> Snapshot:
        """This worker's snapshot, a partition at a time: the batch loop runs in between."""
        if not worker.serving:
            return Snapshot(now_ms, centre=CentreSnapshot(per_agent=per_agent))
        steps = worker.processor.snapshot_steps(now_ms, per_agent)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                snapshot: Snapshot = done.value
                return snapshot
            await asyncio.sleep(0)

    settings = worker.settings
    return PeerView(
        local,
        lambda: list(worker.peers()),
        settings.web_url,
        settings.partitions,
        settings.cluster_token,
        worker.processor.layout.size,
        lambda: sum(worker.processor.events.values()),
    )


class Routes:
    """The request handlers of one worker."""

    def __init__(self, worker: Worker, view: PeerView) -> None:
        self.worker, self.view = worker, view

    def app(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application()
        app.router.add_get("/", self.wallboard)
        app.router.add_get("/agents", self.wallboard)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/api/kpis", self.api_kpis)
        app.router.add_get("/api/agents", self.api_agents)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get(PEER_PATH, self.internal_snapshot)
        app.on_cleanup.append(self.close_peer_session)  # after the last request has ended
        return app

    async def close_peer_session(self, _: web.Application) -> None:
        await self.view.close()

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
        system = (await self.view.current(per_agent=False))[1]
        settings = self.worker.settings
        capped = system.cap_queues(settings.kpi.max_queues)
        document = api_document(
            capped, settings, self.worker.processor.layout.size, self.worker.stale_reason()
        )
        return web.Response(
            body=orjson.dumps(document),
            content_type="application/json",
            headers={"Cache-Control": "no-store", **SECURITY_HEADERS},
        )

    async def api_agents(self, _: web.Request) -> web.Response:
        system = (await self.view.current(per_agent=True))[1]
        document = agents_api_document(system, self.worker.settings, self.worker.stale_reason())
        return web.Response(
            body=orjson.dumps(document),
            content_type="application/json",
            headers={"Cache-Control": "no-store", **SECURITY_HEADERS},
        )

    async def metrics(self, _: web.Request) -> web.Response:
        worker, settings = self.worker, self.worker.settings
        local, system = await self.view.current(per_agent=settings.agent_metrics)
        processor, max_queues = worker.processor, settings.kpi.max_queues
        complete = len(system.partitions) == settings.partitions
        chunks = exposition_chunks(
            system.cap_queues(max_queues) if complete else None,
            local.cap_queues(max_queues),
            processor.layout,
        )
        if settings.agent_metrics:
            chunks = itertools.chain(chunks, by_agent_exposition(local, settings.kpi))
        body = []
        for chunk in chunks:  # a family at a time: the batch loop runs in between
            body.append(chunk.encode())
            await asyncio.sleep(0)
        health = Health(
            topics=processor.topics,
            events=processor.events,
            rejections=processor.rejections,
            last_event_occurred_ms=processor.last_event_occurred_ms,
            last_processed_ms=processor.last_processed_ms,
            lag={(tp.topic, tp.partition): n for tp, n in worker.lag().items()},
            assigned=len(worker.owned) if worker.serving else 0,
            covered=len(system.partitions),
            total=settings.partitions,
            snapshot_ms=system.now_ms,
        )
        registry = CollectorRegistry(auto_describe=False)
        registry.register(CentreCollector(system, local, settings.kpi, complete=complete))
        registry.register(HealthCollector(health, settings.topic_prefix))
        body.append(generate_latest(registry))
        return web.Response(body=b"".join(body), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, _: web.Request) -> web.Response:
        worker = self.worker
        ready = worker.ready
        partitions = sorted(worker.owned) if worker.serving else []
        return web.json_response(
            {"ready": ready, "partitions": partitions, "stale_reason": worker.stale_reason()},
            status=200 if ready else 503,
        )

    async def internal_snapshot(self, request: web.Request) -> web.Response:
        """This worker's partitions at a peer's instant: read-only, token, clock band."""
        if not authorized(request.headers.get("Authorization"), self.worker.settings.cluster_token):
            raise web.HTTPUnauthorized(text="KPI_CLUSTER_TOKEN required")
        try:
            at = peer_instant(request.query.get("now_ms"), wall_ms())
        except BadPeerRequest as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        if not self.worker.serving:
            raise web.HTTPServiceUnavailable(text="recovering")
        snapshot = await self.view.local(at, request.query.get("per_agent") != "0")
        return web.Response(body=snapshot.to_json(), content_type="application/json")


class WebServer:
    """The listener on KPI_WEB_HOST:KPI_WEB_PORT."""

    def __init__(self, worker: Worker) -> None:
        self.settings = worker.settings
        self.view = peer_view(worker)
        self.routes = Routes(worker, self.view)
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; warn when the peer endpoint is reachable from other hosts without a token."""
        host = self.settings.web_host
        self.runner = web.AppRunner(self.routes.app(), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, host, self.settings.web_port).start()
        log.info("web server on %s", self.settings.web_url)
        if self.settings.cluster_token is None and not _loopback(host):
            log.warning(
                "KPI_WEB_HOST=%s without KPI_CLUSTER_TOKEN: anyone who reaches the port can "
                "read the peer endpoint; set a shared KPI_CLUSTER_TOKEN on every worker",
                host,
            )

    async def stop(self) -> None:
        """Close the listener, then (the application's cleanup) the peer session."""
        if self.runner is not None:
            await self.runner.cleanup()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
