"""The simulator: reproducible, contract-conformant, realistic, paced by the injected clock."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from kpi_devtools.simulate import SimConfig, SimulatedEvent, generate, write_jsonl
from kpi_devtools.simulate.command import Stats, pace, simulate
from kpi_devtools.simulate.generator import DEFECTS
from stream.kafka_client import bootstrap_servers

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
TOPIC_OF = {
    "ticket.opened": "cs.ticket.opened",
    "ticket.first_reply": "cs.ticket.first_reply",
    "ticket.resolved": "cs.ticket.resolved",
    "survey.responded": "cs.survey.responded",
    "ticket.replied": "cs.ticket.replied",
    "ticket.reopened": "cs.ticket.reopened",
    "contact.queued": "cs.contact.queued",
    "contact.answered": "cs.contact.answered",
    "contact.abandoned": "cs.contact.abandoned",
    "contact.ended": "cs.contact.ended",
    "contact.wrapped": "cs.contact.wrapped",
    "agent.status": "cs.agent.status",
}
TICKET_TOPICS = {t for k, t in TOPIC_OF.items() if k.startswith(("ticket.", "survey."))}
FIRST_RESPONSE_TARGET = {"urgent": 900, "high": 3600, "normal": 14400, "low": 86400}
RESOLUTION_TARGET = {"urgent": 14400, "high": 86400, "normal": 259200, "low": 604800}
REQUIRED_FIELDS: dict[str, dict[str, type]] = {
    "ticket.opened": {"queue": str, "channel": str, "priority": str},
    "survey.responded": {"survey": str, "score": int},
    "contact.queued": {"queue": str, "channel": str},
    "agent.status": {"status": str},
}
ENUMS = {
    ("contact.queued", "channel"): ("phone", "chat", "video", "other"),
    ("agent.status", "status"): ("available", "busy", "after_contact_work", "away", "offline"),
}
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def violation(topic: str | None, key: bytes | None, value: bytes) -> str | None:
    """An independent reading of CONTRACT section 1: None if valid (None topic/key: JSONL)."""
    try:
        event = json.loads(value)
    except ValueError:
        return "invalid_json"
    if not isinstance(event, dict):
        return "not_object"
    id_field = {"contact": "contact_id", "agent": "agent_id"}.get(
        str(event.get("type")).split(".")[0], "ticket_id"
    )
    if any(name not in event for name in ("event_id", "type", id_field, "occurred_at")):
        return "missing_field"
    for name in ("event_id", id_field):
        if not isinstance(event[name], str) or not 1 <= len(event[name]) <= 128:
            return "invalid_field"
    kind = event["type"]
    if kind not in TOPIC_OF:
        return "unknown_type"
    if topic is not None and TOPIC_OF[kind] != topic:
        return "type_mismatch"
    if key is not None and key != event[id_field].encode():
        return "key_mismatch"
    occurred = event["occurred_at"]
    if isinstance(occurred, str) and not RFC3339.fullmatch(occurred):
        return "invalid_timestamp"
    if not isinstance(occurred, str | int) or isinstance(occurred, bool):
        return "invalid_field"
    required = REQUIRED_FIELDS.get(kind, {})
    if any(name not in event for name in required):
        return "missing_field"
    if any(type(event[name]) is not cls for name, cls in required.items()):
        return "invalid_field"
    if "agent_id" in event and not isinstance(event["agent_id"], str):
        return "invalid_field"
    if any(event[f] not in allowed for (k, f), allowed in ENUMS.items() if k == kind):
        return "invalid_field"
    if kind == "ticket.opened" and (
        event["channel"] not in ("phone", "email", "chat", "social", "web", "other")
        or event["priority"] not in FIRST_RESPONSE_TARGET
    ):
        return "invalid_field"
    if kind == "survey.responded":
        low, high = {"csat": (1, 5), "nps": (0, 10)}.get(event["survey"], (1, 0))
        if not low <= event["score"] <= high:
            return "invalid_field"
    return None


def occurred_ms(event: dict[str, Any]) -> int:
    value = event["occurred_at"]
    if isinstance(value, int):
        return value
    return int(datetime.fromisoformat(value).timestamp() * 1000)


@dataclass
class Ticket:
    """A ticket folded from its valid events by the contract's section 2 rules."""

    opened: tuple[int, str] | None = None
    priority: str = ""
    queue: str = ""
    opened_ids: set[str] = field(default_factory=set)
    opened_times: set[int] = field(default_factory=set)
    first_reply: int | None = None
    resolutions: list[int] = field(default_factory=list)
    surveys: list[tuple[str, int, int]] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)  # event id -> type
    reopens: list[int] = field(default_factory=list)

    @property
    def resolved(self) -> bool:
        """Section 9: the latest resolve is at or after every reopen."""
        return bool(self.resolutions) and max(self.resolutions) >= max(self.reopens, default=0)


