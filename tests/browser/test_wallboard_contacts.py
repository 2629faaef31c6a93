"""The contact-centre board (`#board=contacts`) in real headless Chromium, fed by StubKpiApi.

Every expected text is written out by hand from the fixed body below.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.browser.test_wallboard_fit import LONG_QUEUE, layout
from tests.browser.test_wallboard_page import CSS_COLOURS, THRESHOLDS, open_board, sample_body

CONTACT_THRESHOLDS = {
    "contact_service_level_ratio": {"direction": "higher_is_better", "green": 0.9, "amber": 0.8},
    "contact_abandonment_ratio": {"direction": "lower_is_better", "green": 0.05, "amber": 0.1},
}


def contact_row(
    sl: float | None, abandon: float | None, asa: float | None, aht: float | None, n: int = 100
) -> dict[str, Any]:
    return {
        "contact_service_level_ratio": sl,
        "contact_abandonment_ratio": abandon,
        "contact_answer_time_average_seconds": asa,
        "contact_handle_time_average_seconds": aht,
        "contacts_answered": n,
        "contacts_abandoned": n // 10,
        "contacts_handled": n - 5,
    }


def contact_live(queue: str | None, waiting: int, longest: float | None) -> dict[str, Any]:
    row = {
        "waiting": waiting,
        "in_progress": 3,
        "stale": 0,
        "oldest_waiting_queued_at": None,
        "longest_wait_seconds": longest,
    }
    return row if queue is None else {"queue": queue, **row}


def contact_body() -> dict[str, Any]:
    """The ticket sample body with a contact centre: the 1h and 15m windows differ."""
    body = sample_body()
    body["thresholds"] = {**copy.deepcopy(THRESHOLDS), **CONTACT_THRESHOLDS}
    body["contact_centre"] = {
        "windows": {
            "1h": {
                "overall": contact_row(0.855, 0.1, 42.0, 333.0, n=180),
                "queues": [
                    {"queue": "billing", **contact_row(None, None, None, None, n=0)},
                    {"queue": "sales", **contact_row(0.95, 0.02, 12.0, 240.0)},
                    {"queue": "support", **contact_row(0.5, 0.25, 95.0, 4000.0, n=8)},
                ],
                "occupancy_ratio": 0.7349,
            },
            "15m": {
                "overall": contact_row(0.97, 0.03, 7.0, 59.0, n=30),
                "queues": [{"queue": "sales", **contact_row(0.97, 0.03, 7.0, 59.0, n=30)}],
                "occupancy_ratio": None,
            },
        },
        "live": {
            **contact_live(None, 7, 754.0),
            "in_progress": 12,
            "queues": [contact_live("sales", 5, 754.0), contact_live("support", 2, 61.0)],
        },
        "agents": {"available": 4, "busy": 9, "after_contact_work": 2, "away": 1, "offline": 6},
    }
    return body


_READ_JS = """() => {
  const text = (sel) => document.querySelector(sel).textContent.trim();
  const tile = (key) => { const el = document.querySelector(`[data-ckpi="${key}"]`);
    const t = el.closest(".tile");
    return [el.textContent, getComputedStyle(el).color, t.dataset.few,
            t.querySelector(".basis").textContent]; };
  return {
    visible: Array.from(document.querySelectorAll("main[data-board]"))
      .filter((b) => b.getClientRects().length > 0).map((b) => b.dataset.board),
    tiles: Object.fromEntries(["contact_service_level_ratio", "contact_abandonment_ratio",
      "occupancy_ratio", "contact_answer_time_average_seconds",
      "contact_handle_time_average_seconds"].map((k) => [k, tile(k)])),
    waiting: text("[data-testid='contacts-waiting']"),
    inProgress: text("[data-testid='contacts-in-progress']"),
    longest: text("[data-testid='longest-wait']"),
    agents: Object.fromEntries(Array.from(document.querySelectorAll("[data-agents]"))
      .map((el) => [el.dataset.agents, el.textContent])),
    rows: Array.from(document.querySelectorAll("[data-testid='contact-queue-rows'] tr"))
      .map((tr) => Array.from(tr.cells).map((td) => td.textContent)),
    rowColours: Array.from(document.querySelectorAll(
      "[data-testid='contact-queue-rows'] td[data-col='contact_service_level_ratio']"))
      .map((td) => getComputedStyle(td).color),
  };
}"""


def read_contacts(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(_READ_JS)
    return result


def test_contact_board_shows_the_hand_worked_values(page, stub_api):
    """Tiles, agents by status, longest wait and queue rows (longest wait first), coloured by
    the thresholds /api/kpis carries; a KPI on fewer answers than min_answers is greyed."""
    stub_api.set_body(contact_body())
    open_board(page, stub_api, "#board=contacts")
    board = read_contacts(page)
    assert board["visible"] == ["contacts"]
    green, amber = CSS_COLOURS["green"], CSS_COLOURS["amber"]
    assert board["tiles"]["contact_service_level_ratio"] == ["85.5%", amber, "false", "198 offered"]
    assert board["tiles"]["contact_abandonment_ratio"] == ["10.0%", amber, "false", "198 offered"]
    assert board["tiles"]["occupancy_ratio"][:3] == ["73.5%", "rgb(232, 237, 243)", "false"]
    assert board["tiles"]["contact_answer_time_average_seconds"][0] == "42s"
    assert board["tiles"]["contact_answer_time_average_seconds"][3] == "180 answered"
    assert board["tiles"]["contact_handle_time_average_seconds"][0] == "5m 33s"
    assert board["tiles"]["contact_handle_time_average_seconds"][3] == "175 handled"
    assert board["waiting"] == "7"
    assert board["inProgress"] == "12 in progress"
    assert re.fullmatch(r"0:12:3[4-9]", board["longest"]), board["longest"]
    assert board["agents"] == {
        "available": "4",
        "busy": "9",
        "after_contact_work": "2",
        "away": "1",
        "offline": "6",
    }
    rows = board["rows"]
    assert [row[0] for row in rows] == ["sales", "support", "billing"]
    assert rows[0] == ["sales", "5", "0:12:34", "95.0%", "2.0%", "12s", "4m 0s"]
    assert rows[1] == ["support", "2", "0:01:01", "50.0%", "25.0%", "1m 35s", "1h 6m"]
    assert rows[2] == ["billing", "0", "\u2014", "\u2014", "\u2014", "\u2014", "\u2014"]
    # sales green; support rests on 8 + 0 offered < min_answers 20: greyed (muted), not red
    assert board["rowColours"] == [green, "rgb(140, 154, 171)", "rgb(232, 237, 243)"]
    assert page.watch.page_errors == []


def test_longest_wait_and_occupancy_are_coloured_by_the_policy_levels(page, stub_api):
    """With the policy's levels (longest wait 60 / 120 s, occupancy 0.85 / 0.90, lower is
    better): 754 s waiting is red, support's 61 s amber; occupancy 73.4 % green, 95 % red."""
    body = contact_body()
    body["thresholds"]["contact_longest_wait_seconds"] = {
        "direction": "lower_is_better",
        "green": 60,
        "amber": 120,
    }
    body["thresholds"]["occupancy_ratio"] = {
        "direction": "lower_is_better",
        "green": 0.85,
        "amber": 0.9,
    }
    stub_api.set_body(body)
    open_board(page, stub_api, "#board=contacts")
    colour = "(sel) => Array.from(document.querySelectorAll(sel)).map((el) => getComputedStyle(el).color)"
    green, amber, red = CSS_COLOURS["green"], CSS_COLOURS["amber"], CSS_COLOURS["red"]
    assert page.evaluate(colour, "[data-testid='longest-wait']") == [red]
    assert page.evaluate(colour, "td[data-col='longest_wait_seconds']") == [
        red,  # sales 754 s
        amber,  # support 61 s
        "rgb(232, 237, 243)",  # billing: nobody waiting, no colour
    ]
    assert page.evaluate(colour, "[data-ckpi='occupancy_ratio']") == [green]
    body["contact_centre"]["windows"]["1h"]["occupancy_ratio"] = 0.95
    stub_api.set_body(body)
    page.wait_for_function(
        "() => document.querySelector('[data-ckpi=\"occupancy_ratio\"]').textContent === '95.0%'"
    )
    assert page.evaluate(colour, "[data-ckpi='occupancy_ratio']") == [red]


