"""Contract section 8, per-agent KPIs of tickets: who is credited with each measurement.

FRT goes to the agent of the reply giving first_reply_at; the resolution (time, one-touch,
reopen, replies) and the ticket's CSAT and NPS answers to the agent of the latest resolve.
Tickets open at 09:00 UTC in billing / email / normal (targets: first response 4 h,
resolution 72 h) and are read at NOW = 10:00:30; every expected value is worked by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kpi_helpers import (
    NOW,
    SampleKey,
    answered,
    first_reply,
    line,
    opened,
    parse_exposition,
    queued,
    reopened,
    replied,
    report,
    resolved,
    survey,
)
from kpi_helpers import utc_ms as at

from stream.centre_api import agents_document
from stream.cli import main
from stream.config import parse_kpi_config
from stream.report import prometheus_text


def t(clock: str) -> int:
    return at(f"2026-11-22T{clock}Z")


def ticket(*events: dict[str, Any], ticket_id: str = "t") -> list[dict[str, Any]]:
    return [opened(ticket_id, t("09:00:00")), *events]


def by_agent(exported: dict[SampleKey, float], name: str, agent: str, **labels: str) -> Any:
    """One per-agent sample of the `today` window, None when not exported."""
    labels = {"window": "today", "agent": agent, **labels}
    return exported.get((f"cs_by_agent_{name}", frozenset(labels.items())))


ATTRIBUTION = [
    # (events, [(component, agent, expected value; None = no such series)])
    pytest.param(
        ticket(
            replied("t", t("09:10:00"), agent_id="a1"),
            resolved("t", t("09:30:00"), agent_id="a2"),
            survey("t", t("09:40:00"), "csat", 5),
            survey("t", t("09:41:00"), "nps", 10),
        ),
        [
            ("first_responses", "a1", 1),
            ("first_response_seconds_sum", "a1", 600),  # 09:00 -> 09:10
            ("first_response_sla_breaches", "a1", 0),
            ("resolutions", "a1", 0),
            ("csat_responses", "a1", 0),
            ("first_responses", "a2", 0),
            ("resolutions", "a2", 1),
            ("resolution_seconds_sum", "a2", 1800),  # 09:00 -> 09:30
            ("resolutions_one_touch", "a2", 1),  # one reply, no reopen
            ("resolutions_reopened", "a2", 0),
            ("resolution_replies_sum", "a2", 1),
            ("csat_responses", "a2", 1),
            ("csat_satisfied", "a2", 1),
            ("nps_responses:promoter", "a2", 1),
            ("first_responses", "unassigned", None),
        ],
        id="reply-agent-and-resolver-agent",
    ),
    pytest.param(
        ticket(
            first_reply("t", t("09:15:00"), agent_id="a1"),
            replied("t", t("09:05:00"), agent_id="a2"),
        ),
        [
            ("first_responses", "a2", 1),
            ("first_response_seconds_sum", "a2", 300),  # the earliest reply: 09:05
            ("first_responses", "a1", None),  # a later reply is no first response
        ],
        id="earliest-reply-gives-the-frt",
    ),
    pytest.param(
        ticket(
            replied("t", t("09:10:00"), agent_id=None),
            resolved("t", t("09:20:00"), agent_id=None),
        ),
        [
            ("first_responses", "unassigned", 1),
            ("resolutions", "unassigned", 1),
            ("resolution_seconds_sum", "unassigned", 1200),
        ],
        id="null-agent-is-unassigned",
    ),
    pytest.param(
        ticket(replied("t", t("09:10:00"), agent_id=""), resolved("t", t("09:20:00"))),
        [
            ("first_responses", "unassigned", 1),
            ("first_response_seconds_sum", "unassigned", 600),
            ("resolutions", "unassigned", 1),
        ],
        id="empty-and-absent-agent-are-unassigned",
    ),
    pytest.param(
        ticket(
            replied("t", t("09:10:00"), agent_id="a1"),
            resolved("t", t("09:20:00"), agent_id="a2"),
            reopened("t", t("09:30:00")),
        ),
        [
            ("first_responses", "a1", 1),
            ("resolutions", "a1", 0),
            ("resolutions", "a2", None),  # open again: the resolution left
        ],
        id="reopen-withdraws-the-resolvers-resolution",
    ),
    pytest.param(
        ticket(
            replied("t", t("09:10:00"), agent_id="a1"),
            resolved("t", t("09:20:00"), agent_id="a2"),
            reopened("t", t("09:30:00")),
            resolved("t", t("09:50:00"), agent_id="a3"),
        ),
        [
            ("resolutions", "a3", 1),
            ("resolution_seconds_sum", "a3", 3000),  # 09:00 -> 09:50
            ("resolutions_reopened", "a3", 1),
            ("resolutions_one_touch", "a3", 0),
            ("resolution_replies_sum", "a3", 1),
            ("resolutions", "a2", None),
            ("first_responses", "a1", 1),
        ],
        id="a-later-resolve-by-another-agent-moves-the-resolution",
    ),
    pytest.param(
        ticket(
            replied("t", t("09:10:00"), agent_id="a1"),
            resolved("t", t("09:20:00"), agent_id="a2"),
            survey("t", t("09:25:00"), "csat", 2),
            survey("t", t("09:26:00"), "nps", 6),
            reopened("t", t("09:30:00")),
            resolved("t", t("09:50:00"), agent_id="a3"),
        ),
        [
            ("csat_responses", "a3", 1),
            ("csat_satisfied", "a3", 0),  # score 2 < 4
            ("nps_responses:detractor", "a3", 1),  # score 6
            ("nps_responses:promoter", "a3", 0),
            ("csat_responses", "a2", None),
            ("csat_responses", "a1", 0),
        ],
        id="csat-and-nps-follow-the-latest-resolver",
    ),
    pytest.param(
        ticket(
            resolved("t", t("09:20:00"), agent_id="a2", event_id="resolve-b"),
            resolved("t", t("09:20:00"), agent_id="a3", event_id="resolve-a"),
        ),
        [
            ("resolutions", "a2", 1),  # same instant: the larger event_id wins
            ("resolutions_one_touch", "a2", 0),  # no reply
            ("resolutions", "a3", None),
        ],
        id="resolve-tie-broken-by-event-id",
    ),
    pytest.param(
        [opened("t", t("04:00:00")), replied("t", t("09:00:00"), agent_id="a1")],
        [
            ("first_responses", "a1", 1),
            ("first_response_seconds_sum", "a1", 18000),  # 5 h
            ("first_response_sla_breaches", "a1", 1),  # over the 4 h target
        ],
        id="frt-breach-is-the-reply-agents",
    ),
]


@pytest.mark.parametrize(("events", "expected"), ATTRIBUTION)
def test_ticket_measurements_are_credited_to_the_agent_who_did_the_work(
    events: list[dict[str, Any]], expected: list[tuple[str, str, int | None]]
) -> None:
    exported = parse_exposition(prometheus_text(report(events), per_agent=True))
    for component, agent, value in expected:
        name, _, category = component.partition(":")
        labels = {"category": category} if category else {}
        assert by_agent(exported, name, agent, **labels) == value, (component, agent)


def two_tickets_and_a_call() -> list[dict[str, Any]]:
    """a1 replies first to both tickets and answers a call; a2 resolves both tickets."""
    return [
        *ticket(
            replied("t1", t("09:10:00"), agent_id="a1"),
            resolved("t1", t("09:30:00"), agent_id="a2"),
            survey("t1", t("09:40:00"), "csat", 5),
            survey("t1", t("09:41:00"), "nps", 10),
            ticket_id="t1",
        ),
        *ticket(
            replied("t2", t("09:20:00"), agent_id="a1"),
            resolved("t2", t("09:40:00"), agent_id="a2"),
            survey("t2", t("09:45:00"), "csat", 3),
            ticket_id="t2",
        ),
        queued("c1", t("09:50:00")),
        answered("c1", t("09:50:10"), agent_id="a1"),
    ]


def test_agents_document_has_ticket_figures_and_agents_with_only_tickets() -> None:
    document = agents_document(report(two_tickets_and_a_call()).snapshot.centre, NOW)
    rows = {row["agent"]: row for row in document["agents"]}
    assert sorted(rows) == ["a1", "a2"]  # a2 has no status event: only ticket work
    assert (rows["a2"]["status"], rows["a2"]["team"]) == (None, None)
    assert rows["a1"]["windows"]["24h"] == {
        "first_responses": 2,
        "first_response_time_average_seconds": 900.0,  # (600 + 1200) / 2
        "first_response_sla_attainment_ratio": 1.0,
        "resolutions": 0,
        "resolution_time_average_seconds": None,
        "one_touch_resolution_ratio": None,
        "reopened_resolution_ratio": None,
        "csat_responses": 0,
        "csat_ratio": None,
        "nps_responses": 0,
        "nps_score": None,
        "contacts_answered": 1,
        "answer_time_average_seconds": 10.0,
        "contacts_handled": 0,
        "handle_time_average_seconds": None,
        "occupancy_ratio": None,
    }
    a2 = rows["a2"]["windows"]["24h"]
    assert (a2["resolutions"], a2["resolution_time_average_seconds"]) == (2, 2100.0)  # 1800, 2400
    assert a2["one_touch_resolution_ratio"] == 1.0  # one reply each, no reopen
    assert a2["reopened_resolution_ratio"] == 0.0
    assert (a2["csat_responses"], a2["csat_ratio"]) == (2, 0.5)  # 5 satisfied, 3 not
    assert (a2["nps_responses"], a2["nps_score"]) == (1, 100.0)  # one promoter
    assert (a2["first_responses"], a2["first_response_time_average_seconds"]) == (0, None)
    # the 15m window (09:46 on) holds only t2's CSAT answer (09:45 is outside) -> nothing
    assert rows["a2"]["windows"]["15m"]["resolutions"] == 0


def test_agent_cap_ranks_contacts_and_tickets_together() -> None:
    # measurements in 24h: a1 = 2 first responses + 1 queued + 1 answered = 4;
    # a2 = 2 resolutions + 2 CSAT + 1 NPS = 5. One name kept: a2; a1 is "other".
    result = report(two_tickets_and_a_call(), config=parse_kpi_config({"max_agents": 1}))
    exported = parse_exposition(prometheus_text(result, per_agent=True))

    def of(name: str, agent: str) -> Any:
        return exported.get(
            (f"cs_by_agent_{name}", frozenset({("window", "24h"), ("agent", agent)}))
        )

    assert of("resolutions", "a2") == 2
    assert of("first_responses", "other") == 2
    assert of("contacts_answered", "other") == 1
    assert of("first_responses", "a1") is None
    assert of("contacts_answered", "a1") is None


def test_report_prints_per_agent_ticket_series_only_with_the_variable(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(line(e) for e in two_tickets_and_a_call()) + b"\n")
    args = ["report", str(events), "--now", "2026-11-22T10:00:30Z"]
    plain = CliRunner().invoke(main, args, env={"KPI_AGENT_METRICS": "false"})
    assert plain.exit_code == 0, plain.stderr
    assert b"cs_by_agent_" not in plain.stdout_bytes
    result = CliRunner().invoke(main, args, env={"KPI_AGENT_METRICS": "true"})
    assert result.exit_code == 0, result.stderr
    exported = parse_exposition(result.stdout_bytes)
    expected = [
        ("first_responses", "a1", {}, 2),
        ("first_response_seconds_sum", "a1", {}, 1800),  # 600 + 1200
        ("first_response_sla_breaches", "a1", {}, 0),
        ("resolutions", "a2", {}, 2),
        ("resolution_seconds_sum", "a2", {}, 4200),  # 1800 + 2400
        ("resolution_sla_breaches", "a2", {}, 0),
        ("resolutions_one_touch", "a2", {}, 2),
        ("resolution_replies_sum", "a2", {}, 2),
        ("csat_responses", "a2", {}, 2),
        ("csat_satisfied", "a2", {}, 1),
        ("nps_responses", "a2", {"category": "promoter"}, 1),
        ("nps_responses", "a2", {"category": "detractor"}, 0),
        ("resolutions", "a1", {}, 0),
        ("contacts_answered", "a1", {}, 1),
    ]
    for name, agent, labels, value in expected:
        assert by_agent(exported, name, agent, **labels) == value, (name, agent, labels)
