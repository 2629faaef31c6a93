"""Contract sections 7 and 8 through the batch path: contacts, agents, cost, per agent.

Every expected value below is worked out by hand from the events of `floor_day`
(the comments give the arithmetic), never computed by the code under test.
"""

from __future__ import annotations

from typing import Any

import pytest
from kpi_helpers import (
    NOW,
    abandoned,
    answered,
    ended,
    opened,
    parse_exposition,
    queued,
    report,
    resolved,
    status,
    utc_ms,
    wrapped,
)

from stream.centre_api import agents_document, contact_centre_document
from stream.config import parse_kpi_config
from stream.report import BatchResult, prometheus_text, samples

SALES = {"queue": "sales", "channel": "phone"}
SUPPORT = {"queue": "support", "channel": "chat"}
UNKNOWN = {"queue": "unknown", "channel": "other"}
CONFIG = parse_kpi_config({"cost_per_hour": {"blue": 36, "default": 18}})


def ms(text: str) -> int:
    """Epoch ms of a UTC time on 2026-11-22 ("09:00:00") or of a full UTC date-time."""
    return utc_ms(f"{text}Z" if "T" in text else f"2026-11-22T{text}Z")


def floor_day() -> list[dict[str, Any]]:
    """Nine contacts and five agents; NOW is 2026-11-22T10:00:30Z."""
    return [
        # c1: wait 15 s (within 20), talk 300 s, after-contact work 60 s -> handle 360 s, a1
        queued("c1", ms("09:50:00"), **SALES),
        answered("c1", ms("09:50:15"), agent_id="a1", event_id="c1-answer"),
        answered("c1", ms("09:50:15"), agent_id="a1", event_id="c1-answer"),  # duplicate
        answered("c1", ms("09:50:20"), agent_id="a3"),  # a later answer changes nothing
        ended("c1", ms("09:55:15")),
        wrapped("c1", ms("09:56:15")),
        # c2: wait 30 s (over 20), talk 120 s, no wrap -> handle 120 s, a2
        queued("c2", ms("09:51:00"), **SALES),
        answered("c2", ms("09:51:30"), agent_id="a2"),
        ended("c2", ms("09:53:30")),
        # c3: abandoned after 40 s; c4: abandoned after 3 s (short abandon)
        queued("c3", ms("09:52:00"), **SALES),
        abandoned("c3", ms("09:52:40")),
        queued("c4", ms("09:53:00"), **SALES),
        abandoned("c4", ms("09:53:03")),
        # c5: hung up in the queue after 90 s (ended, never answered) -> abandoned
        queued("c5", ms("09:40:00"), **SUPPORT),
        ended("c5", ms("09:41:30")),
        # c6: still waiting since 09:58:00; c7: answered after 10 s by a1, still talking
        queued("c6", ms("09:58:00"), **SUPPORT),
        queued("c7", ms("09:59:00"), **SALES),
        answered("c7", ms("09:59:10"), agent_id="a1"),
        # c8: answered without its queued event: in progress under unknown, nothing measured
        answered("c8", ms("09:57:00"), agent_id="a2"),
        # c9: queued 5 h ago and never heard of again: presumed lost (stale after 4 h)
        queued("c9", ms("05:00:00"), **SALES),
        # a1 (blue): available, busy with c1, after-contact work, available, busy with c7
        status("a1", ms("08:00:00"), "available", team="blue"),
        status("a1", ms("09:50:15"), "busy", team="blue"),
        status("a1", ms("09:55:15"), "after_contact_work", team="blue"),
        status("a1", ms("09:56:15"), "available", team="blue"),
        status("a1", ms("09:59:10"), "busy", team="blue"),
        # a2 (red): available from 09:30, away since 09:45 (sent twice)
        status("a2", ms("09:30:00"), "available", team="red"),
        status("a2", ms("09:45:00"), "away", team="red", event_id="a2-away"),
        status("a2", ms("09:45:00"), "away", team="red", event_id="a2-away"),
        # a3: last seen 49 h ago: gone
        status("a3", ms("2026-11-20T09:00:00"), "available", team="blue"),
        # a4 (team "default"): busy 22 h ago, more than agent_stale_seconds (12 h): offline
        status("a4", ms("2026-11-21T12:00:00"), "busy"),
        # a5 (blue): available 49 h ago (before the horizon), offline since 09:00
        status("a5", ms("2026-11-20T09:00:00"), "available", team="blue"),
        status("a5", ms("09:00:00"), "offline", team="blue"),
    ]