def fold(events: Iterable[SimulatedEvent]) -> dict[str, Ticket]:
    tickets: dict[str, Ticket] = defaultdict(Ticket)
    for record in events:
        if record.kind != "valid":
            continue
        event = json.loads(record.value)
        ticket, at = tickets[event["ticket_id"]], occurred_ms(event)
        if event["type"] == "ticket.opened":
            ticket.opened_ids.add(event["event_id"])
            ticket.opened_times.add(at)
            if ticket.opened is None or (at, event["event_id"]) < ticket.opened:
                ticket.opened = (at, event["event_id"])
                ticket.priority, ticket.queue = event["priority"], event["queue"]
        elif event["type"] in ("ticket.first_reply", "ticket.replied"):
            ticket.first_reply = min(at, ticket.first_reply or at)
            ticket.replies[event["event_id"]] = event["type"]
        elif event["type"] == "ticket.resolved":
            ticket.resolutions.append(at)
        elif event["type"] == "ticket.reopened":
            ticket.reopens.append(at)
        else:
            ticket.surveys.append((event["survey"], event["score"], at))
    return tickets


@pytest.fixture(scope="module")
def week() -> list[SimulatedEvent]:
    """Seven days of default traffic, Monday to Sunday (UTC)."""
    return list(generate(SimConfig(seed=7), MONDAY, MONDAY + timedelta(days=7)))


@pytest.fixture(scope="module")
def tickets(week: list[SimulatedEvent]) -> dict[str, Ticket]:
    return fold(week)


def test_same_seed_and_start_give_identical_bytes() -> None:
    def run(seed: int, start: datetime) -> list[SimulatedEvent]:
        return list(generate(SimConfig(seed=seed), start, start + timedelta(hours=6)))

    first = run(1, MONDAY)
    assert len(first) > 400
    assert run(1, MONDAY) == first
    assert run(2, MONDAY) != first
    later = run(1, MONDAY + timedelta(minutes=1))
    assert {e.key for e in later}.isdisjoint({e.key for e in first}), "a restart reuses ids"


def test_a_shorter_run_is_a_prefix_of_a_longer_one() -> None:
    config = SimConfig(seed=3)
    longer = list(generate(config, MONDAY, MONDAY + timedelta(hours=12)))
    shorter = list(generate(config, MONDAY, MONDAY + timedelta(hours=6)))
    assert 0 < len(shorter) < len(longer)
    assert longer[: len(shorter)] == shorter


def test_events_come_in_send_order_never_before_they_happen(week: list[SimulatedEvent]) -> None:
    assert all(a.emit_ms <= b.emit_ms for a, b in itertools.pairwise(week))
    assert week[0].emit_at >= MONDAY
    assert week[-1].emit_at < MONDAY + timedelta(days=7)
    late = 0
    for record in week:
        if record.kind != "invalid":
            at = occurred_ms(json.loads(record.value))
            assert at <= record.emit_ms
            late += at < record.emit_ms
    assert late > 0, "some events must arrive out of order"


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York"])
def test_valid_events_conform_and_invalid_ones_do_not(zone: str) -> None:
    config = SimConfig(seed=11, timezone=zone, invalid_share=0.1)
    events = list(generate(config, MONDAY, MONDAY + timedelta(days=1)))
    for record in events:
        reason = violation(record.topic, record.key, record.value)
        if record.kind == "invalid":
            assert reason is not None, (record.defect, record.value)
        else:
            assert reason is None, (reason, record.value)
    assert {r.defect for r in events if r.kind == "invalid"} == set(DEFECTS)


def test_timestamps_use_all_contract_forms() -> None:
    config = SimConfig(seed=5, timezone="Europe/Berlin")
    events = generate(config, MONDAY, MONDAY + timedelta(hours=12))
    stamps = [json.loads(r.value)["occurred_at"] for r in events if r.kind == "valid"]
    forms = Counter(
        "epoch_ms" if isinstance(s, int) else "Z" if s.endswith("Z") else s[-6:] for s in stamps
    )
    assert set(forms) == {"epoch_ms", "Z", "+01:00"}
    assert forms["Z"] > forms["epoch_ms"] > 0
    texts = [s for s in stamps if isinstance(s, str)]
    assert all(re.fullmatch(r".*T\d\d:\d\d:\d\d\.\d{3}(Z|\+01:00)", s) for s in texts)


