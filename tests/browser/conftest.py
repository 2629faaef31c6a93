"""Fixtures for browser tests: real headless Chromium (Debian's /usr/bin/chromium) via Playwright.

Every test under tests/browser gets the `browser` marker. Without Chromium or Playwright the
tests are skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from stream.web.assets import STATIC_FILES, read_static
from tests.infra import require_infra

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "artifacts"
CHROMIUM = os.environ.get("KPI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The policy the worker serves the wallboard with; the page must work under it.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; font-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)


def _unavailable(reason: str) -> NoReturn:
    require_infra(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module, closed after the module's last test.

    Playwright's sync API keeps an event loop marked as running while it is alive, so a
    module that uses it cannot also hold `async def` tests or call asyncio.run() on the main
    thread (run such code in a thread). Module scope keeps other modules unaffected."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright==1.65.2)")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


class PageWatch:
    """What a page did that a test may want to forbid: dialogs, script errors, CSP violations."""

    def __init__(self, page: Any) -> None:
        self.dialogs: list[str] = []
        self.page_errors: list[str] = []
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("console", self._on_console)
        page.on("request", lambda request: self.requests.append(request.url))

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _on_console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)


@pytest.fixture
def page_factory(browser: Any) -> Iterator[Any]:
    """Open pages at a given viewport size; each gets a PageWatch as `page.watch`."""
    contexts: list[Any] = []

    def open_page(width: int = 1920, height: int = 1080) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.watch = PageWatch(page)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(page_factory: Any) -> Any:
    """A 1920x1080 page (a full-HD TV)."""
    return page_factory()


class StubKpiApi:
    """Test double for the worker's data source: the real static page (at `/` and `/agents`)
    plus a JSON body the test sets, served as `/api/kpis` and `/api/agents`. It can stop listening (a stopped worker), hang, or fail, to test the page's
    stale state. It computes no KPI; tests against the real worker live elsewhere."""

    def __init__(self, csp: str | None = STRICT_CSP) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.csp = csp
        self.mode = "answer"  # "answer" | "hang" | "error"
        self.as_of: datetime | None = None  # None: the current time on every answer
        self.paths: list[str] = []
        self.kpi_answers = 0
        self._body: dict[str, Any] = {}
        self._runner: web.AppRunner | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def set_body(self, body: dict[str, Any]) -> None:
        self._body = copy.deepcopy(body)

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._headers])
        app.router.add_get("/", self._wallboard)
        app.router.add_get("/agents", self._wallboard)
        app.router.add_get("/api/kpis", self._kpis)
        app.router.add_get("/api/agents", self._kpis)  # the test sets the body the page wants
        app.router.add_get("/static/{name}", self._static)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _headers(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.paths.append(request.path)
        response: web.StreamResponse = await handler(request)
        if self.csp:
            response.headers["Content-Security-Policy"] = self.csp
        return response

    async def _wallboard(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=read_static("wallboard.html"), content_type="text/html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        """The worker's static files (page files and webfont) from the same place it takes them."""
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(body=read_static(name), content_type=STATIC_FILES[name])

    async def _kpis(self, request: web.Request) -> web.Response:
        if self.mode == "hang":
            await asyncio.sleep(30)
        if self.mode != "answer":
            return web.Response(status=503, text="unavailable")
        as_of = self.as_of or datetime.now(UTC)
        body = {**self._body, "as_of": as_of.isoformat().replace("+00:00", "Z")}
        self.kpi_answers += 1
        return web.Response(
            text=json.dumps(body),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )


@pytest.fixture
def stub_api_factory() -> Iterator[Any]:
    """Start StubKpiApi servers (optionally without CSP); all are closed afterwards."""
    servers: list[StubKpiApi] = []

    def start(csp: str | None = STRICT_CSP) -> StubKpiApi:
        server = StubKpiApi(csp=csp)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def stub_api(stub_api_factory: Any) -> StubKpiApi:
    """A StubKpiApi serving the page under the worker's strict CSP."""
    server: StubKpiApi = stub_api_factory()
    return server


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """artifacts/ at the repository root (git-ignored), for screenshots."""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    return ARTIFACTS_DIR


@pytest.fixture
def save_screenshot(artifacts_dir: Path) -> Any:
    """Save a page's screenshot into artifacts/ and return its path."""

    def save(page: Any, name: str) -> Path:
        path = artifacts_dir / name
        page.screenshot(path=str(path))
        return path

    return save


