"""Contract section 9 through the batch path: every reply, reopens, one-touch resolutions.

Each ticket is opened at 09:00 UTC in billing / email / normal (targets: first response
4 h, resolution 72 h) and read at NOW = 10:00:30; every expected value is worked by hand.
"""

from __future__ import annotations

from typing import Any

import pytest
from kpi_helpers import (
    NOW,
    dims,
    exported,
    first_reply,
    key,
    opened,
    reopened,
    replied,
    report,
    resolved,
)
from kpi_helpers import utc_ms as at

BILLING = dims("billing", "email", "normal")


def t(clock: str) -> int:
    return at(f"2026-11-22T{clock}Z")


def ticket(*events: dict[str, Any]) -> list[dict[str, Any]]:
    return [opened("t", t("09:00:00")), *events]


LIFE = [
    # (events after the open, FRT s or None, resolution s or None, one-touch, reopened, replies)
    pytest.param(
        [replied("t", t("09:10:00")), replied("t", t("09:20:00")), resolved("t", t("09:30:00"))],
        600,
        1800,
        0,
        0,
        2,
        id="two-replied-events",
    ),
    pytest.param(
        [first_reply("t", t("09:15:00")), replied("t", t("09:05:00"))],
        300,
        None,
        0,
        0,
        0,
        id="first-reply-is-the-earliest-of-both-types",
    ),
    pytest.param(
        [first_reply("t", t("09:10:00")), resolved("t", t("09:30:00"))],
        600,
        1800,
        1,
        0,
        1,
        id="one-touch",
    ),
    pytest.param([resolved("t", t("09:30:00"))], None, 1800, 0, 0, 0, id="resolved-without-reply"),
    pytest.param(
        [
            first_reply("t", t("09:10:00")),
            resolved("t", t("09:20:00")),
            replied("t", t("09:25:00")),
        ],
        600,
        1200,
        0,
        0,
        2,
        id="reply-after-the-resolve-counts",
    ),
    pytest.param(
        [
            first_reply("t", t("09:10:00")),
            resolved("t", t("09:20:00")),
            reopened("t", t("09:30:00")),
        ],
        600,
        None,
        0,
        0,
        0,
        id="reopen-after-resolve-withdraws-the-resolution",
    ),
    pytest.param(
        [
            first_reply("t", t("09:10:00")),
            resolved("t", t("09:20:00")),
            reopened("t", t("09:30:00")),
            replied("t", t("09:40:00")),
            resolved("t", t("09:50:00")),
        ],
        600,
        3000,
        0,
        1,
        2,
        id="resolved-again-full-time-and-reopened",
    ),
    pytest.param(
        [
            first_reply("t", t("09:10:00")),
            reopened("t", t("09:15:00")),
            resolved("t", t("09:20:00")),
        ],
        600,
        1200,
        0,
        1,
        1,
        id="reopen-before-the-last-resolve",
    ),
    pytest.param(
        [
            first_reply("t", t("09:10:00")),
            resolved("t", t("09:20:00")),
            reopened("t", t("09:20:00")),
        ],
        600,
        1200,
        0,
        1,
        1,
        id="resolve-and-reopen-at-the-same-instant-is-resolved",
    ),
    pytest.param(
        [
            replied("t", t("09:10:00"), event_id="r1"),
            replied("t", t("09:10:00"), event_id="r1"),
            replied("t", t("09:12:00"), event_id="r2"),
            reopened("t", t("09:14:00"), event_id="o1"),
            reopened("t", t("09:15:00"), event_id="o2"),
            resolved("t", t("09:20:00")),
        ],
        600,
        1200,
        0,
        1,
        2,
        id="distinct-event-ids-count-once",
    ),
]


