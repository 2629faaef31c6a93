"""The wallboard in real headless Chromium, served by a real worker on the real broker.

Playwright's sync API keeps an event loop running on this thread, so everything that uses
asyncio (producing to Kafka, creating topics) runs in a helper thread.
"""

from __future__ import annotations

import copy
import re
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from stream.kpi.windows import to_ms
from tests.browser.test_wallboard_page import (
    KPI_KEYS,
    QUEUE_KPI_KEYS,
    XSS_QUEUE,
    assert_board_shows,
    wait_for_state,
)
from tests.integration.eventsets import mixed
from tests.integration.worker_harness import (
    Samples,
    Scenario,
    Worker,
    consumed,
    simulate_backfill,
    wait_processed,
)

pytestmark = pytest.mark.integration  # needs the Kafka broker as well as Chromium

BOARD_WINDOWS = ("15m", "1h", "today")  # the windows the board offers (24h is API-only)
REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run asyncio-based harness code off Playwright's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
def scenario(kafka_bootstrap: str, tmp_path: Path) -> Scenario:
    scenario = Scenario(kafka_bootstrap, tmp_path)
    in_thread(scenario.create_topics)
    return scenario


@pytest.fixture
def worker(scenario: Scenario) -> Iterator[Worker]:
    started = Worker(scenario).start()
    started.wait_ready()
    yield started
    started.kill()


def steady(body: dict[str, Any]) -> dict[str, Any]:
    """The body without what changes with every request (its time and the waiting ages)."""
    body = copy.deepcopy(body)
    del body["as_of"]
    # The contact centre (not on this board) moves with the clock: waits, time in status.
    body.pop("contact_centre", None)
    for row in (body["live"], *body["live"]["queues"]):
        del row["oldest_awaiting_age_seconds"]
    return body


def consistent_view(page: Any, worker: Worker, read_board: Any) -> tuple[Any, Any, Samples]:
    """(board, /api/kpis body, /metrics samples) from one quiet moment.

    The board renders an answer of its own; it is read after an answer at least as new as
    ours arrived, and taken only if the numbers did not change between our two reads
    (a minute boundary or an SLA state change in between means another try)."""
    for _ in range(5):
        first = worker.api()
        page.wait_for_function(
            "(t) => Date.parse(document.querySelector('[data-testid=\"as-of\"]')"
            ".dataset.value) >= Date.parse(t)",
            arg=first["as_of"],
            timeout=3000,
        )
        board = read_board(page)
        samples = worker.metrics()
        second = worker.api()
        if steady(first) == steady(second):
            return board, second, samples
    raise AssertionError("the worker's numbers never held still for a second")


def expected_for(board: Any, body: dict[str, Any]) -> dict[str, Any]:
    """`body` with the oldest waiting age it had at the instant of the board's own answer."""
    expected = copy.deepcopy(body)
    opened = expected["live"]["oldest_awaiting_opened_at"]
    if opened is not None:
        as_of = board["as_of"]["value"]
        age_ms = to_ms(_instant(as_of)) - to_ms(_instant(opened))
        expected["live"]["oldest_awaiting_age_seconds"] = max(0, age_ms) / 1000
    return expected


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of a family's samples that carry `labels` (over every other label)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def assert_board_matches_metrics(board: Any, samples: Samples, window: str) -> None:
    """Every KPI on screen equals its gauge (absent when the board shows a dash)."""
    for key in KPI_KEYS:
        shown = board["tiles"][key]["value"]
        assert sample(samples, f"cs_{key}", window=window) == shown, (window, key)
    for row in board["rows"]:
        for key in QUEUE_KPI_KEYS:
            shown = row["cells"][key]["value"]
            gauge = sample(samples, f"cs_queue_{key}", window=window, queue=row["queue"])
            assert gauge == shown, (window, row["queue"], key)
    for sla, count in board["awaiting"].items():
        assert total(samples, "cs_tickets_awaiting_first_response", sla_state=sla) == count["value"]
    assert total(samples, "cs_tickets_open") == board["open"]["value"]


def assert_every_window_matches(page: Any, worker: Worker, read_board: Any, fmt: Any) -> Any:
    """Click through the board's windows; each must equal /api/kpis and /metrics."""
    body: Any = None
    for window in BOARD_WINDOWS:
        page.click(f'[data-window="{window}"]')
        board, body, samples = consistent_view(page, worker, read_board)
        assert board["window"] == window
        assert_board_shows(board, expected_for(board, body), window, fmt)
        assert_board_matches_metrics(board, samples, window)
    return body


def ticket_events(ticket: str, queue: str, opened_ms: int, replied_ms: int | None) -> list[Any]:
    """(topic, key, value) of a ticket opened at `opened_ms`, answered at `replied_ms`."""
    opened = {"event_id": f"{ticket}-o", "type": "ticket.opened", "ticket_id": ticket,
              "occurred_at": opened_ms, "queue": queue, "channel": "chat", "priority": "low"}  # fmt: skip
    messages = [("cs.ticket.opened", ticket.encode(), orjson.dumps(opened))]
    if replied_ms is not None:
        reply = {"event_id": f"{ticket}-r", "type": "ticket.first_reply", "ticket_id": ticket,
                 "occurred_at": replied_ms}  # fmt: skip
        messages.append(("cs.ticket.first_reply", ticket.encode(), orjson.dumps(reply)))
    return messages