def test_duplicates_resend_earlier_bytes(week: list[SimulatedEvent]) -> None:
    sent: set[tuple[str, bytes, bytes]] = set()
    duplicates = 0
    for record in week:
        if record.kind == "valid":
            sent.add((record.topic, record.key, record.value))
        elif record.kind == "duplicate":
            assert (record.topic, record.key, record.value) in sent
            duplicates += 1
    assert duplicates > 0


@pytest.mark.parametrize(
    ("duplicate_share", "invalid_share"), [(0.0, 0.0), (0.02, 0.01), (0.1, 0.2), (0.0, 0.3)]
)
def test_duplicate_and_invalid_shares(duplicate_share: float, invalid_share: float) -> None:
    config = SimConfig(seed=9, duplicate_share=duplicate_share, invalid_share=invalid_share)
    kinds: Counter[str] = Counter(
        r.kind for r in generate(config, MONDAY, MONDAY + timedelta(days=2))
    )
    total = kinds.total()
    assert total > 20_000
    for kind, share in (("duplicate", duplicate_share), ("invalid", invalid_share)):
        assert kinds[kind] / total == pytest.approx(share, rel=0.15, abs=0.001), kind


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError):
        SimConfig(duplicate_share=0.3, invalid_share=0.3)
    with pytest.raises(ValueError):
        SimConfig(queues=())
    with pytest.raises(ValueError):
        SimConfig(defects=("bad_json", "typo"))


def test_first_responses_and_resolutions_breach_some_default_targets(
    tickets: dict[str, Ticket],
) -> None:
    first: Counter[tuple[str, bool]] = Counter()
    resolved: Counter[bool] = Counter()
    for t in tickets.values():
        assert t.opened is not None
        if t.first_reply is not None:
            frt = (t.first_reply - t.opened[0]) / 1000
            first[t.priority, frt > FIRST_RESPONSE_TARGET[t.priority]] += 1
        if t.resolutions:
            art = (max(t.resolutions) - t.opened[0]) / 1000
            resolved[art > RESOLUTION_TARGET[t.priority]] += 1
    breaches = sum(n for (_, breached), n in first.items() if breached)
    assert 0.05 <= breaches / first.total() <= 0.15
    assert all(first[priority, True] > 0 for priority in FIRST_RESPONSE_TARGET)
    assert 0.03 <= resolved[True] / resolved.total() <= 0.15


def test_some_tickets_are_still_awaiting_a_first_reply_at_the_end(
    tickets: dict[str, Ticket],
) -> None:
    waiting = [t for t in tickets.values() if t.first_reply is None]
    assert 0.02 <= len(waiting) / len(tickets) <= 0.10


def test_reopens_and_conflicting_opened_events(tickets: dict[str, Ticket]) -> None:
    reopened = sum(len(set(t.resolutions)) > 1 or bool(t.reopens) for t in tickets.values())
    conflicting = [t for t in tickets.values() if len(t.opened_ids) > 1]
    assert 0.03 <= reopened / len(tickets) <= 0.10
    assert any(len(t.opened_times) == 1 for t in conflicting), "same time, id breaks the tie"
    assert any(len(t.opened_times) > 1 for t in conflicting)


def test_every_reply_and_reopens_as_helpdesks_send_them(tickets: dict[str, Ticket]) -> None:
    """Section 9: some helpdesks send every reply and reopens, the others only first replies."""
    replied = [t for t in tickets.values() if t.replies]
    every_reply = [t for t in replied if "ticket.replied" in t.replies.values()]
    first_only = [t for t in replied if "ticket.replied" not in t.replies.values()]
    assert all(set(t.replies.values()) == {"ticket.first_reply"} for t in first_only)
    assert all(len(t.replies) == 1 and not t.reopens for t in first_only)
    assert 0.5 <= len(every_reply) / len(replied) <= 0.7
    several = sum(len(t.replies) > 1 for t in every_reply) / len(every_reply)
    assert 0.35 <= several <= 0.6
    with_reopen = [t for t in every_reply if t.reopens]
    assert 0.03 <= len(with_reopen) / len(every_reply) <= 0.10
    still_open = sum(not t.resolved for t in with_reopen) / len(with_reopen)
    assert 0.1 <= still_open <= 0.4
    assert all(max(t.reopens) > min(t.resolutions) for t in with_reopen)
    one_touch = [t for t in replied if t.resolved and len(t.replies) == 1 and not t.reopens]
    assert 0.4 <= len(one_touch) / sum(t.resolved for t in replied) <= 0.8