@pytest.fixture(scope="module")
def floor() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse_exposition(prometheus_text(report(floor_day(), config=CONFIG), per_agent=True))


def value(exported: dict[Any, float], name: str, **labels: str) -> float | None:
    return exported.get((name, frozenset(labels.items())))


COMPONENTS = [
    # 15m = buckets 09:46..10:00; 1h = 09:01..10:00; 24h and today also hold c9 (05:00)
    ("cs_contacts_queued", SALES, "15m", 5),  # c1 c2 c3 c4 c7
    ("cs_contacts_queued", SALES, "1h", 5),
    ("cs_contacts_queued", SALES, "today", 6),  # + c9
    ("cs_contacts_queued", SALES, "24h", 6),
    ("cs_contacts_answered", SALES, "15m", 3),  # c1 c2 c7
    ("cs_contacts_answered_within_threshold", SALES, "15m", 2),  # c1 (15 s) c7 (10 s)
    ("cs_contact_answer_wait_seconds_sum", SALES, "15m", 55),  # 15 + 30 + 10
    ("cs_contacts_abandoned", SALES, "15m", 1),  # c3
    ("cs_contacts_abandoned_short", SALES, "15m", 1),  # c4
    ("cs_contact_abandon_wait_seconds_sum", SALES, "15m", 40),
    ("cs_contacts_handled", SALES, "15m", 2),  # c1 c2
    ("cs_contact_talk_seconds_sum", SALES, "15m", 420),  # 300 + 120
    ("cs_contact_after_work_seconds_sum", SALES, "15m", 60),
    ("cs_contact_handle_seconds_sum", SALES, "15m", 480),  # 360 + 120
    ("cs_contacts_queued", SUPPORT, "15m", 1),  # c6 (c5 at 09:40 is older)
    ("cs_contacts_queued", SUPPORT, "1h", 2),
    ("cs_contacts_abandoned", SUPPORT, "15m", 0),  # zero: label set seen in 26 h
    ("cs_contacts_abandoned", SUPPORT, "1h", 1),  # c5
    ("cs_contact_abandon_wait_seconds_sum", SUPPORT, "1h", 90),
]


@pytest.mark.parametrize(("name", "dims", "window", "expected"), COMPONENTS)
def test_contact_components(
    floor: dict[Any, float], name: str, dims: dict[str, str], window: str, expected: float
) -> None:
    assert value(floor, name, window=window, **dims) == expected


CONTACT_KPIS = [
    # 15m: answered 3, abandoned 1 (short excluded): offered 4
    ("cs_contact_service_level_ratio", {}, "15m", 0.5),  # 2 / 4
    ("cs_contact_abandonment_ratio", {}, "15m", 0.25),  # 1 / 4
    ("cs_contact_answer_time_average_seconds", {}, "15m", 55 / 3),
    ("cs_contact_handle_time_average_seconds", {}, "15m", 240.0),  # 480 / 2
    # 1h: answered 3, abandoned 2 (c3, c5): offered 5
    ("cs_contact_service_level_ratio", {}, "1h", 0.4),
    ("cs_contact_abandonment_ratio", {}, "1h", 0.4),
    ("cs_queue_contact_service_level_ratio", {"queue": "sales"}, "1h", 0.5),
    ("cs_queue_contact_abandonment_ratio", {"queue": "sales"}, "1h", 0.25),
    ("cs_queue_contact_service_level_ratio", {"queue": "support"}, "1h", 0.0),
    ("cs_queue_contact_abandonment_ratio", {"queue": "support"}, "1h", 1.0),
    ("cs_queue_contact_answer_time_average_seconds", {"queue": "support"}, "1h", None),
    ("cs_queue_contact_handle_time_average_seconds", {"queue": "support"}, "1h", None),
    ("cs_queue_contact_service_level_ratio", {"queue": "support"}, "15m", None),  # 0 offered
]


