"""The wallboard page in real headless Chromium, fed by StubKpiApi (a stand-in for the
worker's /api/kpis data source, so the page's own logic can be driven precisely)."""

from __future__ import annotations

import copy
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

# Written out here, not imported from the code under test: the page and /api/kpis must
# agree with this copy of the contract's names.
KPI_KEYS = [
    "first_response_time_average_seconds",
    "first_response_sla_attainment_ratio",
    "resolution_time_average_seconds",
    "resolution_sla_attainment_ratio",
    "csat_ratio",
    "nps_score",
]
QUEUE_KPI_KEYS = [
    "first_response_time_average_seconds",
    "first_response_sla_attainment_ratio",
    "resolution_time_average_seconds",
    "csat_ratio",
    "nps_score",
]
# Thresholds as /api/kpis serves them (the page takes whatever the worker sends).
THRESHOLDS = {
    "first_response_time_average_seconds": {
        "direction": "lower_is_better",
        "green": 900,
        "amber": 3600,
    },
    "resolution_time_average_seconds": {
        "direction": "lower_is_better",
        "green": 14400,
        "amber": 86400,
    },
    "first_response_sla_attainment_ratio": {
        "direction": "higher_is_better",
        "green": 0.9,
        "amber": 0.8,
    },
    "resolution_sla_attainment_ratio": {
        "direction": "higher_is_better",
        "green": 0.9,
        "amber": 0.8,
    },
    "csat_ratio": {"direction": "higher_is_better", "green": 0.85, "amber": 0.75},
    "nps_score": {"direction": "higher_is_better", "green": 30, "amber": 0},
}
XSS_QUEUE = "<img src=x onerror=alert(1)>"
XSS_QUEUE_SCRIPT = '"><script>window.__xss = 1</script><b>'
CSS_COLOURS = {
    "green": "rgb(47, 211, 122)",
    "amber": "rgb(255, 182, 39)",
    "red": "rgb(255, 79, 79)",
}


def kpis(
    frt: float | None,
    frt_sla: float | None,
    art: float | None,
    res_sla: float | None,
    csat: float | None,
    nps: float | None,
    n: int = 40,
) -> dict[str, Any]:
    return {
        "first_response_time_average_seconds": frt,
        "first_response_sla_attainment_ratio": frt_sla,
        "resolution_time_average_seconds": art,
        "resolution_sla_attainment_ratio": res_sla,
        "csat_ratio": csat,
        "nps_score": nps,
        "first_responses": 3 * n,
        "resolutions": 2 * n,
        "csat_responses": n,
        "nps_responses": n,
    }


def live_queue(
    name: str, ok: int, at_risk: int, breached: int, oldest: float | None
) -> dict[str, Any]:
    return {
        "queue": name,
        "open": ok + at_risk + breached + 3,
        "awaiting": {"ok": ok, "at_risk": at_risk, "breached": breached},
        "oldest_awaiting_age_seconds": oldest,
    }


