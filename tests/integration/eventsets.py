"""Seeded event sets that exercise every rule at once: disorder, duplicates, conflicts, junk."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from zoneinfo import ZoneInfo

import orjson

from stream.events import ENTITY_ID_FIELD
from stream.kpi.types import AGENT_STATUSES, CONTACT_CHANNELS, TOPIC_OF_TYPE
from stream.kpi.windows import from_ms

QUEUES = ("billing", "tech-support", "returns", "<img src=x onerror=alert(1)>")
CHANNELS = ("phone", "email", "chat", "social", "web", "other")
PRIORITIES = ("low", "normal", "normal", "high", "urgent")
AGENTS = ("a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "", "x" * 128)
MINUTE = 60_000
HOUR = 60 * MINUTE


@dataclass
class EventSet:
    """Messages to produce, the lines `kpi-stream report` gets, and what must be rejected."""

    messages: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    report_lines: list[bytes] = field(default_factory=list)
    invalid: list[tuple[bytes, str]] = field(default_factory=list)  # (value, reason)


def _stamp(ms: int, rng: random.Random) -> str | int:
    """Either form the contract allows: RFC 3339 (Z or an offset) or epoch ms."""
    form = rng.random()
    if form < 0.2:
        return ms
    moment = from_ms(ms)
    if form < 0.3:
        return moment.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def mixed(
    now_ms: int, seed: int, tickets: int = 300, contacts: int = 0, agents: int = 0
) -> EventSet:
    """Tickets (and contacts, agents) over the last ~30 h with every awkward case of the
    contract."""
    rng = random.Random(seed)
    events: list[dict[str, object]] = []
    counter = iter(range(10**9))

    def add(kind: str, entity: str, at: int, **fields: object) -> None:
        at = min(at, now_ms - MINUTE)
        events.append(
            {
                "event_id": f"e{seed}-{next(counter)}",
                "type": kind,
                ENTITY_ID_FIELD[kind.partition(".")[0]]: entity,
                "occurred_at": _stamp(at, rng),
                **fields,
            }
        )

    for n in range(tickets):
        ticket = f"T-{seed}-{n}"
        opened = now_ms - rng.randint(10 * MINUTE, 30 * HOUR)
        if rng.random() < 0.95:
            add(
                "ticket.opened",
                ticket,
                opened,
                queue=rng.choice(QUEUES),
                channel=rng.choice(CHANNELS),
                priority=rng.choice(PRIORITIES),
            )
            if rng.random() < 0.15:  # a conflicting second opened event
                add(
                    "ticket.opened",
                    ticket,
                    opened + rng.randint(-5, 5) * MINUTE,
                    queue=rng.choice(QUEUES),
                    channel=rng.choice(CHANNELS),
                    priority=rng.choice(PRIORITIES),
                )
        reply = opened + int(rng.lognormvariate(7.5, 1.2) * 1000)
        if rng.random() < 0.8:
            add("ticket.first_reply", ticket, reply, agent_id=f"a{rng.randint(1, 9)}")
            if rng.random() < 0.2:
                add("ticket.first_reply", ticket, reply + rng.randint(1, 90) * MINUTE)
            if rng.random() < 0.7:
                resolved = reply + rng.randint(1, 8 * 60) * MINUTE
                add("ticket.resolved", ticket, resolved)
                if rng.random() < 0.15:  # reopened and solved again
                    add("ticket.resolved", ticket, resolved + rng.randint(10, 600) * MINUTE)
                for kind, low, high in (("csat", 1, 5), ("nps", 0, 10)):
                    if rng.random() < 0.5:
                        late = rng.random() < 0.2
                        at = now_ms - rng.randint(1, 20) * MINUTE if late else resolved + MINUTE
                        add(
                            "survey.responded",
                            ticket,
                            at,
                            survey=kind,
                            score=rng.randint(low, high),
                        )
                        if rng.random() < 0.2:  # the customer changes the answer
                            add(
                                "survey.responded",
                                ticket,
                                at + 3 * MINUTE,
                                survey=kind,
                                score=rng.randint(low, high),
                            )
        if rng.random() < 0.03:  # a survey for a ticket whose opened event never comes
            add("survey.responded", f"{ticket}-orphan", opened, survey="csat", score=5)

    _contacts(add, rng, now_ms, seed, contacts)
    _agents(add, rng, now_ms, seed, agents)

    result = EventSet()
    for event in events:
        value = orjson.dumps(event)
        kind = str(event["type"])
        key = str(event[ENTITY_ID_FIELD[kind.partition(".")[0]]]).encode()
        copies = 2 if rng.random() < 0.1 else 1  # at-least-once delivery
        for _ in range(copies):
            result.messages.append((TOPIC_OF_TYPE[kind], key, value))
            result.report_lines.append(value)
    _add_invalid(result, now_ms, seed)
    rng.shuffle(result.messages)
    return result


Add = Callable[..., None]


def _contacts(add: Add, rng: random.Random, now_ms: int, seed: int, count: int) -> None:
    """Calls and chats: answered, abandoned, hung up in the queue, short abandons, still
    waiting or talking, lost (stale), answers without their queued event, conflicts."""
    for n in range(count):
        contact = f"C-{seed}-{n}"
        queued = now_ms - rng.randint(2 * MINUTE, 30 * HOUR)
        if rng.random() < 0.05:  # still waiting right now (the live queue)
            queued = now_ms - rng.randint(1, 10) * MINUTE - rng.randint(0, 59_000)
        channel = rng.choice(CONTACT_CHANNELS)
        if rng.random() < 0.95:
            add("contact.queued", contact, queued, queue=rng.choice(QUEUES), channel=channel)
            if rng.random() < 0.1:  # a conflicting second queued event
                add(
                    "contact.queued",
                    contact,
                    queued + rng.randint(-20, 20) * 1000,
                    queue=rng.choice(QUEUES),
                    channel=rng.choice(CONTACT_CHANNELS),
                )
        fate = rng.random()
        wait = int(rng.expovariate(1 / 40_000))
        if fate < 0.6:
            answered = queued + wait
            add("contact.answered", contact, answered, agent_id=rng.choice(AGENTS))
            if rng.random() < 0.1:  # a second, later answer (transfer) changes nothing
                add("contact.answered", contact, answered + 30_000, agent_id=rng.choice(AGENTS))
            if rng.random() < 0.9:
                ended = answered + int(rng.lognormvariate(5.5, 0.6) * 1000)
                add("contact.ended", contact, ended)
                if rng.random() < 0.8:
                    add("contact.wrapped", contact, ended + rng.randint(5, 120) * 1000)
            if rng.random() < 0.05:  # an abandon after the answer: still answered
                add("contact.abandoned", contact, answered + 1000)
        elif fate < 0.8:
            add("contact.abandoned", contact, queued + wait)
        elif fate < 0.9:
            add("contact.ended", contact, queued + rng.randint(1, 8) * 1000)  # some short
        # else: never heard of again: waiting, then stale after contact_stale_seconds


def _agents(add: Add, rng: random.Random, now_ms: int, seed: int, count: int) -> None:
    """Agents' status events over three days: older than the 48 h horizon too, stale
    agents, agents gone for good, several teams."""
    for n in range(count):
        named = [a for a in AGENTS if a]  # an empty agent_id is valid only on a contact
        agent = named[n] if n < len(named) else f"A-{seed}-{n}"
        team = rng.choice(("blue", "red", "<b>green</b>"))
        at = now_ms - rng.randint(20 * HOUR, 72 * HOUR)
        while at < now_ms - 2 * MINUTE:
            add("agent.status", agent, at, status=rng.choice(AGENT_STATUSES), team=team)
            at += int(rng.expovariate(1 / (40 * MINUTE)))
            if rng.random() < 0.02:  # gone for half a day: stale, then offline
                at += 13 * HOUR


def _add_invalid(result: EventSet, now_ms: int, seed: int) -> None:
    good = {
        "event_id": f"bad{seed}",
        "type": "ticket.opened",
        "ticket_id": f"B-{seed}",
        "occurred_at": now_ms - HOUR,
        "queue": "billing",
        "channel": "email",
        "priority": "high",
    }

    def variant(**changes: object) -> bytes:
        event = {**good, **changes}
        return orjson.dumps({k: v for k, v in event.items() if v is not None})

    key = f"B-{seed}".encode()
    cases: list[tuple[str, bytes | None, bytes, str, bool]] = [
        ("cs.ticket.opened", key, b"{not json", "invalid_json", True),
        ("cs.ticket.opened", key, b"\xff\xfe", "invalid_json", True),
        ("cs.ticket.opened", key, b"[1, 2]", "not_object", True),
        ("cs.ticket.opened", key, variant(queue=None), "missing_field", True),
        ("cs.ticket.opened", key, variant(channel="fax"), "invalid_field", True),
        ("cs.ticket.opened", key, variant(priority=3), "invalid_field", True),
        ("cs.ticket.opened", key, variant(ticket_id="x" * 129), "invalid_field", True),
        (
            "cs.ticket.opened",
            key,
            variant(occurred_at="2026-11-22T10:00:00"),
            "invalid_timestamp",
            True,
        ),
        (
            "cs.ticket.opened",
            key,
            variant(occurred_at=now_ms + 3_600_000),
            "future_timestamp",
            True,
        ),
        ("cs.ticket.opened", key, variant(type="ticket.closed"), "unknown_type", True),
        (
            "cs.survey.responded",
            key,
            variant(type="survey.responded", survey="csat", score=6),
            "invalid_field",
            True,
        ),
        # expressible only on Kafka, not in a JSONL file: kept out of the report's input
        ("cs.ticket.resolved", f"B-{seed}".encode(), variant(), "type_mismatch", False),
        (
            "cs.ticket.opened",
            b"another-key",
            variant(event_id=f"bad{seed}-key"),
            "key_mismatch",
            False,
        ),
    ]
    contact = {
        "event_id": f"badc{seed}",
        "type": "contact.queued",
        "contact_id": f"BC-{seed}",
        "occurred_at": now_ms - HOUR,
        "queue": "billing",
        "channel": "phone",
    }
    status = {
        "event_id": f"bada{seed}",
        "type": "agent.status",
        "agent_id": f"BA-{seed}",
        "occurred_at": now_ms - HOUR,
        "status": "busy",
    }
    contact_key, agent_key = f"BC-{seed}".encode(), f"BA-{seed}".encode()
    cases += [
        ("cs.contact.queued", contact_key, orjson.dumps({**contact, "channel": "email"}),
         "invalid_field", True),
        ("cs.contact.queued", contact_key, orjson.dumps({**contact, "customer_id": ""}),
         "invalid_field", True),
        ("cs.agent.status", agent_key, orjson.dumps({**status, "status": "lunch"}),
         "invalid_field", True),
        ("cs.agent.status", agent_key, orjson.dumps({**status, "team": 7}),
         "invalid_field", True),
        ("cs.contact.ended", contact_key, orjson.dumps(contact), "type_mismatch", False),
        ("cs.agent.status", b"someone-else", orjson.dumps(status), "key_mismatch", False),
    ]  # fmt: skip
    for topic, key, value, reason, in_report in cases:
        result.messages.append((topic, key, value))
        result.invalid.append((value, reason))
        if in_report:
            result.report_lines.append(value.replace(b"\n", b" "))


# Office hours in Stockholm with today's local date as a holiday: SLA time runs only in
# part of the last 30 h, so business-time breaches differ from calendar-time ones.
def business_hours_policy(now_ms: int) -> str:
    """A policy file: billing and returns on office hours, a 24/7 default for the rest."""
    today = from_ms(now_ms).astimezone(ZoneInfo("Europe/Stockholm")).date()
    return f"""