@pytest.mark.parametrize(
    ("service_level", "abandonment", "occupancy", "shown"),
    [
        (0.9999, 0.0001, 0.8501, ["99.9%", "0.1%", "85.1%"]),
        (1.0, 0.0, 0.0, ["100.0%", "0.0%", "0.0%"]),
        (0.5, 0.25, 0.73, ["50.0%", "25.0%", "73.0%"]),
        (0.8125, 0.0125, 0.8125, ["81.2%", "1.3%", "81.3%"]),
    ],
)
def test_ratios_are_rounded_toward_worse(
    page, stub_api, service_level, abandonment, occupancy, shown
):
    """Service level rounds down (100.0% only when every contact met it); abandonment and
    occupancy round up (0.0% only when nobody abandoned): no tile looks better than it is."""
    body = contact_body()
    window = body["contact_centre"]["windows"]["1h"]
    window["overall"].update(
        contact_service_level_ratio=service_level, contact_abandonment_ratio=abandonment
    )
    window["occupancy_ratio"] = occupancy
    stub_api.set_body(body)
    open_board(page, stub_api, "#board=contacts")
    tiles = read_contacts(page)["tiles"]
    keys = ["contact_service_level_ratio", "contact_abandonment_ratio", "occupancy_ratio"]
    assert [tiles[key][0] for key in keys] == shown