class WallboardFormat:
    """How the wallboard writes values, mirrored in Python so tests can compare shown text
    with /api/kpis (the page tests prove the two agree on a table of cases)."""

    DASH = "\u2014"
    MINUS = "\u2212"
    # Ratios rounded up (toward worse); every other ratio is rounded down.
    BAD_WHEN_HIGH = frozenset(
        {"contact_abandonment_ratio", "occupancy_ratio", "reopened_resolution_ratio"}
    )

    @staticmethod
    def js_round(value: float) -> int:
        """JavaScript's Math.round (halves go up)."""
        return math.floor(value + 0.5)

    @classmethod
    def duration(cls, seconds: float) -> str:
        s = max(0, cls.js_round(seconds))
        if s < 60:
            return f"{s}s"
        if s < 3600:
            return f"{s // 60}m {s % 60}s"
        if s < 86400:
            return f"{s // 3600}h {s % 3600 // 60}m"
        return f"{s // 86400}d {s % 86400 // 3600}h"

    @classmethod
    def kpi(cls, key: str, value: float | None) -> str:
        """Text of a KPI tile or queue cell for the JSON value of `key`."""
        if value is None:
            return cls.DASH
        if key.endswith("_seconds"):
            return cls.duration(value)
        if key in cls.BAD_WHEN_HIGH:
            return f"{math.ceil(value * 1000 - 1e-6) / 10:.1f}%"
        if key.endswith("_ratio"):
            return f"{math.floor(value * 1000 + 1e-6) / 10:.1f}%"
        score = cls.js_round(value)
        if score > 0:
            return f"+{score}"
        return f"{cls.MINUS}{-score}" if score < 0 else "0"

    @staticmethod
    def clock(as_of: str, timezone: str) -> str:
        """'Data as of' text: HH:MM:SS of `as_of` in the worker's time zone."""
        moment = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
        return moment.astimezone(ZoneInfo(timezone)).strftime("%H:%M:%S")


@pytest.fixture(scope="session")
def wallboard_format() -> type[WallboardFormat]:
    return WallboardFormat


# One consistent snapshot of everything the board shows, with the raw values it holds.
_SNAPSHOT_JS = """() => {
  const one = (el) => ({value: el.dataset.value, text: el.textContent,
                        color: el.dataset.color || null});
  const all = (selector) => Array.from(document.querySelectorAll(selector));
  const banner = (id) => {
    const el = document.querySelector(`[data-testid="${id}"]`);
    return el.hidden ? null : el.textContent;
  };
  const asOf = document.querySelector('[data-testid="as-of"]');
  return {
    state: document.body.dataset.state,
    window: document.querySelector('[data-window][aria-pressed="true"]').dataset.window,
    tiles: Object.fromEntries(all("[data-kpi]").map((el) => [el.dataset.kpi, one(el)])),
    awaiting: Object.fromEntries(
      all("[data-awaiting]").map((el) => [el.dataset.awaiting, one(el)])),
    open: one(document.querySelector('[data-testid="open-count"]')),
    oldest: one(document.querySelector('[data-testid="oldest-age"]')),
    rows: all('[data-testid="queue-rows"] tr').map((tr) => ({
      queue: tr.dataset.queue,
      name: tr.querySelector(".q-name").textContent,
      hidden: tr.hidden,
      cells: Object.fromEntries(
        Array.from(tr.querySelectorAll("[data-col]")).map((td) => [td.dataset.col, one(td)])),
    })),
    as_of: {value: asOf.dataset.value, text: asOf.textContent},
    stale: banner("stale-banner"),
    partial: banner("partial-banner"),
  };
}"""


def _number(raw: str) -> float | None:
    return None if raw == "null" else float(raw)


@pytest.fixture(scope="session")
def read_board() -> Any:
    """read_board(page) -> dict of what the board shows; `value`s parsed to float | None."""

    def read(page: Any) -> dict[str, Any]:
        board: dict[str, Any] = page.evaluate(_SNAPSHOT_JS)
        shown = [
            *board["tiles"].values(),
            *board["awaiting"].values(),
            board["open"],
            board["oldest"],
        ]
        shown += [cell for row in board["rows"] for cell in row["cells"].values()]
        for item in shown:
            item["value"] = _number(item["value"])
        return board

    return read
