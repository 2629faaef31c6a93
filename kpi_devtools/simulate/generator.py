"""Pure, seeded contact-centre event generator: tickets in, contract events out, in send order."""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Generic, Literal, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

import orjson

from kpi_devtools.simulate.floor import Floor
from stream.events import ENTITY_ID_FIELD
from stream.kpi.types import TOPIC_OF_TYPE

TOPICS = TOPIC_OF_TYPE
DEFAULT_QUEUES = ("billing", "tech-support", "returns", "sales", "vip")
T = TypeVar("T")


class Mix(Generic[T]):
    """A weighted choice, drawn with one random number."""

    def __init__(self, weights: dict[T, float]) -> None:
        self.values = list(weights)
        self._cumulative = list(itertools.accumulate(weights.values()))

    def draw(self, rng: random.Random) -> T:
        point = rng.random() * self._cumulative[-1]
        return self.values[bisect.bisect(self._cumulative, point, hi=len(self.values) - 1)]


CHANNELS = Mix({"email": 35, "chat": 25, "phone": 20, "web": 12, "social": 6, "other": 2})
PRIORITIES = Mix({"low": 15, "normal": 60, "high": 18, "urgent": 7})

# Lognormal medians (seconds, sigma 1.0) set so that roughly 5-15 % breach the contract's
# default SLA targets (first response 900/3600/14400/86400 s, resolution 4 h/1 d/3 d/7 d).
DELAY_SIGMA = 1.0
FIRST_REPLY_MEDIAN_S = {"urgent": 260, "high": 1_000, "normal": 4_000, "low": 24_000}
RESOLUTION_MEDIAN_S = {"urgent": 3_000, "high": 19_000, "normal": 65_000, "low": 170_000}
REOPEN_GAP_MEDIAN_S = 30_000
ABANDON_SHARE = 0.03  # never answered, never resolved
REOPEN_SHARE = 0.06  # resolved again after a reopen
# Helpdesks that send ticket.replied for every public reply and ticket.reopened (contract
# section 9); the others send only ticket.first_reply, and a reopen shows as a later resolve.
EVERY_REPLY_SHARE = 0.6
FURTHER_REPLY_P = 0.45  # after each reply, the chance of one more before the resolve
STILL_REOPENED_SHARE = 0.25  # reopened tickets not solved again
CONFLICT_SHARE = 0.01  # a second, different ticket.opened (e.g. a form sent twice)
SURVEY_RESPONSE = {"csat": 0.30, "nps": 0.15}  # response rates after resolution
CHANGED_ANSWER_SHARE = 0.03
SCORES = {
    "csat": Mix(dict(zip(range(1, 6), (5, 5, 10, 30, 50), strict=True))),  # 80 % satisfied
    # 0..10: 25 % detractors, 35 % passives, 40 % promoters (NPS +15)
    "nps": Mix(dict(zip(range(11), (2, 1, 1, 2, 2, 5, 12, 15, 20, 18, 22), strict=True))),
}
LATE_SHARE = 0.03  # delivered a while after it happened (mobile sync, retries)
EPOCH_MS_SHARE = 0.10  # occurred_at as epoch milliseconds
LOCAL_OFFSET_SHARE = 0.10  # occurred_at with the local offset instead of Z
TICKETS_PER_AGENT_HOUR = 10.0  # above 80 % utilisation, first replies slow down

# Relative arrival rate for each local hour 0..23 (linearly interpolated); weekends lower.
DIURNAL = (0.08, 0.06, 0.05, 0.05, 0.06, 0.10, 0.20, 0.40, 0.70, 0.90, 1.00, 1.00,
           0.85, 0.90, 0.95, 0.90, 0.80, 0.65, 0.50, 0.40, 0.32, 0.25, 0.18, 0.12)  # fmt: skip
WEEKEND_FACTOR = 0.6

Kind = Literal["valid", "duplicate", "invalid"]
DEFECTS = ("bad_json", "not_object", "missing_field", "mistyped_field", "wrong_enum",
           "naive_timestamp", "score_out_of_range", "too_long", "type_mismatch")  # fmt: skip