def sample_body() -> dict[str, Any]:
    """A realistic /api/kpis body; each window has different numbers."""
    queues_1h = [
        {"queue": "billing", **kpis(312.4, 0.93, 8123.0, 0.875, 0.8125, 32.0)},
        {"queue": "complaints", **kpis(1850.0, 0.71, 30500.0, 0.66, 0.62, -18.4)},
        {"queue": "enterprise", **kpis(95.0, 1.0, 5400.0, 0.97, 0.93, 61.0)},
        {"queue": "returns", **kpis(640.0, 0.88, 17000.0, 0.84, 0.79, 12.0)},
        {"queue": "shipping", **kpis(2700.0, 0.81, None, None, None, None)},
        {"queue": "technical-support", **kpis(1210.0, 0.84, 12800.0, 0.9, 0.86, 41.0)},
    ]
    queues_15m = [
        {"queue": "billing", **kpis(200.0, 0.95, 6000.0, 0.9, 0.9, 50.0, n=5)},
        {"queue": "technical-support", **kpis(4000.0, 0.5, None, None, None, None, n=2)},
    ]
    queues_today = [{**q, "first_response_time_average_seconds": 500.0} for q in queues_1h]
    live_queues = [
        live_queue("billing", 6, 1, 0, 1980.0),
        live_queue("complaints", 2, 2, 3, 15320.0),
        live_queue("enterprise", 1, 0, 0, 240.0),
        live_queue("returns", 4, 0, 1, 6120.0),
        live_queue("shipping", 3, 1, 0, 2900.0),
        live_queue("technical-support", 9, 2, 3, 9400.0),
    ]
    return {
        "complete": True,
        "partitions": {"covered": 8, "total": 8},
        "timezone": "UTC",
        "windows": {
            "15m": {"overall": kpis(845.0, 0.9, 9000.0, 0.8, 0.76, 0.0, n=7), "queues": queues_15m},
            "1h": {"overall": kpis(733.6, 0.87, 14950.0, 0.91, 0.8125, 32.0), "queues": queues_1h},
            "24h": {
                "overall": kpis(1000.0, 0.85, 20000.0, 0.85, 0.8, 20.0, n=400),
                "queues": queues_1h,
            },
            "today": {
                "overall": kpis(651.0, 0.89, 13200.0, 0.93, 0.84, 28.0, n=300),
                "queues": queues_today,
            },
        },
        "live": {
            "open": sum(q["open"] for q in live_queues),
            "awaiting": {
                k: sum(q["awaiting"][k] for q in live_queues) for k in ("ok", "at_risk", "breached")
            },
            "oldest_awaiting_opened_at": "2026-11-22T06:00:00Z",
            "oldest_awaiting_age_seconds": 15320.0,
            "queues": live_queues,
        },
        "thresholds": copy.deepcopy(THRESHOLDS),
        "stale": False,
        "stale_reason": None,
        "min_answers": 20,
    }


def open_board(page: Any, api: Any, fragment: str = "") -> None:
    """Load the board and wait until it shows live data."""
    page.goto(api.url + fragment)
    wait_for_state(page, "live", timeout=5000)


def wait_for_state(page: Any, state: str, timeout: float) -> None:
    """Wait until the board is 'live', 'stale' or 'connecting'."""
    page.wait_for_function(
        "(state) => document.body.dataset.state === state", arg=state, timeout=timeout
    )


def wait_for_kpi(page: Any, key: str, value: float | None, timeout: float = 5000) -> None:
    page.wait_for_function(
        """([key, value]) => {
             const raw = document.querySelector(`[data-kpi="${key}"]`).dataset.value;
             return value === null ? raw === "null" : Number(raw) === value;
           }""",
        arg=[key, value],
        timeout=timeout,
    )