@pytest.mark.parametrize(
    ("events", "frt_s", "resolution_s", "one_touch", "reopens", "replies"), LIFE
)
def test_ticket_life_components(
    events: list[dict[str, Any]],
    frt_s: int | None,
    resolution_s: int | None,
    one_touch: int,
    reopens: int,
    replies: int,
) -> None:
    metrics = exported(report(ticket(*events), now=NOW))

    def component(name: str) -> float:
        return metrics[key(name, window="1h", **BILLING)]

    assert component("cs_first_responses") == (frt_s is not None)
    assert component("cs_first_response_seconds_sum") == (frt_s or 0)
    assert component("cs_resolutions") == (resolution_s is not None)
    assert component("cs_resolution_seconds_sum") == (resolution_s or 0)
    assert component("cs_resolutions_one_touch") == one_touch
    assert component("cs_resolutions_reopened") == reopens
    assert component("cs_resolution_replies_sum") == replies
    assert metrics[key("cs_tickets_open", **BILLING)] == (resolution_s is None)


def test_reopened_ticket_without_a_reply_awaits_its_first_reply_again() -> None:
    events = ticket(resolved("t", t("09:05:00")), reopened("t", t("09:10:00")))
    metrics = exported(report(events, now=NOW))
    assert metrics[key("cs_tickets_open", **BILLING)] == 1
    # Waiting since 09:00 (1 h of a 4 h target): ok.
    assert metrics[key("cs_tickets_awaiting_first_response", sla_state="ok", **BILLING)] == 1
    oldest = key("cs_oldest_awaiting_first_response_opened_timestamp_seconds", **BILLING)
    assert metrics[oldest] == t("09:00:00") / 1000


def test_resolved_ticket_no_longer_awaits() -> None:
    metrics = exported(report(ticket(resolved("t", t("09:05:00"))), now=NOW))
    assert metrics[key("cs_tickets_open", **BILLING)] == 0
    for state in ("ok", "at_risk", "breached"):
        sample = key("cs_tickets_awaiting_first_response", sla_state=state, **BILLING)
        assert metrics[sample] == 0


def test_ticket_life_gauges_system_wide_and_per_queue() -> None:
    events = [
        # a: one-touch (1 reply). b: 3 replies, reopened once. c: no reply.
        opened("a", t("09:00:00")),
        first_reply("a", t("09:05:00")),
        resolved("a", t("09:10:00")),
        opened("b", t("09:00:00")),
        replied("b", t("09:05:00")),
        replied("b", t("09:06:00")),
        reopened("b", t("09:07:00")),
        replied("b", t("09:08:00")),
        resolved("b", t("09:20:00")),
        opened("c", t("09:00:00"), queue="sales"),
        resolved("c", t("09:30:00")),
        # d: reopened after its resolve, so not a resolution now.
        opened("d", t("09:00:00"), queue="sales"),
        first_reply("d", t("09:01:00")),
        resolved("d", t("09:02:00")),
        reopened("d", t("09:03:00")),
    ]
    metrics = exported(report(events, now=NOW))
    expected = {
        # 3 resolutions (a, b, c): 1 one-touch, 1 reopened, 1 + 3 + 0 replies.
        ("cs_one_touch_resolution_ratio", ()): 1 / 3,
        ("cs_reopened_resolution_ratio", ()): 1 / 3,
        ("cs_replies_per_resolution_average", ()): 4 / 3,
        ("cs_queue_one_touch_resolution_ratio", (("queue", "billing"),)): 1 / 2,
        ("cs_queue_reopened_resolution_ratio", (("queue", "billing"),)): 1 / 2,
        ("cs_queue_replies_per_resolution_average", (("queue", "billing"),)): 2,
        ("cs_queue_one_touch_resolution_ratio", (("queue", "sales"),)): 0,
        ("cs_queue_reopened_resolution_ratio", (("queue", "sales"),)): 0,
        ("cs_queue_replies_per_resolution_average", (("queue", "sales"),)): 0,
    }
    for (name, labels), value in expected.items():
        assert metrics[key(name, window="1h", **dict(labels))] == pytest.approx(value), name


def test_ticket_life_gauges_are_omitted_without_resolutions() -> None:
    metrics = exported(report(ticket(replied("t", t("09:10:00"))), now=NOW))
    names = {name for name, _ in metrics}
    assert "cs_first_response_time_average_seconds" in names
    assert not names & {
        "cs_one_touch_resolution_ratio",
        "cs_reopened_resolution_ratio",
        "cs_replies_per_resolution_average",
    }