@pytest.mark.parametrize(("name", "labels", "window", "expected"), CONTACT_KPIS)
def test_contact_kpis(
    floor: dict[Any, float],
    name: str,
    labels: dict[str, str],
    window: str,
    expected: float | None,
) -> None:
    assert value(floor, name, window=window, **labels) == (
        None if expected is None else pytest.approx(expected)
    )


LIVE = [
    ("cs_contacts_waiting", SALES, 0),  # c9 is stale
    ("cs_contacts_stale", SALES, 1),
    ("cs_contacts_in_progress", SALES, 1),  # c7
    ("cs_contacts_waiting", SUPPORT, 1),  # c6
    ("cs_contact_oldest_waiting_queued_timestamp_seconds", SUPPORT, ms("09:58:00") / 1000),
    ("cs_contact_oldest_waiting_queued_timestamp_seconds", SALES, None),
    ("cs_contacts_in_progress", UNKNOWN, 1),  # c8
    ("cs_contacts_waiting", UNKNOWN, 0),
]


@pytest.mark.parametrize(("name", "dims", "expected"), LIVE)
def test_live_contacts(
    floor: dict[Any, float], name: str, dims: dict[str, str], expected: float | None
) -> None:
    assert value(floor, name, **dims) == expected


AGENTS = [
    ("busy", "blue", 1),  # a1
    ("offline", "blue", 1),  # a5 (a3 is gone)
    ("available", "blue", 0),
    ("away", "red", 1),  # a2
    ("offline", "default", 1),  # a4, stale
    ("busy", "default", 0),
]


@pytest.mark.parametrize(("state", "team", "expected"), AGENTS)
def test_agents_by_current_status(
    floor: dict[Any, float], state: str, team: str, expected: int
) -> None:
    assert value(floor, "cs_agents", status=state, team=team) == expected


STATUS_SECONDS = [
    # 15m = 09:46:00..10:00:30 (870 s). a1: available 255 + 175, busy 300 + 80, acw 60
    ("15m", "blue", "available", 430),
    ("15m", "blue", "busy", 380),
    ("15m", "blue", "after_contact_work", 60),
    ("15m", "blue", "offline", 870),  # a5
    ("15m", "red", "away", 870),
    ("15m", "red", "available", 0),
    ("15m", "default", "offline", 870),  # a4, stale since 00:00
    # 1h = 09:01:00..10:00:30 (3570 s). a1 available 2955 + 175; a2 has no time before its
    # first event (09:30), then available 09:30-09:45
    ("1h", "blue", "available", 3130),
    ("1h", "red", "available", 900),
    ("1h", "red", "away", 930),
    # today = 00:00:00..10:00:30 (36030 s). a4 busy until 00:00 (12 h after its event)
    ("today", "default", "busy", 0),
    ("today", "default", "offline", 36030),
    # 24h = 2026-11-21T10:01:00..: a4 busy 12:00..00:00 (43200 s), then offline
    ("24h", "default", "busy", 43200),
    ("24h", "default", "offline", 36030),
    # a5: available until 12 h after 2026-11-20T09:00 then offline: offline all 24h (86370 s)
    ("24h", "blue", "offline", 86370),
]