def expected_rows(window: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """Queue names in the order the board must list them: breached desc, then name."""
    breached = {q["queue"]: q["awaiting"]["breached"] for q in live["queues"]}
    names = {q["queue"] for q in window["queues"]} | set(breached)
    return sorted(names, key=lambda name: (-breached.get(name, 0), name))


def assert_board_shows(board: dict[str, Any], body: dict[str, Any], window: str, fmt: Any) -> None:
    """Every number on the board equals the JSON, as raw value and as formatted text."""
    win = body["windows"][window]
    assert board["window"] == window
    for key in KPI_KEYS:
        tile = board["tiles"][key]
        assert tile["value"] == win["overall"][key], key
        assert tile["text"] == fmt.kpi(key, win["overall"][key]), key
    for sla, count in body["live"]["awaiting"].items():
        assert board["awaiting"][sla]["value"] == count
        assert board["awaiting"][sla]["text"] == str(count)
    assert board["open"]["value"] == body["live"]["open"]
    assert board["oldest"]["value"] == body["live"]["oldest_awaiting_age_seconds"]
    assert board["as_of"]["text"] == fmt.clock(board["as_of"]["value"], body["timezone"])

    assert [row["queue"] for row in board["rows"]] == expected_rows(win, body["live"])
    kpis_by_queue = {q["queue"]: q for q in win["queues"]}
    live_by_queue = {q["queue"]: q for q in body["live"]["queues"]}
    for row in board["rows"]:
        assert row["name"] == row["queue"]
        queue_kpis = kpis_by_queue.get(row["queue"], {})
        for key in QUEUE_KPI_KEYS:
            cell = row["cells"][key]
            assert cell["value"] == queue_kpis.get(key), (row["queue"], key)
            assert cell["text"] == fmt.kpi(key, queue_kpis.get(key)), (row["queue"], key)
        awaiting = live_by_queue.get(row["queue"], {}).get("awaiting", {})
        for sla in ("ok", "at_risk", "breached"):
            cell = row["cells"][f"awaiting_{sla}"]
            assert cell["value"] == awaiting.get(sla, 0)
            assert cell["text"] == str(awaiting.get(sla, 0))


def test_board_shows_exactly_the_json(
    page, stub_api, read_board, wallboard_format, save_screenshot
):
    """Tiles, awaiting counts, as-of time and every queue cell equal /api/kpis."""
    body = sample_body()
    stub_api.set_body(body)
    open_board(page, stub_api)
    board = read_board(page)
    assert board["state"] == "live"
    assert board["stale"] is None
    assert board["partial"] is None
    assert_board_shows(board, body, "1h", wallboard_format)
    # Spot checks of the formatting itself, independent of the Python mirror.
    assert board["tiles"]["first_response_time_average_seconds"]["text"] == "12m 14s"
    assert board["tiles"]["resolution_time_average_seconds"]["text"] == "4h 9m"
    assert board["tiles"]["csat_ratio"]["text"] == "81.2%"
    assert board["tiles"]["nps_score"]["text"] == "+32"
    assert re.fullmatch(r"[0-2]\d:[0-5]\d:[0-5]\d", board["as_of"]["text"])
    assert re.fullmatch(r"4:15:2\d", board["oldest"]["text"])
    assert page.watch.page_errors == []
    save_screenshot(page, "wallboard.png")


# (JSON value, text the board must show) for each kind of value.
FORMAT_CASES = {
    "first_response_time_average_seconds": [
        (0.0, "0s"),
        (59.4, "59s"),
        (59.5, "1m 0s"),
        (312.4, "5m 12s"),
        (3599.0, "59m 59s"),
    ],
    "resolution_time_average_seconds": [
        (3600.0, "1h 0m"),
        (8123.0, "2h 15m"),
        (86399.0, "23h 59m"),
        (90061.0, "1d 1h"),
        (None, "\u2014"),
    ],
    "csat_ratio": [
        (1.0, "100.0%"),
        (0.99999, "99.9%"),
        (0.58, "58.0%"),
        (0.0, "0.0%"),
        (0.8125, "81.2%"),
    ],
    "nps_score": [
        (32.0, "+32"),
        (-4.6, "\u22125"),
        (0.4, "0"),
        (-100.0, "\u2212100"),
        (100.0, "+100"),
    ],
}


def test_values_are_formatted_for_humans(page, stub_api, read_board, wallboard_format):
    """Durations as '5m 12s', ratios as truncated percentages, NPS signed, null as a dash."""
    body = sample_body()
    stub_api.set_body(body)
    open_board(page, stub_api)
    steps = max(len(cases) for cases in FORMAT_CASES.values())
    for step in range(steps):
        overall = body["windows"]["1h"]["overall"]
        expected = {}
        for key, cases in FORMAT_CASES.items():
            value, text = cases[step % len(cases)]
            overall[key] = value
            expected[key] = text
        stub_api.set_body(body)
        for key in expected:
            wait_for_kpi(page, key, overall[key])
        tiles = read_board(page)["tiles"]
        for key, text in expected.items():
            assert tiles[key]["text"] == text, (key, overall[key])
            assert wallboard_format.kpi(key, overall[key]) == text, (key, overall[key])


def test_colours_follow_the_configured_thresholds(page, stub_api, read_board):
    """green / amber / red at the threshold edges, none for null; thresholds come from JSON."""
    body = sample_body()
    body["windows"]["1h"]["overall"] = kpis(900.0, 0.85, 86401.0, 0.8, 0.9, None)
    stub_api.set_body(body)
    open_board(page, stub_api)
    colours = {key: tile["color"] for key, tile in read_board(page)["tiles"].items()}
    assert colours == {
        "first_response_time_average_seconds": "green",  # 900 <= green 900
        "first_response_sla_attainment_ratio": "amber",
        "resolution_time_average_seconds": "red",  # 86401 > amber 86400
        "resolution_sla_attainment_ratio": "amber",  # 0.8 >= amber 0.8
        "csat_ratio": "green",
        "nps_score": "none",
    }
    shown = page.evaluate("""() => Object.fromEntries(
        Array.from(document.querySelectorAll("[data-kpi]"))
             .map((el) => [el.dataset.kpi, getComputedStyle(el).color]))""")
    for key, colour in colours.items():
        if colour != "none":
            assert shown[key] == CSS_COLOURS[colour], key
    assert shown["nps_score"] not in CSS_COLOURS.values()

    body["thresholds"]["csat_ratio"] = {
        "direction": "higher_is_better",
        "green": 0.95,
        "amber": 0.92,
    }
    stub_api.set_body(body)
    page.wait_for_function(
        "() => document.querySelector('[data-kpi=\"csat_ratio\"]').dataset.color === 'red'",
        timeout=5000,
    )
    complaints = next(r for r in read_board(page)["rows"] if r["queue"] == "complaints")
    assert complaints["cells"]["first_response_sla_attainment_ratio"]["color"] == "red"
    assert complaints["cells"]["nps_score"]["color"] == "red"
    assert complaints["cells"]["first_response_time_average_seconds"]["color"] == "amber"


MUTED = "rgb(140, 154, 171)"
_FEW_JS = """() => ({
  tiles: Object.fromEntries(Array.from(document.querySelectorAll("main[data-board=tickets] .tile")).map((t) => [
    t.dataset.tile, {few: t.dataset.few, basis: t.querySelector(".basis").textContent,
                     colour: getComputedStyle(t.querySelector(".value")).color}])),
  cells: Object.fromEntries(Array.from(document.querySelectorAll("main[data-board=tickets] [data-queue] td[data-few]"))
    .map((td) => [`${td.parentElement.dataset.queue} ${td.dataset.col}`,
                  {few: td.dataset.few, colour: getComputedStyle(td).color}])),
})"""


def test_kpis_resting_on_few_answers_are_greyed(page, stub_api):
    """Under the worker's min_answers a KPI is grey and says so, whatever its level; with
    enough answers, or from a worker that sends no min_answers, it has its colour."""
    body = sample_body()
    overall = {**kpis(600.0, 0.5, 3600.0, 0.95, 0.5, -40.0), "csat_responses": 19}
    overall["nps_responses"] = 3
    body["windows"]["1h"]["overall"] = overall
    complaints = next(q for q in body["windows"]["1h"]["queues"] if q["queue"] == "complaints")
    complaints["csat_responses"] = 5  # CSAT 62 %: red with enough answers
    stub_api.set_body(body)
    open_board(page, stub_api)
    shown = page.evaluate(_FEW_JS)
    tiles, cells = shown["tiles"], shown["cells"]
    assert {k: t["few"] for k, t in tiles.items()} == {
        "first_response_time_average_seconds": "false",  # 120 replies
        "first_response_sla_attainment_ratio": "false",
        "csat_ratio": "true",  # 19 < 20
        "resolution_time_average_seconds": "false",  # 80 resolved
        "resolution_sla_attainment_ratio": "false",
        "nps_score": "true",  # 3 < 20
    }
    assert tiles["nps_score"]["basis"] == "3 responses \u2014 too few to judge"
    assert tiles["csat_ratio"]["basis"] == "19 responses \u2014 too few to judge"
    assert tiles["nps_score"]["colour"] == MUTED
    assert tiles["csat_ratio"]["colour"] == MUTED
    assert tiles["first_response_sla_attainment_ratio"]["colour"] == CSS_COLOURS["red"]
    assert cells["complaints csat_ratio"] == {"few": "true", "colour": MUTED}
    assert cells["complaints nps_score"] == {"few": "false", "colour": CSS_COLOURS["red"]}

    body["min_answers"] = 3
    stub_api.set_body(body)
    page.wait_for_function(
        "() => document.querySelector('[data-tile=\"nps_score\"]').dataset.few === 'false'"
    )
    assert page.evaluate(_FEW_JS)["tiles"]["nps_score"]["colour"] == CSS_COLOURS["red"]
    del body["min_answers"]
    stub_api.set_body(body)
    page.wait_for_timeout(1500)
    shown = page.evaluate(_FEW_JS)
    assert {t["few"] for t in shown["tiles"].values()} == {"false"}
    assert {c["few"] for c in shown["cells"].values()} == {"false"}


def test_board_updates_within_two_seconds(page, stub_api, read_board, wallboard_format):
    """New numbers in /api/kpis reach the screen within 2 s, without a reload."""
    body = sample_body()
    stub_api.set_body(body)
    open_board(page, stub_api)
    page.evaluate("window.__sameDocument = true")
    for frt in (101.0, 4242.0):
        body["windows"]["1h"]["overall"]["first_response_time_average_seconds"] = frt
        body["live"]["awaiting"]["breached"] += 5
        body["live"]["queues"][0]["awaiting"]["breached"] += 5  # billing jumps to the top
        started = time.monotonic()
        stub_api.set_body(body)
        wait_for_kpi(page, "first_response_time_average_seconds", frt, timeout=2000)
        assert time.monotonic() - started < 2.0
        page.wait_for_function(
            "([n]) => Number(document.querySelector('[data-awaiting=\"breached\"]').dataset.value)"
            " === n",
            arg=[body["live"]["awaiting"]["breached"]],
            timeout=2000,
        )
        assert_board_shows(read_board(page), body, "1h", wallboard_format)
    assert page.evaluate("window.__sameDocument") is True


def test_window_selector_switches_and_is_remembered_in_the_url(
    page, stub_api, read_board, wallboard_format
):
    body = sample_body()
    stub_api.set_body(body)
    open_board(page, stub_api)
    assert read_board(page)["window"] == "1h"  # the default
    for window in ("15m", "today", "1h"):
        page.click(f'[data-window="{window}"]')
        assert page.evaluate("location.hash") == f"#window={window}"
        assert_board_shows(read_board(page), body, window, wallboard_format)

    open_board(page, stub_api, "#window=15m")
    assert_board_shows(read_board(page), body, "15m", wallboard_format)
    page.reload()
    wait_for_state(page, "live", timeout=5000)
    assert read_board(page)["window"] == "15m"
    open_board(page, stub_api, "#window=bogus")
    assert read_board(page)["window"] == "1h"


@pytest.mark.parametrize("csp", ["strict-csp", "no-csp"])
def test_queue_names_are_shown_as_text_never_markup(
    csp, page, stub_api_factory, read_board, wallboard_format
):
    """A queue named like markup appears literally and runs no script (even without CSP)."""
    api = stub_api_factory(csp=None) if csp == "no-csp" else stub_api_factory()
    body = sample_body()
    for name in (XSS_QUEUE, XSS_QUEUE_SCRIPT):
        body["windows"]["1h"]["queues"].append(
            {"queue": name, **kpis(60.0, 1.0, 600.0, 1.0, 1.0, 100.0)}
        )
        body["live"]["queues"].append(live_queue(name, 1, 0, 9, 60.0))
    api.set_body(body)
    open_board(page, api)
    page.wait_for_timeout(2500)  # a few polls: any injected handler would have fired by now

    board = read_board(page)
    assert_board_shows(board, body, "1h", wallboard_format)
    shown = {row["queue"]: row["name"] for row in board["rows"]}
    assert shown[XSS_QUEUE] == XSS_QUEUE
    assert shown[XSS_QUEUE_SCRIPT] == XSS_QUEUE_SCRIPT
    assert page.watch.dialogs == []
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.evaluate("document.querySelectorAll('img, b, tbody script').length") == 0
    assert page.evaluate("document.scripts.length") == 1
    assert "/x" not in api.paths
    assert page.watch.page_errors == []


def stale_banner(page: Any) -> str | None:
    result: str | None = page.evaluate(
        "(() => { const b = document.querySelector('[data-testid=\"stale-banner\"]');"
        " return b.hidden ? null : b.textContent; })()"
    )
    return result


def test_stale_state_when_the_worker_stops_and_recovery(
    page, stub_api, read_board, save_screenshot
):
    """No answer for > 5 s: a red STALE banner with the last answer time, numbers dimmed;
    it goes away by itself when the worker answers again."""
    body = sample_body()
    stub_api.set_body(body)
    open_board(page, stub_api)
    stub_api.stop()
    stopped = datetime.now(UTC)
    page.wait_for_timeout(3500)
    assert stale_banner(page) is None
    wait_for_state(page, "stale", timeout=5000)
    elapsed = (datetime.now(UTC) - stopped).total_seconds()
    assert 4.0 <= elapsed <= 8.0

    banner = stale_banner(page)
    assert banner is not None
    match = re.fullmatch(r"STALE \u2014 worker not answering since (\d\d):(\d\d):(\d\d)", banner)
    assert match, banner
    since = stopped.replace(
        hour=int(match[1]), minute=int(match[2]), second=int(match[3]), microsecond=0
    )
    assert abs((stopped - since).total_seconds()) <= 3  # last answer came just before the stop
    opacity = page.evaluate("Number(getComputedStyle(document.querySelector('.board')).opacity)")
    assert opacity < 0.5
    save_screenshot(page, "wallboard-stale.png")

    stub_api.start()
    wait_for_state(page, "live", timeout=3000)
    assert stale_banner(page) is None
    assert page.evaluate("Number(getComputedStyle(document.querySelector('.board')).opacity)") == 1


def test_oldest_age_ticks_between_answers_then_stale_when_worker_hangs(page, stub_api, read_board):
    """The oldest-waiting age counts up locally while no answer comes; a hanging worker
    (requests time out) also turns the board stale, and it recovers."""
    body = sample_body()
    stub_api.set_body(body)
    open_board(page, stub_api)
    stub_api.mode = "hang"
    page.wait_for_timeout(500)  # let an answer already on its way arrive
    answers = stub_api.kpi_answers
    first = read_board(page)["oldest"]["text"]
    page.wait_for_timeout(2600)
    later = read_board(page)["oldest"]["text"]
    assert stub_api.kpi_answers == answers  # no answer in between: the page ticked by itself

    def seconds(clock: str) -> int:
        h, m, s = (int(part) for part in clock.split(":"))
        return h * 3600 + m * 60 + s

    assert 2 <= seconds(later) - seconds(first) <= 4
    wait_for_state(page, "stale", timeout=6000)
    stub_api.mode = "answer"
    wait_for_state(page, "live", timeout=5000)


def test_stale_when_data_is_older_than_ten_seconds(page, stub_api):
    """A worker that answers with an old as_of is stale too."""
    stub_api.set_body(sample_body())
    open_board(page, stub_api)
    stub_api.as_of = datetime.now(UTC) - timedelta(seconds=30)
    wait_for_state(page, "stale", timeout=3000)
    banner = stale_banner(page)
    assert banner == f"STALE \u2014 no new data since {stub_api.as_of:%H:%M:%S}"
    stub_api.as_of = None
    wait_for_state(page, "live", timeout=3000)


@pytest.mark.parametrize(
    ("reason", "banner"),
    [
        ("broker_unreachable", "STALE \u2014 worker cannot reach Kafka"),
        ("no_progress", "STALE \u2014 worker is not processing events"),
        (None, "STALE \u2014 worker reports its data is stale"),
        ("constructor", "STALE \u2014 worker reports its data is stale"),
    ],
)
def test_stale_when_the_worker_says_its_data_is_stale(reason, banner, page, stub_api):
    """The worker answers, fresh as_of, but says its data is stale (broker lost, no progress):
    the board believes it, says why, and goes live again when the worker does."""
    body = sample_body()
    stub_api.set_body(body)
    open_board(page, stub_api)
    body["stale"] = True
    body["stale_reason"] = reason
    stub_api.set_body(body)
    wait_for_state(page, "stale", timeout=3000)
    assert stale_banner(page) == banner
    assert page.locator('[data-testid="live-indicator"]').text_content() == "\u25cf stale"
    body["stale"] = False
    body["stale_reason"] = None
    stub_api.set_body(body)
    wait_for_state(page, "live", timeout=3000)
    assert stale_banner(page) is None


def test_a_worker_without_the_stale_fields_is_fresh(page, stub_api, read_board):
    """An /api/kpis body without `stale` (an older worker) is not stale by itself."""
    body = sample_body()
    del body["stale"], body["stale_reason"]
    stub_api.set_body(body)
    open_board(page, stub_api)
    page.wait_for_timeout(1500)  # a few more answers
    board = read_board(page)
    assert board["state"] == "live"
    assert board["stale"] is None


@pytest.mark.parametrize(
    "fragment", ["#window=%E0%A4%A", "#window=%", "#window=%FF", "#window=15m%", "#window=24h"]
)
def test_bad_url_hash_falls_back_to_the_default_window(
    fragment, page, stub_api, read_board, wallboard_format
):
    """A malformed or unknown hash shows the 1h window, live and full, never an empty board."""
    body = sample_body()
    stub_api.set_body(body)
    open_board(page, stub_api, fragment)
    board = read_board(page)
    assert board["window"] == "1h"
    assert_board_shows(board, body, "1h", wallboard_format)
    assert page.watch.page_errors == []
    page.evaluate("location.hash = '#window=15m'")
    page.wait_for_function(
        "() => document.querySelector('[aria-pressed=\"true\"]').dataset.window === '15m'"
    )
    page.evaluate(f"location.hash = {fragment!r}")  # changed while open: back to the default
    page.wait_for_function(
        "() => document.querySelector('[aria-pressed=\"true\"]').dataset.window === '1h'"
    )
    assert_board_shows(read_board(page), body, "1h", wallboard_format)
    assert page.watch.page_errors == []


def test_board_that_never_gets_an_answer_says_so(page, stub_api):
    """Worker up but /api/kpis failing from the start: 'connecting', then STALE after 5 s."""
    stub_api.mode = "error"
    page.goto(stub_api.url)
    loaded = datetime.now(UTC)
    assert page.evaluate("document.body.dataset.state") == "connecting"
    assert page.locator('[data-testid="live-indicator"]').text_content() == "\u25cf connecting"
    wait_for_state(page, "stale", timeout=7000)
    assert (datetime.now(UTC) - loaded).total_seconds() >= 4.5
    assert (stale_banner(page) or "").startswith("STALE \u2014 worker not answering since ")
    stub_api.set_body(sample_body())
    stub_api.mode = "answer"
    wait_for_state(page, "live", timeout=3000)


def test_as_of_is_shown_in_the_worker_time_zone(page, stub_api, read_board, wallboard_format):
    body = sample_body()
    body["timezone"] = "America/New_York"
    stub_api.set_body(body)
    open_board(page, stub_api)
    board = read_board(page)
    assert board["as_of"]["text"] == wallboard_format.clock(
        board["as_of"]["value"], body["timezone"]
    )
    assert board["as_of"]["text"] != wallboard_format.clock(board["as_of"]["value"], "UTC")
    assert page.locator('[data-testid="timezone"]').text_content() == "America/New_York"


def test_partial_data_banner(page, stub_api):
    body = sample_body()
    body["complete"] = False
    body["partitions"] = {"covered": 5, "total": 8}
    stub_api.set_body(body)
    open_board(page, stub_api)
    partial = page.locator('[data-testid="partial-banner"]')
    assert partial.is_visible()
    assert partial.text_content() == "Partial data: 5 of 8 partitions"
    body["complete"] = True
    body["partitions"] = {"covered": 8, "total": 8}
    stub_api.set_body(body)
    partial.wait_for(state="hidden", timeout=3000)


@pytest.mark.parametrize(
    ("width", "height"), [(1280, 720), (1366, 768), (1920, 1080), (3840, 2160)]
)
def test_full_screen_layout_is_readable_on_a_tv(
    width, height, page_factory, stub_api, read_board, save_screenshot
):
    """Everything fits the screen with large numbers, even with wide values and many queues."""
    body = sample_body()
    body["windows"]["1h"]["overall"] = kpis(86399.0, 0.999, 86399.0, 1.0, 1.0, -100.0)
    body["live"]["awaiting"] = {"ok": 888, "at_risk": 888, "breached": 888}
    body["live"]["oldest_awaiting_age_seconds"] = 3 * 86400 + 3599.0
    for i in range(30):
        body["live"]["queues"].append(live_queue(f"overflow-queue-{i:02}", 1, 0, 0, 10.0))
    page = page_factory(width, height)
    stub_api.set_body(body)
    open_board(page, stub_api)
    save_screenshot(page, f"wallboard-{width}x{height}.png")

    layout = page.evaluate("""() => {
      const box = (el) => el.getBoundingClientRect();
      const inside = (el) => { const b = box(el);
        return b.left >= 0 && b.top >= 0 && b.right <= innerWidth && b.bottom <= innerHeight; };
      const values = Array.from(document.querySelectorAll(
        "[data-kpi], [data-awaiting], [data-testid='oldest-age']"));
      return {
        scroll: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
        valuesInside: values.every(inside),
        valuesUnclipped: values.every((el) => el.scrollWidth <= el.clientWidth + 1),
        kpiFontPx: Math.min(...Array.from(document.querySelectorAll("[data-kpi]"))
                              .map((el) => parseFloat(getComputedStyle(el).fontSize))),
        visibleRowsInside: Array.from(document.querySelectorAll("[data-queue]"))
                              .filter((tr) => !tr.hidden).every(inside),
        more: document.querySelector("[data-testid='queues-more']").textContent,
      };
    }""")
    assert layout["scroll"] == [width, height]
    assert layout["valuesInside"]
    assert layout["valuesUnclipped"]
    assert layout["kpiFontPx"] >= 0.045 * width
    assert layout["visibleRowsInside"]
    board = read_board(page)
    hidden = sum(row["hidden"] for row in board["rows"])
    assert hidden > 0
    assert layout["more"] == f"+{hidden} more queues"
    # The worst queues (most breached) are the ones on screen.
    assert not any(row["hidden"] for row in board["rows"][:3])


def test_page_works_under_strict_csp_and_loads_nothing_from_elsewhere(page, stub_api):
    """Served with the worker's CSP: no violation, no error, every request to the worker."""
    stub_api.set_body(sample_body())
    open_board(page, stub_api)
    page.wait_for_timeout(1500)
    assert page.watch.console_errors == []
    assert page.watch.page_errors == []
    assert page.watch.requests
    assert all(url.startswith(stub_api.url) for url in page.watch.requests)
    assert {
        "/",
        "/static/wallboard.css",
        "/static/wallboard.js",
        "/static/inter.ttf",
        "/api/kpis",
    } <= set(stub_api.paths)