REQUIRED = {
    "ticket.opened": ("queue", "channel", "priority"),
    "ticket.first_reply": (),
    "ticket.resolved": (),
    "survey.responded": ("survey", "score"),
    "ticket.replied": (),
    "ticket.reopened": (),
    "contact.queued": ("queue", "channel"),
    "contact.answered": (),
    "contact.abandoned": (),
    "contact.ended": (),
    "contact.wrapped": (),
    "agent.status": ("status",),
}
# A value outside the field's set, per type with an enum field.
WRONG_ENUMS: Final = {
    "ticket.opened": (("channel", "fax"), ("priority", "critical")),
    "survey.responded": (("survey", "ces"),),
    "contact.queued": (("channel", "email"),),
    "agent.status": (("status", "lunch"),),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """What to simulate. `rate` is tickets per hour at the diurnal peak on a weekday."""

    seed: int = 1
    rate: float = 600.0
    queues: tuple[str, ...] = DEFAULT_QUEUES
    agents: int = 80
    duplicate_share: float = 0.02  # of all records sent: exact byte copies re-sent
    invalid_share: float = 0.01  # of all records sent: events the processor must reject
    timezone: str = "UTC"  # of the diurnal curve and of the local-offset timestamps
    defects: tuple[str, ...] = DEFECTS  # JSONL output drops type_mismatch: no topic there
    contact_rate: float = 0.0  # calls, chats and video per hour at the peak (0: no floor)
    floor_agents: int = 40  # agents on the contact floor (agent-001 ..), on shifts

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.agents < 1 or not self.queues:
            raise ValueError("rate, agents and queues must be positive")
        if self.contact_rate < 0 or self.floor_agents < 1:
            raise ValueError("contact_rate must be >= 0 and floor_agents positive")
        if min(self.duplicate_share, self.invalid_share) < 0 or (
            self.duplicate_share + self.invalid_share >= 0.5
        ):
            raise ValueError("duplicate and invalid shares must be >= 0 and sum below 0.5")
        if not set(self.defects) <= set(DEFECTS):
            raise ValueError(f"defects must be among {DEFECTS}")


class SimulatedEvent(NamedTuple):
    """One record to send at `emit_ms` (epoch ms); `defect` names what makes it invalid."""

    topic: str
    key: bytes
    value: bytes
    emit_ms: int
    kind: Kind = "valid"
    defect: str = ""

    @property
    def emit_at(self) -> datetime:
        return to_datetime(self.emit_ms)


def to_ms(when: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    if when.tzinfo is None:
        raise ValueError("naive datetime")
    return (when - _EPOCH) // timedelta(milliseconds=1)


def to_datetime(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def rfc3339(when: datetime) -> str:
    """`2026-11-22T10:00:00.250Z`."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def generate(config: SimConfig, start: datetime, end: datetime | None) -> Iterator[SimulatedEvent]:
    """Events of tickets arriving from `start`, in send order, up to `end` (None: forever)."""
    return Simulator(config, start).events(None if end is None else to_ms(end))


class Simulator:
    """Schedules each arriving ticket's whole life on a heap and pops it in time order."""

    def __init__(self, config: SimConfig, start: datetime) -> None:
        self.config = config
        self.start_ms = to_ms(start)
        # The start is part of the seed: a restarted simulator never repeats ids.
        self.rng = random.Random(f"{config.seed}:{self.start_ms}")
        self.tz = ZoneInfo(config.timezone)
        self._heap: list[tuple[int, int, SimulatedEvent]] = []
        self._seq = itertools.count()
        self._prefix = f"{self.rng.getrandbits(24):06x}"
        self._tickets = 0
        self._queues = Mix({queue: 1 / (i + 1) for i, queue in enumerate(config.queues)})
        spent = 1 - config.duplicate_share - config.invalid_share
        self._duplicate_p = config.duplicate_share / spent
        self._invalid_p = config.invalid_share / spent
        self._defects = {k: [d for d in config.defects if _applies(d, k)] for k in TOPICS}
        # The topics this run writes to (a type mismatch picks another of them).
        self._topics = [
            topic
            for kind, topic in TOPICS.items()
            if config.contact_rate > 0 or kind.startswith(("ticket.", "survey."))
        ]
        self._floor = (
            Floor(
                self.rng,
                self.start_ms,
                self.tz,
                config.contact_rate,
                config.floor_agents,
                config.queues,
                self.diurnal,
                self._prefix,
            )
            if config.contact_rate > 0
            else None
        )

    def events(self, end_ms: int | None) -> Iterator[SimulatedEvent]:
        for arrival_ms, load in self._arrivals():
            if end_ms is not None and arrival_ms >= end_ms:
                break
            self._run_floor(arrival_ms + 1)
            while self._heap and self._heap[0][0] <= arrival_ms:
                yield heapq.heappop(self._heap)[2]
            self._open_ticket(arrival_ms, load)
        if end_ms is not None:
            self._run_floor(end_ms)
        while self._heap and (end_ms is None or self._heap[0][0] < end_ms):
            yield heapq.heappop(self._heap)[2]

    def _run_floor(self, until_ms: int) -> None:
        """Schedule what the contact floor emits before `until_ms`."""
        if self._floor is not None:
            for at, kind, entity, fields in self._floor.advance(until_ms):
                self._emit(kind, entity, at, fields)

    def diurnal(self, ms: int) -> float:
        """Relative arrival rate 0..1 at this instant, in the configured time zone."""
        local = to_datetime(ms).astimezone(self.tz)
        hour = local.hour + local.minute / 60
        low = DIURNAL[int(hour)]
        high = DIURNAL[(int(hour) + 1) % 24]
        level = low + (high - low) * (hour - int(hour))
        return level * (WEEKEND_FACTOR if local.weekday() >= 5 else 1.0)

    def _arrivals(self) -> Iterator[tuple[int, float]]:
        """Poisson arrivals thinned by the diurnal curve: (epoch ms, relative load)."""
        per_second = self.config.rate / 3600
        t = self.start_ms / 1000
        while True:
            t += self.rng.expovariate(per_second)
            level = self.diurnal(int(t * 1000))
            if self.rng.random() < level:
                yield int(t * 1000), level

    def _open_ticket(self, at: int, load: float) -> None:
        rng, config = self.rng, self.config
        self._tickets += 1
        ticket = f"tk-{self._prefix}-{self._tickets:07d}"
        priority = PRIORITIES.draw(rng)
        opened = {
            "queue": self._queues.draw(rng),
            "channel": CHANNELS.draw(rng),
            "priority": priority,
        }
        self._emit("ticket.opened", ticket, at, opened)
        if rng.random() < CONFLICT_SHARE:
            again = at if rng.random() < 0.5 else at + rng.randint(1_000, 300_000)
            conflicting = {**opened, "priority": rng.choice(PRIORITIES.values)}
            self._emit("ticket.opened", ticket, again, conflicting)
        if rng.random() < ABANDON_SHARE:
            return
        utilisation = config.rate * load / (config.agents * TICKETS_PER_AGENT_HOUR)
        slowdown = 1 + 4 * max(0.0, utilisation - 0.8)
        replied = at + self._delay(FIRST_REPLY_MEDIAN_S[priority] * slowdown)
        agent = f"agent-{rng.randrange(config.agents) + 1:03d}"
        resolved = replied + self._delay(RESOLUTION_MEDIAN_S[priority])
        if rng.random() < EVERY_REPLY_SHARE:
            last = self._replies_and_reopen(ticket, replied, resolved, priority, agent)
            if last is None:
                return
            resolved = last
        else:
            self._emit("ticket.first_reply", ticket, replied, self._agent(agent))
            self._emit("ticket.resolved", ticket, resolved, self._agent(agent))
            if rng.random() < REOPEN_SHARE:
                resolved += self._delay(REOPEN_GAP_MEDIAN_S)
                self._emit("ticket.resolved", ticket, resolved, self._agent(agent))
        for survey, response_rate in SURVEY_RESPONSE.items():
            if rng.random() < response_rate:
                answered = resolved + self._survey_delay()
                self._emit("survey.responded", ticket, answered, self._survey(survey))
                if rng.random() < CHANGED_ANSWER_SHARE:
                    answered += self._delay(3_600)
                    self._emit("survey.responded", ticket, answered, self._survey(survey))

    def _replies_and_reopen(
        self, ticket: str, replied: int, resolved: int, priority: str, agent: str
    ) -> int | None:
        """Every reply as ticket.replied, the resolve, maybe a reopen with its own reply
        and a second resolve. Returns the last resolve (None: left reopened)."""
        rng = self.rng
        self._emit("ticket.replied", ticket, replied, self._agent(agent))
        while rng.random() < FURTHER_REPLY_P:
            later = replied + int(rng.random() * (resolved - replied))
            self._emit("ticket.replied", ticket, later, self._agent(agent))
        self._emit("ticket.resolved", ticket, resolved, self._agent(agent))
        if rng.random() >= REOPEN_SHARE:
            return resolved
        reopened = resolved + self._delay(REOPEN_GAP_MEDIAN_S)
        self._emit("ticket.reopened", ticket, reopened, {})
        if rng.random() < STILL_REOPENED_SHARE:
            return None
        answer = reopened + self._delay(FIRST_REPLY_MEDIAN_S[priority])
        self._emit("ticket.replied", ticket, answer, self._agent(agent))
        resolved = answer + self._delay(RESOLUTION_MEDIAN_S[priority])
        self._emit("ticket.resolved", ticket, resolved, self._agent(agent))
        return resolved

    def _delay(self, median_s: float) -> int:
        return int(self.rng.lognormvariate(math.log(median_s), DELAY_SIGMA) * 1000)

    def _survey_delay(self) -> int:
        """Minutes after resolution (chat pop-up) or about a day later (e-mail)."""
        if self.rng.random() < 0.65:
            return int(self.rng.lognormvariate(math.log(1_200), 1.0) * 1000)
        return int(self.rng.lognormvariate(math.log(93_600), 0.6) * 1000)

    def _agent(self, agent: str) -> dict[str, Any]:
        """The optional agent_id: usually the ticket's agent, sometimes a colleague or none."""
        roll = self.rng.random()
        if roll < 0.05:
            return {}
        if roll < 0.20:
            return {"agent_id": f"agent-{self.rng.randrange(self.config.agents) + 1:03d}"}
        return {"agent_id": agent}

    def _survey(self, survey: str) -> dict[str, Any]:
        return {"survey": survey, "score": SCORES[survey].draw(self.rng)}

    def _event_id(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"

    def _timestamp(self, ms: int) -> str | int:
        """Mostly RFC 3339 with Z and milliseconds; sometimes epoch ms or a local offset."""
        roll = self.rng.random()
        if roll < EPOCH_MS_SHARE:
            return ms
        if roll < EPOCH_MS_SHARE + LOCAL_OFFSET_SHARE:
            return to_datetime(ms).astimezone(self.tz).isoformat(timespec="milliseconds")
        seconds, millis = divmod(ms, 1000)
        return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"

    def _push(self, emit_ms: int, event: SimulatedEvent) -> None:
        heapq.heappush(self._heap, (emit_ms, next(self._seq), event))

    def _emit(self, kind: str, entity: str, at: int, fields: dict[str, Any]) -> None:
        """Schedule one valid event, and maybe a re-sent copy and an invalid sibling."""
        rng = self.rng
        body = {
            "event_id": self._event_id(),
            "type": kind,
            _id_field(kind): entity,
            "occurred_at": self._timestamp(at),
            **fields,
        }
        key = entity.encode()
        emit_ms = at + (self._delay(30) if rng.random() < LATE_SHARE else 0)
        event = SimulatedEvent(TOPICS[kind], key, _json(body), emit_ms)
        self._push(emit_ms, event)
        if rng.random() < self._duplicate_p:
            resend_ms = emit_ms + rng.randint(50, 120_000)
            resent = event._replace(emit_ms=resend_ms, kind="duplicate")
            self._push(resend_ms, resent)
        if rng.random() < self._invalid_p and self._defects[kind]:
            defect = rng.choice(self._defects[kind])
            topic, value = self._corrupt(defect, body, at)
            self._push(emit_ms, SimulatedEvent(topic, key, value, emit_ms, "invalid", defect))

    def _corrupt(self, defect: str, body: dict[str, Any], at: int) -> tuple[str, bytes]:
        """A broken sibling of `body` (fresh event_id): the (topic, value) to send."""
        rng = self.rng
        bad = {**body, "event_id": self._event_id()}
        kind = bad["type"]
        topic = TOPICS[kind]
        match defect:
            case "bad_json":
                return topic, _json(bad)[: -rng.randint(1, 12)]
            case "not_object":
                return topic, _json([bad])
            case "missing_field":
                id_field = _id_field(kind)
                del bad[rng.choice(("event_id", "type", id_field, "occurred_at", *REQUIRED[kind]))]
            case "mistyped_field":
                bad[_id_field(kind)] = self._tickets
            case "wrong_enum":
                field, value = rng.choice(WRONG_ENUMS[kind])
                bad[field] = value
            case "naive_timestamp":
                bad["occurred_at"] = to_datetime(at).isoformat(timespec="milliseconds")[:-6]
            case "score_out_of_range":
                bad["score"] = rng.choice((0, 6, 11, -1) if bad["survey"] == "csat" else (11, -1))
            case "too_long":
                bad["event_id"] = "e" * 129
            case "type_mismatch":
                topic = rng.choice([t for t in self._topics if t != topic])
        return topic, _json(bad)


def _json(value: Any) -> bytes:
    """JSON bytes, right-sized: orjson.dumps keeps a 4 KiB buffer per result (9x our memory)."""
    return bytes(memoryview(orjson.dumps(value)))


def _id_field(kind: str) -> str:
    return ENTITY_ID_FIELD[kind.partition(".")[0]]


def _applies(defect: str, kind: str) -> bool:
    if defect == "wrong_enum":
        return kind in WRONG_ENUMS
    return defect != "score_out_of_range" or kind == "survey.responded"