@pytest.mark.parametrize(("window", "team", "state", "expected"), STATUS_SECONDS)
def test_time_in_status(
    floor: dict[Any, float], window: str, team: str, state: str, expected: float
) -> None:
    assert value(floor, "cs_agent_status_seconds", window=window, team=team, status=state) == (
        expected
    )


OCCUPANCY_AND_COST = [
    ("cs_agent_occupancy_ratio", {"window": "15m"}, 440 / 870),  # (380 + 60) / 870
    ("cs_agent_occupancy_ratio", {"window": "1h"}, 440 / 4470),  # 3130 + 440 + 900 ready
    ("cs_team_agent_occupancy_ratio", {"window": "1h", "team": "blue"}, 440 / 3570),
    ("cs_team_agent_occupancy_ratio", {"window": "1h", "team": "red"}, 0.0),
    ("cs_team_agent_occupancy_ratio", {"window": "15m", "team": "red"}, None),  # away only
    # staffed 15m: blue 870 s x 36 / 3600 = 8.7; red (default rate 18) 870 s -> 4.35
    ("cs_team_staffed_cost", {"window": "15m", "team": "blue"}, 8.7),
    ("cs_team_staffed_cost", {"window": "15m", "team": "red"}, 4.35),
    ("cs_staffed_cost", {"window": "15m"}, 13.05),
    ("cs_cost_per_contact", {"window": "15m"}, 13.05 / 2),  # c1, c2 handled
    # 1h: blue 3570 s x 36 / 3600 = 35.7, red (900 + 930) s x 18 / 3600 = 9.15
    ("cs_staffed_cost", {"window": "1h"}, 44.85),
    ("cs_cost_per_contact", {"window": "1h"}, 44.85 / 2),
]


@pytest.mark.parametrize(("name", "labels", "expected"), OCCUPANCY_AND_COST)
def test_occupancy_and_cost(
    floor: dict[Any, float], name: str, labels: dict[str, str], expected: float | None
) -> None:
    assert value(floor, name, **labels) == (None if expected is None else pytest.approx(expected))


BY_AGENT = [
    ("cs_by_agent_contacts_queued", "a1", 2),  # c1 c7
    ("cs_by_agent_contacts_answered_within_threshold", "a1", 2),
    ("cs_by_agent_contact_answer_wait_seconds_sum", "a1", 25),
    ("cs_by_agent_contact_handle_seconds_sum", "a1", 360),
    ("cs_by_agent_contacts_answered", "a2", 1),  # c2 (c8 has no queued event)
    ("cs_by_agent_contacts_answered_within_threshold", "a2", 0),
    ("cs_by_agent_contact_talk_seconds_sum", "a2", 120),
    ("cs_by_agent_contacts_queued", "unassigned", 3),  # c3 c4 c6
    ("cs_by_agent_contacts_abandoned", "unassigned", 1),
    ("cs_by_agent_contacts_abandoned_short", "unassigned", 1),
    ("cs_by_agent_contacts_answered", "a3", None),  # a3's answer came second
]


@pytest.mark.parametrize(("name", "agent", "expected"), BY_AGENT)
def test_per_agent_components(
    floor: dict[Any, float], name: str, agent: str, expected: float | None
) -> None:
    assert value(floor, name, window="15m", agent=agent) == expected


def test_cost_per_contact_counts_resolved_tickets() -> None:
    # One agent available for the whole 15m window (870 s at 36/h = 8.7), one handled
    # contact and one resolved ticket: 8.7 / 2.
    events = [
        status("a1", ms("09:00:00"), "available", team="blue"),
        queued("c1", ms("09:50:00"), **SALES),
        answered("c1", ms("09:50:10"), agent_id="a1"),
        ended("c1", ms("09:51:00")),
        opened("t1", ms("09:00:00")),
        resolved("t1", ms("09:55:00")),
    ]
    exported = parse_exposition(prometheus_text(report(events, config=CONFIG)))
    assert value(exported, "cs_cost_per_contact", window="15m") == pytest.approx(4.35)


