"""The wallboard fits on every TV size with its own font, whatever fonts the machine has.

Run on a machine whose only fonts are DejaVu (wider than most), these tests prove the page
draws with the webfont the worker serves and shrinks any text that would not fit its box.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.test_wallboard_page import kpis, live_queue, open_board, sample_body

TV_SIZES = [(1280, 720), (1366, 768), (1920, 1080), (3840, 2160)]
LONG_QUEUE = "q" * 128  # the longest queue name the contract allows

# Everything that must be readable in full: KPI values and labels, awaiting counts, the
# oldest age, the header and banners, the queue and agent tables (names may be cut).
_LAYOUT_JS = """() => {
  const box = (el) => el.getBoundingClientRect();
  const inside = (el) => { const b = box(el);
    return b.left >= 0 && b.top >= 0 && b.right <= innerWidth && b.bottom <= innerHeight; };
  const shown = (el) => el.getClientRects().length > 0;
  // The width the text needs and the width its box gives it, in fractional pixels (a
  // table cell's scrollWidth is rounded and does not show its overflow).
  const needed = (el) => { const r = document.createRange(); r.selectNodeContents(el);
    return r.getBoundingClientRect().width; };
  const room = (el) => { const s = getComputedStyle(el);
    return box(el).width - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight)
      - parseFloat(s.borderLeftWidth) - parseFloat(s.borderRightWidth); };
  const cut = (el) => el.scrollWidth > el.clientWidth || needed(el) > room(el) + 0.01;
  const describe = (el) => `${el.className} ${el.dataset.kpi || el.dataset.awaiting || ""}` +
    ` "${el.textContent.trim()}" ${needed(el)}>${room(el)}`;
  const fitted = Array.from(document.querySelectorAll(".fit")).filter(shown);
  const cells = Array.from(document.querySelectorAll(
    ".queues th, [data-queue] td[data-col], .roster th, [data-agent] td[data-col]")).filter(shown);
  const names = Array.from(document.querySelectorAll(
    "[data-queue] td.q-name, [data-agent] td.q-name, [data-agent] td.a-team")).filter(shown);
  const px = (selector) => Array.from(document.querySelectorAll(selector))
    .map((el) => parseFloat(getComputedStyle(el).fontSize));
  return {
    scroll: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
    overflowing: fitted.concat(cells).filter(cut).map(describe),
    outside: fitted.concat(cells, names).filter((el) => !inside(el)).map(describe),
    namesCut: names.filter(cut).map((el) => el.title),
    kpiPx: Math.min(...px("[data-kpi]")),
    awaitingPx: Math.min(...px("[data-awaiting]")),
    oldestPx: px("[data-testid='oldest-age']")[0],
    cellPx: Math.min(...px("[data-queue] td[data-col]")),
    rosterPx: Math.min(...px("[data-agent] td[data-col]")),
    fonts: document.fonts.status,
  };
}"""


def layout(page: Any) -> dict[str, Any]:
    page.wait_for_function("() => document.fonts.status === 'loaded'", timeout=5000)
    result: dict[str, Any] = page.evaluate(_LAYOUT_JS)
    return result


def widest_realistic_body() -> dict[str, Any]:
    """The widest values a busy day really shows: a day-long average, 99.9 %, NPS -100,
    four-digit counts, an oldest ticket waiting three days, a 128-character queue name."""
    body = sample_body()
    body["windows"]["1h"]["overall"] = kpis(86399.0, 0.999, 86399.0, 1.0, 1.0, -100.0)
    body["windows"]["1h"]["queues"].append(
        {"queue": LONG_QUEUE, **kpis(86399.0, 1.0, 86399.0, 1.0, 1.0, -100.0)}
    )
    body["live"]["awaiting"] = {"ok": 8888, "at_risk": 8888, "breached": 8888}
    body["live"]["oldest_awaiting_age_seconds"] = 3 * 86400 + 3599.0
    body["live"]["queues"].append(live_queue(LONG_QUEUE, 8888, 8888, 8888, 10.0))
    return body


def widest_possible_body() -> dict[str, Any]:
    """Values beyond any real day, that the types still allow: a 9,999-day average, six-digit
    counts, a longest time zone name, an oldest ticket of 9,999 days."""
    body = widest_realistic_body()
    huge = 9999 * 86400 + 23 * 3600.0
    body["windows"]["1h"]["overall"] = kpis(huge, 0.999, huge, 0.0, 0.0, -100.0)
    body["live"]["awaiting"] = {"ok": 888888, "at_risk": 888888, "breached": 888888}
    body["live"]["open"] = 8888888
    body["live"]["oldest_awaiting_age_seconds"] = huge + 3599.0
    body["timezone"] = "America/Argentina/ComodRivadavia"
    for row in body["windows"]["1h"]["queues"]:
        row.update(kpis(huge, 1.0, huge, 1.0, 1.0, -100.0))
    for row in body["live"]["queues"]:
        row["awaiting"] = {"ok": 888888, "at_risk": 888888, "breached": 888888}
    body["complete"] = False
    body["partitions"] = {"covered": 999, "total": 1000}
    return body


@pytest.mark.parametrize(("width", "height"), TV_SIZES)
def test_widest_real_values_fit_at_full_size_on_every_tv(
    width, height, page_factory, stub_api, save_screenshot
):
    """At every TV size each value is whole, inside its tile and the screen, and the big
    numbers stay big (the day-long averages and -100 need no shrinking beyond 10 %)."""
    page = page_factory(width, height)
    stub_api.set_body(widest_realistic_body())
    open_board(page, stub_api)
    shown = layout(page)
    save_screenshot(page, f"wallboard-fit-{width}x{height}.png")
    assert shown["fonts"] == "loaded"
    assert shown["scroll"] == [width, height]
    assert shown["overflowing"] == []
    assert shown["outside"] == []
    rem = width / 100  # 1rem is 1 % of the width on a 16:9 screen
    assert shown["kpiPx"] >= 0.9 * 5 * rem  # the tiles' size is 5rem
    assert shown["awaitingPx"] >= 0.6 * 5 * rem
    assert shown["oldestPx"] >= 0.9 * 3.6 * rem
    assert shown["cellPx"] >= 0.9 * 1.75 * rem
    assert shown["namesCut"] == [LONG_QUEUE]  # cut with an ellipsis; the tooltip has it all


@pytest.mark.parametrize(("width", "height"), TV_SIZES)
def test_any_value_the_types_allow_still_fits(width, height, page_factory, stub_api):
    """Absurd but well-typed values shrink until they fit: nothing is cut or leaves the screen."""
    page = page_factory(width, height)
    stub_api.set_body(widest_possible_body())
    open_board(page, stub_api)
    shown = layout(page)
    assert page.locator('[data-kpi="first_response_time_average_seconds"]').text_content() == (
        "9999d 23h"
    )
    assert page.locator('[data-testid="partial-banner"]').is_visible()
    assert shown["scroll"] == [width, height]
    assert shown["overflowing"] == []
    assert shown["outside"] == []
    assert shown["kpiPx"] >= 0.4 * 5 * width / 100  # smaller, still a headline


def test_values_grow_back_when_they_get_shorter(page, stub_api):
    """Shrinking is measured afresh on every update: a short value gets the full size again."""
    body = widest_possible_body()
    stub_api.set_body(body)
    open_board(page, stub_api)
    assert layout(page)["kpiPx"] < 80
    body["windows"]["1h"]["overall"] = kpis(5.0, 0.5, 5.0, 0.5, 0.5, 1.0)
    stub_api.set_body(body)
    page.wait_for_function(
        "() => document.querySelector('[data-kpi=\"first_response_time_average_seconds\"]')"
        ".textContent === '5s'",
        timeout=3000,
    )
    assert layout(page)["kpiPx"] == 96  # 5rem on a 1920-pixel screen


def test_page_draws_with_its_own_font_from_the_worker(page, stub_api):
    """The glyphs on screen come from the webfont the page loaded from its own origin
    (Inter), not from whatever the machine has installed."""
    stub_api.set_body(sample_body())
    open_board(page, stub_api)
    page.wait_for_function("() => document.fonts.status === 'loaded'", timeout=5000)
    assert "/static/inter.ttf" in stub_api.paths
    assert page.evaluate("document.fonts.check('700 96px Inter')") is True

    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    for selector in ('[data-kpi="csat_ratio"]', '[data-awaiting="breached"]', "td.q-name"):
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
        assert [(f["familyName"], f["isCustomFont"]) for f in fonts] == [("Inter", True)], selector

    served = page.request.get(stub_api.url + "static/inter.ttf")
    assert served.headers["content-type"] == "font/ttf"
    font = served.body()
    assert font[:4] == b"\x00\x01\x00\x00"  # TrueType outlines
    assert "Inter".encode("utf-16-be") in font  # the family name in its name table
    assert "SIL Open Font License".encode("utf-16-be") in font