def test_surveys_come_after_resolution_some_more_than_a_day_later(
    tickets: dict[str, Ticket],
) -> None:
    delays = [
        (at - min(t.resolutions)) / 3_600_000
        for t in tickets.values()
        for _, _, at in t.surveys
        if t.resolutions
    ]
    assert all(t.resolutions for t in tickets.values() if t.surveys)
    assert min(delays) > 0
    assert min(delays) < 0.1, "some answer within minutes"
    assert 0.05 <= sum(d > 24 for d in delays) / len(delays) <= 0.40


def test_survey_scores_have_realistic_distributions(tickets: dict[str, Ticket]) -> None:
    scores: dict[str, list[int]] = defaultdict(list)
    for t in tickets.values():
        for survey, score, _ in t.surveys:
            scores[survey].append(score)
    csat, nps = scores["csat"], scores["nps"]
    assert set(csat) == set(range(1, 6))
    assert set(nps) == set(range(11))
    assert 0.7 <= sum(s >= 4 for s in csat) / len(csat) <= 0.9
    net = (sum(s >= 9 for s in nps) - sum(s <= 6 for s in nps)) / len(nps) * 100
    assert 0 <= net <= 30
    responded = sum(bool(t.surveys) for t in tickets.values() if t.resolutions)
    assert 0.2 <= responded / len(tickets) <= 0.6


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_arrivals_follow_the_diurnal_curve_in_the_configured_zone(zone: str) -> None:
    config = SimConfig(seed=4, timezone=zone, rate=200)
    events = generate(config, MONDAY, MONDAY + timedelta(days=7))
    local = [
        datetime.fromtimestamp(r.emit_ms / 1000, ZoneInfo(zone))
        for r in events
        if r.kind == "valid" and r.topic == "cs.ticket.opened"
    ]
    weekday = Counter(t.hour for t in local if t.weekday() < 5)
    peak = sum(weekday[h] for h in range(10, 16)) / 6
    night = sum(weekday[h] for h in range(1, 5)) / 4
    assert peak > 8 * night
    weekdays = sum(t.weekday() < 5 for t in local) / 5
    weekend_days = sum(t.weekday() >= 5 for t in local) / 2
    assert 0.4 * weekdays < weekend_days < 0.8 * weekdays


def test_queues_and_agents_come_from_the_config() -> None:
    config = SimConfig(seed=2, queues=("a", "b", "c"), agents=4)
    events = [json.loads(r.value) for r in generate(config, MONDAY, MONDAY + timedelta(days=1))
              if r.kind == "valid"]  # fmt: skip
    queues = Counter(e["queue"] for e in events if e["type"] == "ticket.opened")
    assert set(queues) == {"a", "b", "c"}
    assert queues["a"] > queues["b"] > queues["c"]
    agents = {e["agent_id"] for e in events if "agent_id" in e}
    assert agents == {"agent-001", "agent-002", "agent-003", "agent-004"}
    replies = [e for e in events if e["type"] in ("ticket.first_reply", "ticket.resolved")]
    assert any("agent_id" not in e for e in replies), "agent_id is optional"


def test_too_few_agents_slow_first_replies() -> None:
    def frt_breach_share(agents: int) -> float:
        config = SimConfig(seed=6, agents=agents)
        folded = fold(generate(config, MONDAY, MONDAY + timedelta(days=1))).values()
        frts = [
            ((t.first_reply - t.opened[0]) / 1000, FIRST_RESPONSE_TARGET[t.priority])
            for t in folded
            if t.first_reply is not None and t.opened is not None
        ]
        return sum(frt > target for frt, target in frts) / len(frts)

    assert frt_breach_share(20) > 2 * frt_breach_share(80)