[calendars.office]
timezone = "Europe/Stockholm"
mon = ["08:00-12:00", "12:30-17:00"]
tue = ["08:00-17:00"]
wed = ["08:00-17:00"]
thu = ["08:00-17:00"]
fri = ["08:00-17:00"]
sat = ["10:00-14:00"]
holidays = ["{today}"]

[[policies]]
queues = ["billing", "returns"]
calendar = "office"
first_response_seconds = {{ urgent = 600, high = 1800, normal = 3600, low = 7200 }}
resolution_seconds = {{ urgent = 3600, high = 7200, normal = 14400 }}

[[policies]]
first_response_seconds = {{ normal = 1800 }}
"""


def ticket_lives(now_ms: int, seed: int, tickets: int = 200) -> EventSet:
    """Tickets with every reply, reopens (some still open), duplicates, in any order."""
    rng = random.Random(seed)
    events: list[dict[str, object]] = []
    counter = iter(range(10**9))

    def add(kind: str, ticket: str, at: int, **fields: object) -> None:
        events.append(
            {
                "event_id": f"L{seed}-{next(counter)}",
                "type": kind,
                "ticket_id": ticket,
                "occurred_at": _stamp(min(at, now_ms - MINUTE), rng),
                **fields,
            }
        )

    for n in range(tickets):
        ticket = f"L-{seed}-{n}"
        at = now_ms - rng.randint(10 * MINUTE, 30 * HOUR)
        add(
            "ticket.opened",
            ticket,
            at,
            queue=rng.choice(QUEUES),
            channel=rng.choice(CHANNELS),
            priority=rng.choice(PRIORITIES),
        )
        for _ in range(rng.choice((0, 1, 1, 1, 2, 3))):
            at += rng.randint(1, 120) * MINUTE
            kind = "ticket.first_reply" if rng.random() < 0.3 else "ticket.replied"
            add(kind, ticket, at, agent_id=f"a{rng.randint(1, 9)}")
        if rng.random() < 0.7:
            at += rng.randint(1, 300) * MINUTE
            add("ticket.resolved", ticket, at, agent_id=f"a{rng.randint(1, 9)}")
            if rng.random() < 0.3:
                at += rng.randint(1, 300) * MINUTE
                add("ticket.reopened", ticket, at)
                if rng.random() < 0.5:
                    at += rng.randint(1, 60) * MINUTE
                    add("ticket.replied", ticket, at)
                if rng.random() < 0.6:
                    add("ticket.resolved", ticket, at + rng.randint(1, 300) * MINUTE)
    result = EventSet()
    for event in events:
        value = orjson.dumps(event)
        for _ in range(2 if rng.random() < 0.1 else 1):
            result.messages.append(
                (TOPIC_OF_TYPE[str(event["type"])], str(event["ticket_id"]).encode(), value)
            )
            result.report_lines.append(value)
    rng.shuffle(result.messages)
    return result