def test_contact_board_follows_the_window_and_hash_changes(page, stub_api):
    """`#board=contacts&window=15m` shows the 15m figures; the window buttons keep the board;
    going back to no hash shows the ticket board."""
    stub_api.set_body(contact_body())
    open_board(page, stub_api, "#board=contacts&window=15m")
    board = read_contacts(page)
    assert board["tiles"]["contact_service_level_ratio"][0] == "97.0%"
    assert board["tiles"]["contact_handle_time_average_seconds"][0] == "59s"
    assert board["tiles"]["occupancy_ratio"][0] == "\u2014"
    page.click("[data-window='1h']")
    page.wait_for_function(
        "() => document.querySelector('[data-ckpi=\"contact_service_level_ratio\"]')"
        ".textContent === '85.5%'"
    )
    assert page.evaluate("location.hash") == "#board=contacts&window=1h"
    assert read_contacts(page)["visible"] == ["contacts"]
    page.evaluate("location.hash = ''")
    page.wait_for_function("() => document.body.dataset.board === 'tickets'")
    assert read_contacts(page)["visible"] == ["tickets"]
    assert page.watch.page_errors == []


@pytest.mark.parametrize("fragment", ["#board=%E0%A4%A", "#board=agents", "#board="])
def test_bad_board_in_the_hash_shows_the_ticket_board(fragment, page, stub_api):
    stub_api.set_body(contact_body())
    open_board(page, stub_api, fragment)
    assert read_contacts(page)["visible"] == ["tickets"]
    assert page.locator('[data-kpi="csat_ratio"]').text_content() == "81.2%"
    assert page.watch.page_errors == []


def widest_contact_body() -> dict[str, Any]:
    """Wide but real values: day-long handle times, four-digit counts, a contact waiting
    three days, 99.9 %, a 128-character queue name."""
    body = contact_body()
    centre = body["contact_centre"]
    centre["windows"]["1h"]["overall"] = contact_row(0.999, 0.999, 86399.0, 86399.0, n=8888)
    centre["windows"]["1h"]["occupancy_ratio"] = 0.999
    centre["windows"]["1h"]["queues"].append(
        {"queue": LONG_QUEUE, **contact_row(0.999, 0.999, 86399.0, 86399.0, n=8888)}
    )
    centre["live"].update(waiting=8888, in_progress=8888, longest_wait_seconds=3 * 86400 + 3599.0)
    centre["live"]["queues"].append(contact_live(LONG_QUEUE, 8888, 3 * 86400 + 3599.0))
    centre["agents"] = dict.fromkeys(centre["agents"], 8888)
    return body


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (1280, 720)])
def test_contact_board_fits_on_a_tv(width, height, page_factory, stub_api, save_screenshot):
    page = page_factory(width, height)
    stub_api.set_body(widest_contact_body())
    open_board(page, stub_api, "#board=contacts")
    shown = layout(page)
    save_screenshot(page, f"wallboard-contacts-{width}x{height}.png")
    board = read_contacts(page)
    assert board["visible"] == ["contacts"]
    assert board["tiles"]["contact_abandonment_ratio"][:2] == ["99.9%", CSS_COLOURS["red"]]
    assert board["waiting"] == "8888"
    assert shown["scroll"] == [width, height]
    assert shown["overflowing"] == []
    assert shown["outside"] == []
    assert shown["namesCut"] == [LONG_QUEUE]
    rem = width / 100
    assert shown["cellPx"] >= 0.9 * 1.75 * rem
    big = page.evaluate(
        "Math.min(...Array.from(document.querySelectorAll('[data-ckpi]'))"
        ".map((el) => parseFloat(getComputedStyle(el).fontSize)))"
    )
    assert big >= 0.6 * 5 * rem