def test_without_cost_table_no_cost_gauges_and_with_one_zero_cost_is_exported() -> None:
    events = [status("a1", ms("09:00:00"), "offline", team="blue")]
    plain = parse_exposition(prometheus_text(report(events)))
    assert not [k for k in plain if "cost" in k[0]]
    costed = parse_exposition(prometheus_text(report(events, config=CONFIG)))
    assert value(costed, "cs_staffed_cost", window="15m") == 0
    assert value(costed, "cs_cost_per_contact", window="15m") is None  # nothing served


def test_per_agent_series_only_when_asked(floor: dict[Any, float]) -> None:
    plain = parse_exposition(prometheus_text(report(floor_day(), config=CONFIG)))
    assert not [k for k in plain if k[0].startswith("cs_by_agent_")]
    assert [k for k in floor if k[0].startswith("cs_by_agent_")]


def test_json_format_carries_the_same_families() -> None:
    result = report(floor_day(), config=CONFIG)
    rows = samples(result, per_agent=True)
    by_key = {(r["name"], frozenset(r["labels"].items())): r["value"] for r in rows}
    assert by_key == parse_exposition(prometheus_text(result, per_agent=True))


SHORT_ABANDON_AND_THRESHOLDS = [
    # (policy, wait seconds, channel, what the contact counts as in 1h)
    ({}, 4.999, "phone", "cs_contacts_abandoned_short"),
    ({}, 5, "phone", "cs_contacts_abandoned"),  # "short" is wait < 5 s
    ({"short_abandon_seconds": 10}, 9, "phone", "cs_contacts_abandoned_short"),
    ({}, 20, "phone", "within"),  # within = wait <= threshold
    ({}, 20.001, "phone", "outside"),
    ({}, 60, "chat", "within"),
    ({}, 21, "video", "outside"),
    ({"contact_service_level_seconds": {"chat": 30}}, 31, "chat", "outside"),
]


@pytest.mark.parametrize(("policy", "wait_s", "channel", "outcome"), SHORT_ABANDON_AND_THRESHOLDS)
def test_short_abandon_and_service_level_thresholds(
    policy: dict[str, Any], wait_s: float, channel: str, outcome: str
) -> None:
    queued_at = ms("09:50:00")
    left_at = queued_at + round(wait_s * 1000)
    final = (
        abandoned("c", left_at)
        if outcome.startswith("cs_")
        else answered("c", left_at, agent_id="a")
    )
    events = [queued("c", queued_at, queue="q", channel=channel), final]
    exported = parse_exposition(prometheus_text(report(events, config=parse_kpi_config(policy))))
    labels = {"window": "1h", "queue": "q", "channel": channel}
    if outcome.startswith("cs_"):
        assert value(exported, outcome, **labels) == 1
    else:
        within = value(exported, "cs_contacts_answered_within_threshold", **labels)
        assert within == (1 if outcome == "within" else 0)


def test_an_answer_wins_over_abandon_and_stale_in_progress_is_lost() -> None:
    events = [
        queued("c", ms("04:00:00"), **SALES),
        abandoned("c", ms("04:00:30")),
        answered("c", ms("04:00:20"), agent_id="a"),
    ]
    exported = parse_exposition(prometheus_text(report(events)))
    today = {"window": "today", **SALES}
    assert value(exported, "cs_contacts_answered", **today) == 1
    assert value(exported, "cs_contacts_abandoned", **today) == 0
    # answered at 04:00:20, no end: in progress 6 h > 4 h, so presumed lost
    assert value(exported, "cs_contacts_in_progress", **SALES) == 0
    assert value(exported, "cs_contacts_stale", **SALES) == 1