class RecordingSink:
    """Remembers each event with the injected clock's time when it was sent."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.sent: list[tuple[SimulatedEvent, datetime]] = []
        self.flushes = 0

    async def send(self, event: SimulatedEvent) -> None:
        self.sent.append((event, self.clock()))

    async def flush(self) -> None:
        self.flushes += 1


class SimulatedTime:
    """A clock that only `sleep` moves forward, by exactly the time asked for."""

    def __init__(self, start: datetime) -> None:
        self.at = start
        self.slept: list[float] = []  # seconds of each sleep

    def now(self) -> datetime:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += timedelta(seconds=seconds)


async def test_pacing_sends_history_at_once_then_live_never_ahead_of_the_clock() -> None:
    base = datetime(2026, 3, 3, 11, tzinfo=UTC)  # a Tuesday peak
    clock = SimulatedTime(base)
    sink = RecordingSink(clock.now)
    config = SimConfig(seed=8, rate=20_000)
    events = generate(config, base - timedelta(minutes=10), base + timedelta(seconds=2))
    stats = await pace(
        events, sink, now=clock.now, sleep=clock.sleep, until=base + timedelta(seconds=2.5)
    )
    assert clock.now() == base + timedelta(seconds=2.5), "runs until `until`, not the last event"
    history = [(e, at) for e, at in sink.sent if e.emit_at <= base]
    live = [(e, at) for e, at in sink.sent if e.emit_at > base]
    assert len(history) > 2000
    assert len(live) > 5
    assert {at for _, at in history} == {base}, "history is sent at once, without waiting"
    assert [at for _, at in sink.sent] == sorted(at for _, at in sink.sent)
    for event, sent_at in live:
        assert sent_at == event.emit_at, "a live event goes out when due, not before or later"
    for event, sent_at in sink.sent:
        if event.kind != "invalid":
            occurred = occurred_ms(json.loads(event.value))
            assert occurred / 1000 <= sent_at.timestamp()
    assert sum(clock.slept) == pytest.approx(2.5), "idles only as long as the clock asks"
    assert sink.flushes > 1, "flushes before idling"
    assert stats.by_topic.total() == len(sink.sent)


def test_stats_summary_counts_by_topic() -> None:
    stats = Stats()
    for record in generate(SimConfig(seed=1), MONDAY, MONDAY + timedelta(hours=12)):
        stats.add(record)
    assert stats.duplicates > 0
    assert stats.invalid > 0
    assert set(stats.by_topic) == TICKET_TOPICS
    assert f"cs.ticket.opened {stats.by_topic['cs.ticket.opened']}" in stats.summary()


async def test_write_jsonl_one_object_per_line(tmp_path: Path) -> None:
    events = list(generate(SimConfig(seed=1), MONDAY, MONDAY + timedelta(hours=3)))
    path = tmp_path / "events.jsonl"
    with path.open("wb") as out:
        await write_jsonl(events, out)
    assert path.read_bytes() == b"".join(e.value + b"\n" for e in events)


@pytest.mark.parametrize(
    ("broker", "servers"),
    [
        ("kafka://localhost:9092", ["localhost:9092"]),
        ("kafka://a:1,b:2", ["a:1", "b:2"]),
        ("kafka://a:1;kafka://b:2", ["a:1", "b:2"]),
        ("a:1, b:2 ,", ["a:1", "b:2"]),
    ],
)
def test_bootstrap_servers(broker: str, servers: list[str]) -> None:
    assert bootstrap_servers(broker) == servers


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(simulate, list(args), catch_exceptions=False)


def test_cli_out_writes_reproducible_jsonl_that_ends(tmp_path: Path) -> None:
    args = ["--backfill", "24", "--now", "2026-03-03T12:00:00Z", "--seed", "5", "--rate", "300"]
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    result = run_cli(*args, "--out", str(first))
    assert result.exit_code == 0, result.output
    assert run_cli(*args, "--out", str(second)).exit_code == 0
    assert first.read_bytes() == second.read_bytes()
    lines = first.read_bytes().splitlines()
    assert "2026-03-02T12:00:00.000Z .. 2026-03-03T12:00:00.000Z" in result.stderr
    assert f"{len(lines)} events" in result.stderr
    invalid = sum(violation(None, None, line) is not None for line in lines)
    assert invalid > 0
    assert re.search(rf"\b{invalid} invalid\b", result.stderr), "every invalid line is detectable"


def test_cli_out_dash_writes_to_stdout() -> None:
    result = run_cli("--out", "-", "--backfill", "2", "--now", "2026-03-03T12:00:00Z")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) > 50
    valid = sum(violation(None, None, line.encode()) is None for line in lines)
    assert valid / len(lines) > 0.9
    assert f"{len(lines)} events" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "-"], "--out needs --backfill or --duration"),
        (["--out", "-", "--backfill", "1", "--timezone", "Mars/Olympus"], "unknown time zone"),
        (["--out", "-", "--backfill", "1", "--now", "2026-03-03T12:00:00"], "needs an offset"),
        (["--out", "-", "--backfill", "1", "--duplicate-share", "0.3", "--invalid-share", "0.3"],
         "sum below 0.5"),
    ],
)  # fmt: skip
def test_cli_refuses_bad_options(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_cli_help_shows_defaults_and_env_vars() -> None:
    result = CliRunner().invoke(simulate, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for expected in [
        "[default: 600.0;",
        "env var: KPI_BROKER",
        "default: kafka://localhost:9092",
        "env var: KPI_TIMEZONE",
        "[default: (until Ctrl-C);",
        "--duplicate-share",
        "--invalid-share",
        "--agents",
        "--queues",
        "--seed",
        "--out",
    ]:
        assert expected in text, expected