def test_queue_filter_shows_one_queue_on_the_ticket_board(
    page, stub_api, read_board, save_screenshot
):
    """`#queue=complaints`: the tiles, awaiting counts, oldest age and table are that queue's
    (hand-worked from its rows of the sample body), the header names it, links keep it."""
    stub_api.set_body(contact_body())
    open_board(page, stub_api, "#queue=complaints")
    board = read_board(page)
    tiles = {key: tile["text"] for key, tile in board["tiles"].items()}
    assert tiles == {
        "first_response_time_average_seconds": "30m 50s",
        "first_response_sla_attainment_ratio": "71.0%",
        "csat_ratio": "62.0%",
        "resolution_time_average_seconds": "8h 28m",
        "resolution_sla_attainment_ratio": "66.0%",
        "nps_score": "\u221218",
    }
    assert {k: v["text"] for k, v in board["awaiting"].items()} == {
        "ok": "2",
        "at_risk": "2",
        "breached": "3",
    }
    assert board["open"]["text"] == "10 open"
    assert re.fullmatch(r"4:15:2\d", board["oldest"]["text"]), board["oldest"]["text"]
    assert [row["queue"] for row in board["rows"]] == ["complaints"]
    save_screenshot(page, "wallboard-queue-filter.png")
    assert page.get_attribute("[data-testid='queue-filter']", "title") == "Queue: complaints"
    assert (
        page.evaluate(
            "getComputedStyle(document.querySelector(\"[data-testid='queue-filter']\"), '::after')"
            ".content"
        )
        == '"Queue: complaints"'  # what the board draws
    )
    assert page.get_attribute("[data-testid='queue-filter']", "data-queue") == "complaints"
    links = page.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('[data-board-link]'))"
        ".map((a) => [a.dataset.boardLink, a.getAttribute('href')]))"
    )
    assert links == {
        "tickets": "/#queue=complaints",
        "contacts": "/#board=contacts&queue=complaints",
        "agents": "/agents",
    }
    page.click("[data-window='15m']")  # complaints has no 15m row: nothing to show
    page.wait_for_function("() => location.hash === '#window=15m&queue=complaints'")
    page.wait_for_function(
        "() => document.querySelector('[data-kpi=\"csat_ratio\"]').textContent === '\u2014'"
    )
    assert page.watch.page_errors == []


def test_queue_filter_on_the_contact_board_and_an_unknown_queue(page, stub_api):
    """`#board=contacts&queue=support`: support's figures (8 offered: greyed), its waiting
    contacts and longest wait; occupancy and agents by status stay over all teams. An unknown
    queue shows dashes, never another queue's numbers."""
    stub_api.set_body(contact_body())
    open_board(page, stub_api, "#board=contacts&queue=support")
    board = read_contacts(page)
    muted = "rgb(140, 154, 171)"
    assert board["tiles"]["contact_service_level_ratio"] == [
        "50.0%",
        muted,
        "true",
        "8 offered \u2014 too few to judge",
    ]
    assert board["tiles"]["contact_abandonment_ratio"][0] == "25.0%"
    assert board["tiles"]["contact_answer_time_average_seconds"][0] == "1m 35s"
    assert board["tiles"]["contact_handle_time_average_seconds"][0] == "1h 6m"
    assert board["tiles"]["occupancy_ratio"][0] == "73.5%"
    assert (board["waiting"], board["inProgress"]) == ("2", "3 in progress")
    assert re.fullmatch(r"0:01:0[1-6]", board["longest"]), board["longest"]
    assert board["agents"]["busy"] == "9"
    assert [row[0] for row in board["rows"]] == ["support"]
    page.evaluate("location.hash = '#board=contacts&queue=nosuch'")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"contacts-waiting\"]').textContent === '\u2014'"
    )
    board = read_contacts(page)
    assert board["tiles"]["contact_service_level_ratio"][0] == "\u2014"
    assert board["longest"] == "\u2014"
    assert board["rows"] == []
    assert page.watch.page_errors == []


def test_the_longest_queue_name_as_filter_still_fits(page_factory, stub_api):
    """`#queue=` with a 128-character name at 1280x720: the name is cut with an ellipsis
    (whole in the tooltip), the header keeps its size, nothing leaves the screen."""
    page = page_factory(1280, 720)
    stub_api.set_body(widest_contact_body())
    open_board(page, stub_api, f"#board=contacts&queue={LONG_QUEUE}")
    shown = layout(page)
    assert shown["scroll"] == [1280, 720]
    assert shown["overflowing"] == []
    assert shown["outside"] == []
    assert page.get_attribute("[data-testid='queue-filter']", "title") == f"Queue: {LONG_QUEUE}"
    box = page.locator("[data-testid='queue-filter']").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 1280 and box["height"] < 720 / 10
    link_px = page.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('[aria-current=\"page\"]')).fontSize)"
    )
    assert link_px >= 0.9 * 2.1 * 12.8  # the title's 2.1rem, hardly shrunk
    assert read_contacts(page)["waiting"] == "8888"