def test_queue_cap_applies_to_contact_queues() -> None:
    events = [queued(f"c{n}", ms("09:50:00") + n, queue=f"q{n % 3}") for n in range(7)]
    config = parse_kpi_config({"max_queues": 2})
    exported = parse_exposition(prometheus_text(report(events, config=config)))
    # q0 has 3 contacts, q1 2, q2 2 (q1 wins the tie by name), q2 becomes "other"
    labels = {"window": "1h", "channel": "phone"}
    assert value(exported, "cs_contacts_queued", queue="q0", **labels) == 3
    assert value(exported, "cs_contacts_queued", queue="q1", **labels) == 2
    assert value(exported, "cs_contacts_queued", queue="other", **labels) == 2
    assert value(exported, "cs_contacts_queued", queue="q2", **labels) is None


def test_agent_cap_keeps_the_most_measured() -> None:
    events: list[dict[str, Any]] = []
    for n, agent in enumerate(["x", "y", "y", "z", "z", "z"]):
        events += [
            queued(f"c{n}", ms("09:50:00"), **SALES),
            answered(f"c{n}", ms("09:50:05"), agent_id=agent),
        ]
    config = parse_kpi_config({"max_agents": 2})
    result: BatchResult = report(events, config=config)
    exported = parse_exposition(prometheus_text(result, per_agent=True))
    answered_by = {
        agent: value(exported, "cs_by_agent_contacts_answered", window="1h", agent=agent)
        for agent in ("x", "y", "z", "other")
    }
    assert answered_by == {"x": None, "y": 2, "z": 3, "other": 1}


def test_now_is_the_reference() -> None:
    assert ms("10:00:30") == NOW


def test_agents_document_lists_every_agent_with_its_state_and_windows() -> None:
    result = report(floor_day(), config=CONFIG)
    document = agents_document(result.snapshot.centre, NOW)
    rows = {row["agent"]: row for row in document["agents"]}
    # a3 is gone (49 h) and measured nothing; "unassigned" is not an agent
    assert sorted(rows) == ["a1", "a2", "a4", "a5"]
    a1 = rows["a1"]
    assert (a1["status"], a1["since"], a1["team"]) == ("busy", "2026-11-22T09:59:10.000Z", "blue")
    assert a1["windows"]["15m"] == {
        "first_responses": 0,  # no tickets in this day
        "first_response_time_average_seconds": None,
        "first_response_sla_attainment_ratio": None,
        "resolutions": 0,
        "resolution_time_average_seconds": None,
        "one_touch_resolution_ratio": None,
        "reopened_resolution_ratio": None,
        "csat_responses": 0,
        "csat_ratio": None,
        "nps_responses": 0,
        "nps_score": None,
        "contacts_answered": 2,  # c1, c7
        "answer_time_average_seconds": 12.5,  # (15 + 10) / 2
        "contacts_handled": 1,
        "handle_time_average_seconds": 360.0,
        "occupancy_ratio": pytest.approx(440 / 870),
    }
    a2 = rows["a2"]["windows"]["15m"]
    assert (a2["contacts_answered"], a2["answer_time_average_seconds"]) == (1, 30.0)
    assert a2["occupancy_ratio"] is None  # away all the window: no ready time
    assert rows["a4"]["status"] == "offline"  # stale: its busy event is 22 h old


def test_contact_centre_document_for_the_wallboard() -> None:
    result = report(floor_day(), config=CONFIG)
    document = contact_centre_document(result.snapshot.centre, NOW)
    overall = document["windows"]["15m"]["overall"]
    assert overall["contact_service_level_ratio"] == 0.5
    assert (overall["contacts_answered"], overall["contacts_abandoned"]) == (3, 1)
    live = document["live"]
    # waiting: c6 (support, since 09:58:00: 150 s at 10:00:30); c9 is stale
    assert (live["waiting"], live["in_progress"], live["stale"]) == (1, 2, 1)
    assert live["longest_wait_seconds"] == 150.0
    assert document["agents"] == {
        "available": 0,
        "busy": 1,
        "after_contact_work": 0,
        "away": 1,
        "offline": 2,
    }
