"""The simulated contact floor: valid events, a queue that behaves like one, agents on shifts."""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Any

import pytest

from kpi_devtools.simulate import SimConfig, SimulatedEvent, generate
from stream.events import Rejection, decode
from stream.kpi.event import Event

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def day() -> list[SimulatedEvent]:
    """One weekday of the default floor (180 contacts/h at the peak, 40 agents), UTC."""
    config = SimConfig(seed=11, rate=60, contact_rate=180, floor_agents=40)
    return list(generate(config, MONDAY, MONDAY + timedelta(days=1)))


def valid_payloads(day: list[SimulatedEvent], prefix: str) -> list[dict[str, Any]]:
    return [json.loads(e.value) for e in day if e.kind == "valid" and e.topic.startswith(prefix)]


def at_ms(payload: dict[str, Any]) -> int:
    value = payload["occurred_at"]
    return (
        value if isinstance(value, int) else int(datetime.fromisoformat(value).timestamp() * 1000)
    )


def test_every_floor_event_is_decoded_as_sent_or_rejected_when_broken(
    day: list[SimulatedEvent],
) -> None:
    outcomes: Counter[tuple[str, str]] = Counter()
    clock = int((MONDAY + timedelta(days=2)).timestamp() * 1000)
    for record in day:
        if not record.topic.startswith(("cs.contact.", "cs.agent.")):
            continue
        result = decode(record.value, clock, topic=record.topic, key=record.key)
        outcomes[record.topic, "valid" if isinstance(result, Event) else "invalid"] += 1
        expected = Event if record.kind in ("valid", "duplicate") else Rejection
        assert isinstance(result, expected), (record, result)
    for topic in (
        "cs.contact.queued",
        "cs.contact.answered",
        "cs.contact.abandoned",
        "cs.contact.ended",
        "cs.contact.wrapped",
        "cs.agent.status",
    ):
        assert outcomes[topic, "valid"] > 100, topic
    assert sum(n for (_, v), n in outcomes.items() if v == "invalid") > 10


def contacts_of(day: list[SimulatedEvent]) -> dict[str, dict[str, Any]]:
    contacts: dict[str, dict[str, Any]] = defaultdict(dict)
    for payload in valid_payloads(day, "cs.contact."):
        contact = contacts[payload["contact_id"]]
        kind = payload["type"].split(".")[1]
        contact[kind] = at_ms(payload)
        if kind == "queued":
            contact["channel"] = payload["channel"]
    return contacts


def test_waits_grow_when_the_floor_is_short_of_agents(day: list[SimulatedEvent]) -> None:
    """The morning ramp (08-09 UTC) has fewer agents per caller than the afternoon (14-16)."""
    start = int(MONDAY.timestamp() * 1000)
    waits: dict[str, list[int]] = {"ramp": [], "afternoon": []}
    abandons: Counter[str] = Counter()
    for contact in contacts_of(day).values():
        hour = (contact["queued"] - start) // HOUR_MS
        period = "ramp" if hour == 8 else "afternoon" if hour in (14, 15) else None
        if period is None:
            continue
        if "answered" in contact:
            waits[period].append(contact["answered"] - contact["queued"])
        else:
            abandons[period] += 1
    assert len(waits["ramp"]) > 50
    assert len(waits["afternoon"]) > 50
    assert sum(waits["ramp"]) / len(waits["ramp"]) > 3 * (
        sum(waits["afternoon"]) / len(waits["afternoon"])
    )
    ramp_share = abandons["ramp"] / (abandons["ramp"] + len(waits["ramp"]))
    afternoon_share = abandons["afternoon"] / (abandons["afternoon"] + len(waits["afternoon"]))
    assert ramp_share > 2 * afternoon_share


def test_callers_abandon_by_patience_and_handle_times_differ_by_channel(
    day: list[SimulatedEvent],
) -> None:
    contacts = contacts_of(day).values()
    gave_up = [c for c in contacts if "answered" not in c and ("abandoned" in c or "ended" in c)]
    assert gave_up
    assert all(
        c.get("abandoned", c.get("ended", 0)) > c["queued"] for c in gave_up if "queued" in c
    )
    talk: dict[str, list[int]] = defaultdict(list)
    for c in contacts:
        if "answered" in c and "ended" in c:
            talk[c["channel"]].append(c["ended"] - c["answered"])
    # medians of the model: phone 240 s, chat 420 s
    assert 180_000 < median(talk["phone"]) < 300_000
    assert 340_000 < median(talk["chat"]) < 520_000


def test_agents_work_shifts_with_breaks_and_after_contact_work(
    day: list[SimulatedEvent],
) -> None:
    timelines: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for payload in valid_payloads(day, "cs.agent."):
        timelines[payload["agent_id"]].append((at_ms(payload), payload["status"]))
    assert len(timelines) == 40
    for agent, timeline in timelines.items():
        statuses = [s for _, s in sorted(timeline)]
        assert {"available", "busy", "after_contact_work", "away", "offline"} <= set(statuses), (
            agent
        )
        for before, after in itertools.pairwise(statuses):
            if after == "busy":  # a contact is answered only by a free agent
                assert before == "available", (agent, statuses)
            if before == "busy":  # talk is followed by after-contact work
                assert after == "after_contact_work", (agent, statuses)


def test_same_seed_gives_the_same_floor() -> None:
    config = SimConfig(seed=5, contact_rate=120, floor_agents=10)
    end = MONDAY + timedelta(hours=3)
    assert list(generate(config, MONDAY, end)) == list(generate(config, MONDAY, end))