def test_board_shows_what_the_worker_serves_and_follows_new_events(
    scenario, worker, page, read_board, wallboard_format, save_screenshot
):
    """Every number on the board equals /api/kpis and /metrics in every window; a queue
    named like markup is literal text; new events reach the screen within 3 s."""
    events = mixed(now_ms(), seed=11)
    in_thread(scenario.produce, events.messages)
    wait_processed([worker], len(events.messages))
    page.goto(worker.url + "/")
    wait_for_state(page, "live", timeout=5000)

    body = assert_every_window_matches(page, worker, read_board, wallboard_format)
    served = {re.sub(r"^http://[^/]+", "", url) for url in page.watch.requests}
    assert "/static/inter.ttf" in served  # the page's own font, from the worker
    assert page.evaluate("document.fonts.check('700 96px Inter')") is True
    assert page.watch.console_errors == []  # no CSP violation
    rows = {row["queue"]: row for row in read_board(page)["rows"]}
    assert rows[XSS_QUEUE]["name"] == XSS_QUEUE
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.watch.dialogs == []
    assert page.watch.page_errors == []
    assert "/x" not in {re.sub(r"^http://[^/]+", "", url) for url in page.watch.requests}
    save_screenshot(page, "wallboard-live.png")

    page.click('[data-window="15m"]')
    opened_before = body["live"]["open"]
    now = now_ms()
    fresh = [
        *ticket_events("LIVE-1", "billing", now - 10 * 60_000, now - 2_000),
        *ticket_events("LIVE-2", XSS_QUEUE, now - 1_000, None),
    ]
    in_thread(scenario.produce, fresh)
    produced = time.monotonic()
    page.wait_for_function(
        "(n) => Number(document.querySelector('[data-testid=\"open-count\"]').dataset.value) === n",
        arg=opened_before + 2,
        timeout=3000,
    )
    assert time.monotonic() - produced < 3.0
    after = assert_every_window_matches(page, worker, read_board, wallboard_format)
    assert after["live"]["open"] == opened_before + 2
    quarter = {q["queue"]: q for q in after["windows"]["15m"]["queues"]}
    assert quarter["billing"]["first_responses"] >= 1
    assert page.watch.dialogs == []
    assert page.watch.page_errors == []


def test_board_turns_stale_when_the_worker_stops(
    scenario, worker, page, read_board, save_screenshot
):
    """SIGTERM to the worker: once it has stopped, the STALE banner shows within 8 s and
    the numbers stay."""
    events = mixed(now_ms(), seed=12, tickets=60)
    in_thread(scenario.produce, events.messages)
    wait_processed([worker], len(events.messages))
    page.goto(worker.url + "/")
    wait_for_state(page, "live", timeout=5000)
    shown = read_board(page)["open"]["value"]
    assert shown == worker.api()["live"]["open"]

    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)
    # A stopping worker finishes its batch and saves its snapshots, serving its (still
    # current) numbers meanwhile; the board turns stale once it no longer answers.
    assert worker.process.wait(30) == 0
    gone = time.monotonic()
    wait_for_state(page, "stale", timeout=8000)
    elapsed = time.monotonic() - gone
    board = read_board(page)
    assert (board["stale"] or "").startswith("STALE \u2014 worker not answering since ")
    assert board["open"]["value"] == shown  # the last numbers stay, dimmed
    save_screenshot(page, "wallboard-live-stale.png")
    assert elapsed <= 8.0


def test_board_full_of_simulator_data(
    scenario, worker, page, read_board, wallboard_format, save_screenshot
):
    """Two days of simulated history: the ticket board shows it exactly, and the agents view
    lists every agent of /api/agents in the default order."""
    sent = in_thread(simulate_backfill, scenario, 48)
    wait_processed([worker], consumed(worker, sent, scenario), timeout_s=180)
    page.goto(worker.url + "/")
    wait_for_state(page, "live", timeout=5000)

    body = assert_every_window_matches(page, worker, read_board, wallboard_format)
    last_hour = body["windows"]["1h"]["overall"]
    assert last_hour["first_responses"] > 0 and last_hour["resolutions"] > 0
    page.click('[data-window="1h"]')
    page.wait_for_timeout(1500)  # let the next answer render, for a settled picture
    save_screenshot(page, "wallboard-demo.png")

    # The agents view of the same worker: one row per agent of /api/agents, in the default
    # order (available, busy, wrap-up, away, offline, no status; then by name), with its
    # status and 1h contacts handled.
    page.goto(worker.url + "/agents")
    wait_for_state(page, "live", timeout=5000)
    agents = orjson.loads(worker.get("/api/agents"))["agents"]
    assert any(agent["status"] for agent in agents)
    ranks = ["available", "busy", "after_contact_work", "away", "offline"]
    words = {"available": "Available", "busy": "Busy", "after_contact_work": "Wrap-up",
             "away": "Away", "offline": "Offline", None: "\u2014"}  # fmt: skip
    expected = sorted(
        agents,
        key=lambda a: (ranks.index(a["status"]) if a["status"] else len(ranks), a["agent"]),
    )
    rows = page.evaluate(
        "Array.from(document.querySelectorAll('[data-agent]')).map((tr) => [tr.dataset.agent,"
        " tr.querySelector('[data-col=\"status\"]').textContent,"
        " tr.querySelector('[data-col=\"handled\"]').textContent])"
    )
    assert rows == [
        [a["agent"], words[a["status"]], str(a["windows"]["1h"]["contacts_handled"])]
        for a in expected
    ]
    assert page.watch.page_errors == []
    assert page.watch.console_errors == []
