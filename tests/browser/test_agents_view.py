"""The agents view (`/agents`) in real headless Chromium, fed by StubKpiApi.

Every expected text and order is worked out by hand from the fixed body below.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.browser.test_wallboard_fit import TV_SIZES, layout
from tests.browser.test_wallboard_page import (
    CSS_COLOURS,
    THRESHOLDS,
    stale_banner,
    wait_for_state,
)

DASH, MINUS = "\u2014", "\u2212"
MUTED = "rgb(140, 154, 171)"
LONG_NAME = "a" * 128  # the longest agent id the contract allows
LONG_TEAM = "t" * 128


def figures(
    handled: int = 0,
    aht: float | None = None,
    occupancy: float | None = None,
    replies: int = 0,
    frt: float | None = None,
    frt_sla: float | None = None,
    resolved: int = 0,
    resolution: float | None = None,
    one_touch: float | None = None,
    reopened: float | None = None,
    csat_n: int = 0,
    csat: float | None = None,
    nps_n: int = 0,
    nps: float | None = None,
) -> dict[str, Any]:
    """One window of an agent as /api/agents gives it."""
    return {
        "first_responses": replies,
        "first_response_time_average_seconds": frt,
        "first_response_sla_attainment_ratio": frt_sla,
        "resolutions": resolved,
        "resolution_time_average_seconds": resolution,
        "one_touch_resolution_ratio": one_touch,
        "reopened_resolution_ratio": reopened,
        "csat_responses": csat_n,
        "csat_ratio": csat,
        "nps_responses": nps_n,
        "nps_score": nps,
        "contacts_answered": handled,
        "answer_time_average_seconds": None,
        "contacts_handled": handled,
        "handle_time_average_seconds": aht,
        "occupancy_ratio": occupancy,
    }


def rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def agent(
    name: str, status: str | None, seconds_ago: float | None, team: str | None, **windows: Any
) -> dict[str, Any]:
    since = None if seconds_ago is None else datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return {
        "agent": name,
        "status": status,
        "since": None if since is None else rfc3339(since),
        "team": team,
        "windows": windows,
    }


def agents_body(*agents: dict[str, Any]) -> dict[str, Any]:
    return {
        "stale": False,
        "stale_reason": None,
        "complete": True,
        "partitions": {"covered": 12, "total": 12},
        "timezone": "UTC",
        "thresholds": copy.deepcopy(THRESHOLDS),
        "min_answers": 20,
        "agents": list(agents),
    }


def sample_agents() -> dict[str, Any]:
    """Four agents: ana and cy in sales, bo (few answers) in support, dee with tickets only."""
    return agents_body(
        agent(
            "ana",
            "available",
            754,
            "sales",
            **{
                "1h": figures(
                    30, 240.0, 0.8123, 25, 600.0, 0.92, 22, 7200.0, 0.5, 0.1, 21, 0.9, 21, 40.0
                ),
                "15m": figures(7, 61.0, 0.5, 2, 30.0, 1.0),
            },
        ),
        agent(
            "bo",
            "busy",
            61,
            "support",
            **{
                "1h": figures(
                    5, 95.0, 0.95, 3, 4000.0, 1 / 3, 0, None, None, None, 2, 0.5, 2, -50.0
                )
            },
        ),
        agent(
            "cy",
            "after_contact_work",
            7205,
            "sales",
            **{
                "1h": figures(
                    40, 300.0, None, 30, 1000.0, 0.75, 25, 90000.0, 0.2, 0.04, 25, 0.7, 25, 25.0
                ),
                "15m": figures(),  # nothing in the last 15 minutes
            },
        ),
        agent("dee", None, None, None, **{"1h": figures(resolved=20, resolution=3600.0)}),
    )


_READ_JS = """() => {
  const rows = Array.from(document.querySelectorAll("[data-testid='agent-rows'] tr"));
  const footer = document.querySelector("[data-testid='agents-page']");
  return {
    board: document.body.dataset.board,
    visible: Array.from(document.querySelectorAll("main[data-board]"))
      .filter((b) => b.getClientRects().length > 0).map((b) => b.dataset.board),
    current: Array.from(document.querySelectorAll("[data-board-link][aria-current='page']"))
      .map((a) => a.textContent),
    links: Object.fromEntries(Array.from(document.querySelectorAll("[data-board-link]"))
      .map((a) => [a.dataset.boardLink, a.getAttribute("href")])),
    headings: Array.from(document.querySelectorAll("[data-testid='agent-columns'] th"))
      .map((th) => th.textContent),
    order: rows.map((tr) => tr.dataset.agent),
    shown: rows.filter((tr) => !tr.hidden).map((tr) => tr.dataset.agent),
    cells: Object.fromEntries(rows.map((tr) => [tr.dataset.agent,
      Array.from(tr.cells).map((td) => td.textContent)])),
    colours: Object.fromEntries(rows.map((tr) => [tr.dataset.agent, Object.fromEntries(
      Array.from(tr.querySelectorAll("td[data-col]"))
        .map((td) => [td.dataset.col, getComputedStyle(td).color]))])),
    footer: footer.textContent,
    page: [Number(footer.dataset.page), Number(footer.dataset.pages)],
  };
}"""


def read_agents(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(_READ_JS)
    return result


def open_agents(page: Any, api: Any, fragment: str = "") -> None:
    page.goto(api.url + "agents" + fragment)
    wait_for_state(page, "live", timeout=5000)


def wait_for_order(page: Any, order: list[str]) -> None:
    page.wait_for_function(
        "(order) => Array.from(document.querySelectorAll(\"[data-testid='agent-rows'] tr\"))"
        ".map((tr) => tr.dataset.agent).join() === order.join()",
        arg=order,
        timeout=3000,
    )


def test_agents_view_shows_the_hand_worked_values(page, stub_api):
    """Status and time in it, every per-agent KPI of the 1h window, formatted, coloured by
    the thresholds, greyed under min_answers (bo: 5 handled, 3 replies, 2 answers)."""
    stub_api.set_body(sample_agents())
    open_agents(page, stub_api)
    view = read_agents(page)
    assert view["board"] == "agents"
    assert view["visible"] == ["agents"]
    assert view["current"] == ["Agents"]
    assert view["headings"] == [
        "Agent", "Team", "Status \u25b2", "In status", "Handled", "AHT", "Occupancy", "FRT",
        "FRT SLA", "Resolved", "Res. time", "1-touch", "Reopened", "CSAT", "NPS",
    ]  # fmt: skip
    assert view["order"] == ["ana", "bo", "cy", "dee"]  # available, busy, wrap-up, none last
    cells = view["cells"]
    assert re.fullmatch(r"0:12:3[4-9]", cells["ana"][3]), cells["ana"][3]
    assert cells["ana"][:3] + cells["ana"][4:] == [
        "ana", "sales", "Available", "30", "4m 0s", "81.3%", "10m 0s", "92.0%", "22", "2h 0m",
        "50.0%", "10.0%", "90.0%", "+40",
    ]  # fmt: skip
    assert re.fullmatch(r"0:01:0[1-6]", cells["bo"][3]), cells["bo"][3]
    assert cells["bo"][:3] + cells["bo"][4:] == [
        "bo", "support", "Busy", "5", "1m 35s", "95.0%", "1h 6m", "33.3%", "0", DASH, DASH,
        DASH, "50.0%", f"{MINUS}50",
    ]  # fmt: skip
    assert re.fullmatch(r"2:00:0[5-9]", cells["cy"][3]), cells["cy"][3]
    assert cells["cy"][:3] + cells["cy"][4:] == [
        "cy", "sales", "Wrap-up", "40", "5m 0s", DASH, "16m 40s", "75.0%", "25", "1d 1h",
        "20.0%", "4.0%", "70.0%", "+25",
    ]  # fmt: skip
    assert cells["dee"] == [
        "dee", DASH, DASH, DASH, "0", DASH, DASH, DASH, DASH, "20", "1h 0m", DASH, DASH, DASH,
        DASH,
    ]  # fmt: skip
    green, amber, red = CSS_COLOURS["green"], CSS_COLOURS["amber"], CSS_COLOURS["red"]
    ana, bo, cy = view["colours"]["ana"], view["colours"]["bo"], view["colours"]["cy"]
    assert (ana["frt"], ana["frt_sla"], ana["resolution"], ana["csat"], ana["nps"]) == (
        green, green, green, green, green,
    )  # fmt: skip
    assert (cy["frt"], cy["frt_sla"], cy["resolution"], cy["csat"], cy["nps"]) == (
        amber, red, red, red, amber,
    )  # fmt: skip
    # bo's KPIs rest on 5 contacts, 3 replies, 2 answers: greyed, whatever their level
    assert (bo["aht"], bo["frt"], bo["frt_sla"], bo["csat"], bo["nps"]) == (MUTED,) * 5
    assert view["footer"] == "4 agents"
    assert page.watch.page_errors == []
    assert page.watch.console_errors == []


@pytest.mark.parametrize(
    ("fragment", "order"),
    [
        ("", ["ana", "bo", "cy", "dee"]),
        ("#sort=status&dir=desc", ["cy", "bo", "ana", "dee"]),  # no status stays last
        ("#sort=agent&dir=desc", ["dee", "cy", "bo", "ana"]),
        ("#sort=aht", ["bo", "ana", "cy", "dee"]),  # 95, 240, 300, none
        ("#sort=aht&dir=desc", ["cy", "ana", "bo", "dee"]),
        ("#sort=in_status&dir=desc", ["cy", "ana", "bo", "dee"]),  # 2 h, 12 min, 1 min
        ("#sort=csat&dir=desc", ["ana", "cy", "bo", "dee"]),  # 0.9, 0.7, 0.5
        ("#sort=nps", ["bo", "cy", "ana", "dee"]),  # -50, +25, +40
        ("#sort=resolved&dir=desc", ["cy", "ana", "dee", "bo"]),  # 25, 22, 20, 0
        ("#sort=team", ["ana", "cy", "bo", "dee"]),  # sales, sales (by name), support
        ("#sort=bogus&dir=up", ["ana", "bo", "cy", "dee"]),  # unknown: the default order
    ],
)
def test_url_parameters_sort_the_roster(fragment, order, page, stub_api):
    stub_api.set_body(sample_agents())
    open_agents(page, stub_api, fragment)
    assert read_agents(page)["order"] == order
    assert page.watch.page_errors == []


def test_clicking_a_heading_sorts_and_keeps_it_in_the_url(page, stub_api):
    stub_api.set_body(sample_agents())
    open_agents(page, stub_api, "#window=1h")
    page.click("button[data-sort='aht']")
    wait_for_order(page, ["bo", "ana", "cy", "dee"])
    assert page.evaluate("location.hash") == "#window=1h&sort=aht&dir=asc"
    assert page.get_attribute("th.a-aht", "aria-sort") == "ascending"
    page.click("button[data-sort='aht']")
    wait_for_order(page, ["cy", "ana", "bo", "dee"])
    assert page.evaluate("location.hash") == "#window=1h&sort=aht&dir=desc"
    assert read_agents(page)["headings"][5] == "AHT \u25bc"
    page.reload()  # a TV pointed at this URL shows the same order
    wait_for_state(page, "live", timeout=5000)
    assert read_agents(page)["order"] == ["cy", "ana", "bo", "dee"]


def test_team_filter_and_window_from_the_url(page, stub_api):
    """`#team=sales&window=15m`: ana and cy only, with ana's 15m figures; the board links
    keep the window."""
    stub_api.set_body(sample_agents())
    open_agents(page, stub_api, "#team=sales&window=15m")
    view = read_agents(page)
    assert view["order"] == ["ana", "cy"]
    assert view["cells"]["ana"][4:9] == ["7", "1m 1s", "50.0%", "30s", "100.0%"]
    assert view["cells"]["cy"][4:] == ["0", DASH, DASH, DASH, DASH, "0"] + [DASH] * 5
    assert view["footer"] == "team sales \u00b7 2 agents"
    assert view["links"] == {
        "tickets": "/#window=15m",
        "contacts": "/#board=contacts&window=15m",
        "agents": "/agents#window=15m",
    }
    page.click("[data-window='1h']")
    page.wait_for_function("() => location.hash === '#window=1h&team=sales'")
    assert read_agents(page)["cells"]["ana"][4] == "30"


def test_time_in_status_ticks_between_answers(page, stub_api):
    stub_api.set_body(sample_agents())
    open_agents(page, stub_api)
    stub_api.mode = "hang"
    page.wait_for_timeout(500)
    answers = stub_api.kpi_answers
    first = read_agents(page)["cells"]["ana"][3]
    page.wait_for_timeout(2600)
    later = read_agents(page)["cells"]["ana"][3]
    assert stub_api.kpi_answers == answers  # no answer in between: the page ticked by itself

    def seconds(clock: str) -> int:
        h, m, s = (int(part) for part in clock.split(":"))
        return h * 3600 + m * 60 + s

    assert 2 <= seconds(later) - seconds(first) <= 4


def test_stale_banner_on_the_agents_view(page, stub_api):
    """The worker says stale, then stops answering: the same banners as the wallboard."""
    body = sample_agents()
    stub_api.set_body(body)
    open_agents(page, stub_api)
    body["stale"], body["stale_reason"] = True, "broker_unreachable"
    stub_api.set_body(body)
    wait_for_state(page, "stale", timeout=3000)
    assert stale_banner(page) == "STALE \u2014 worker cannot reach Kafka"
    opacity = page.evaluate(
        "Number(getComputedStyle(document.querySelector('.board-agents')).opacity)"
    )
    assert opacity < 0.5
    body["stale"], body["stale_reason"] = False, None
    stub_api.set_body(body)
    wait_for_state(page, "live", timeout=3000)
    stub_api.stop()
    wait_for_state(page, "stale", timeout=8000)
    assert (stale_banner(page) or "").startswith("STALE \u2014 worker not answering since ")


def roster(count: int) -> dict[str, Any]:
    """`count` available agents agent-01, agent-02, ... (sorted by name: status ties)."""
    return agents_body(
        *(
            agent(f"agent-{i:02d}", "available", 60, "sales", **{"1h": figures(10, 200.0)})
            for i in range(1, count + 1)
        )
    )


def test_a_roster_longer_than_the_screen_turns_pages(page, stub_api):
    """60 agents at 1920x1080: no scrollbar; the rows that fit are shown a page at a time,
    'page k/n' in the footer, turning every 2 s (#rotate=2); every agent on exactly one page."""
    names = [f"agent-{i:02d}" for i in range(1, 61)]
    stub_api.set_body(roster(60))
    open_agents(page, stub_api, "#rotate=2")
    view = read_agents(page)
    assert view["order"] == names
    first, pages = view["page"]
    assert first == 1 and pages > 1
    per_page = len(view["shown"])
    assert pages == -(-60 // per_page)
    assert view["footer"] == f"60 agents \u00b7 page 1/{pages}"
    assert page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    ) == [1920, 1080]
    seen = list(view["shown"])
    for number in range(2, pages + 1):
        page.wait_for_function(
            f"() => document.querySelector(\"[data-testid='agents-page']\").dataset.page === '{number}'",
            timeout=4000,
        )
        shown = read_agents(page)["shown"]
        assert shown == names[(number - 1) * per_page : number * per_page]
        seen += shown
    assert seen == names
    page.wait_for_function(
        "() => document.querySelector(\"[data-testid='agents-page']\").dataset.page === '1'",
        timeout=4000,
    )


def widest_agents() -> dict[str, Any]:
    """Wide but real values: 128-character names and teams, three days in a status,
    day-long averages, four-digit counts, 99.9 %, NPS -100; 30 of them."""
    wide = figures(
        8888,
        86399.0,
        0.999,
        8888,
        86399.0,
        0.999,
        8888,
        86399.0,
        0.999,
        0.999,
        8888,
        0.999,
        8888,
        -100.0,
    )
    rows = [agent(LONG_NAME, "after_contact_work", 3 * 86400 + 3599, LONG_TEAM, **{"1h": wide})]
    rows += [agent(f"agent-{i:02d}", "available", 60, "sales", **{"1h": wide}) for i in range(29)]
    return agents_body(*rows)


@pytest.mark.parametrize(("width", "height"), TV_SIZES)
def test_agents_view_fits_on_every_tv(width, height, page_factory, stub_api, save_screenshot):
    page = page_factory(width, height)
    stub_api.set_body(widest_agents())
    open_agents(page, stub_api, "#sort=status&dir=desc")
    shown = layout(page)
    save_screenshot(page, f"agents-{width}x{height}.png")
    view = read_agents(page)
    assert view["order"][0] == LONG_NAME
    assert view["cells"][LONG_NAME][2:6] == [
        "Wrap-up",
        view["cells"][LONG_NAME][3],
        "8888",
        "23h 59m",
    ]
    assert re.fullmatch(r"3d [01]h", view["cells"][LONG_NAME][3])
    assert shown["scroll"] == [width, height]
    assert shown["overflowing"] == []
    assert shown["outside"] == []
    assert sorted(shown["namesCut"]) == sorted([LONG_NAME, LONG_TEAM])
    rem = min(width / 100, height * 0.01778)  # the CSS's 1rem
    # the table is 2rem; eleven day-long figures side by side still keep 60 % of it
    assert shown["rosterPx"] >= 0.6 * 2 * rem, (shown["rosterPx"], rem)


@pytest.mark.parametrize(
    ("columns", "headings", "ana"),
    [
        ("contacts", ["Handled", "AHT", "Occupancy"], ["30", "4m 0s", "81.3%"]),
        (
            "tickets",
            ["FRT", "FRT SLA", "Resolved", "Res. time", "1-touch", "Reopened", "CSAT", "NPS"],
            ["10m 0s", "92.0%", "22", "2h 0m", "50.0%", "10.0%", "90.0%", "+40"],
        ),
    ],
)
def test_a_column_set_shows_fewer_bigger_columns(columns, headings, ana, page_factory, stub_api):
    """`#columns=contacts|tickets`: the agent's own four columns and that set only; with
    the widest values the table keeps more of its 2rem than with all fifteen columns."""
    page = page_factory(1920, 1080)
    stub_api.set_body(sample_agents())
    open_agents(page, stub_api, f"#columns={columns}&sort=agent")
    view = read_agents(page)
    assert view["headings"] == ["Agent \u25b2", "Team", "Status", "In status", *headings]
    assert view["cells"]["ana"][:3] == ["ana", "sales", "Available"]
    assert view["cells"]["ana"][4:] == ana
    stub_api.set_body(widest_agents())
    page.wait_for_function(f"() => document.querySelector('[data-agent=\"{LONG_NAME}\"]')")
    shown = layout(page)
    assert shown["overflowing"] == [] and shown["outside"] == []
    assert shown["rosterPx"] >= 0.85 * 2 * 19.2  # 2rem at 1920 wide, against ~0.62 for all


def test_agents_view_not_ready_then_partial(page, stub_api):
    """/api/agents failing from the start: 'connecting', then STALE after 5 s; once it
    answers with a worker missing partitions, the partial-data banner says so."""
    stub_api.mode = "error"
    page.goto(stub_api.url + "agents")
    assert page.evaluate("document.body.dataset.state") == "connecting"
    assert page.evaluate("document.body.dataset.board") == "agents"
    wait_for_state(page, "stale", timeout=7000)
    assert (stale_banner(page) or "").startswith("STALE \u2014 worker not answering since ")
    body = sample_agents()
    body["complete"], body["partitions"] = False, {"covered": 5, "total": 12}
    stub_api.set_body(body)
    stub_api.mode = "answer"
    wait_for_state(page, "live", timeout=3000)
    partial = page.locator("[data-testid='partial-banner']")
    assert partial.is_visible()
    assert partial.text_content() == "Partial data: 5 of 12 partitions"
    assert read_agents(page)["order"] == ["ana", "bo", "cy", "dee"]
    assert "/api/kpis" not in stub_api.paths  # the agents view reads /api/agents only
