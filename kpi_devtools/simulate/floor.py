"""A seeded contact-centre floor: calls and chats through queues, agents on shifts.

A discrete-event simulation: contacts arrive on the diurnal curve and wait in one FIFO
line; a free agent takes the oldest; a caller whose patience runs out abandons (or hangs
up in the queue). Agents work 8-hour shifts with two short breaks and lunch, talk for a
channel-specific handle time and do after-contact work. At the peak there are fewer
free agents than arrivals, so waits grow and abandons rise, as on a real floor.

`Floor.advance(until)` yields (occurred_at ms, type, entity id, fields) in time order.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

CONTACT_CHANNELS: Final = {"phone": 60.0, "chat": 35.0, "video": 5.0}
TALK_MEDIAN_S: Final = {"phone": 240.0, "chat": 420.0, "video": 360.0}
AFTER_WORK_MEDIAN_S: Final = 40.0
PATIENCE_MEAN_S: Final = {"phone": 100.0, "chat": 240.0, "video": 120.0}
ABANDON_EVENT_SHARE: Final = 0.7  # else the caller just hangs up: contact.ended, no answer
WRAP_EVENT_SHARE: Final = 0.9  # some desktops send no contact.wrapped
TEAMS: Final = ("front-line", "billing", "technical")
# Local shift start hours, cycled over the agents: most cover the day, two the night.
SHIFT_STARTS_H: Final = (6, 7, 7, 8, 8, 8, 9, 9, 10, 10, 11, 12, 13, 14, 16, 22)
SHIFT_H: Final = 8
# (minutes into the shift, minutes away): two breaks and lunch.
BREAKS: Final = ((120, 15), (240, 30), (375, 15))

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
Emitted = tuple[int, str, str, dict[str, Any]]


@dataclass
class Agent:
    """One agent's floor state."""

    agent_id: str
    team: str
    shift_start_h: int
    status: str = "offline"
    on_shift: bool = False
    break_due: list[tuple[int, int]] = field(default_factory=list)  # (at ms, minutes)


@dataclass
class Waiting:
    """A contact in the queue."""

    contact_id: str
    channel: str
    queued_at: int


class Floor:
    """The queue and the agents; `advance` runs the simulation up to a time."""

    def __init__(
        self,
        rng: random.Random,
        start_ms: int,
        tz: ZoneInfo,
        rate_per_hour: float,
        agents: int,
        queues: tuple[str, ...],
        diurnal: Callable[[int], float],
        prefix: str,
    ) -> None:
        self.rng, self.tz, self.diurnal = rng, tz, diurnal
        self.rate_per_s = rate_per_hour / 3600
        self.queues = queues
        self.prefix = prefix
        self.now = start_ms
        self._heap: list[tuple[int, int, str, Any]] = []
        self._seq = itertools.count()
        self._out: list[Emitted] = []
        self._line: deque[Waiting] = deque()
        self._contacts = 0
        self.agents = [
            Agent(
                f"agent-{n + 1:03d}",
                TEAMS[n % len(TEAMS)],
                SHIFT_STARTS_H[n % len(SHIFT_STARTS_H)],
            )
            for n in range(agents)
        ]
        for agent in self.agents:
            self._schedule_shift(agent, start_ms - SHIFT_H * 3_600_000)
        self._at(start_ms + self._gap(), "arrival", None)

    def advance(self, until_ms: int) -> Iterator[Emitted]:
        """Run every floor event before `until_ms`; yield what the floor emits, in order."""
        while self._heap and self._heap[0][0] < until_ms:
            at, _, action, subject = heapq.heappop(self._heap)
            self.now = at
            getattr(self, f"_{action}")(subject)
            yield from self._out
            self._out.clear()

    # Scheduling -------------------------------------------------------------------------

    def _at(self, at: int, action: str, subject: Any) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), action, subject))

    def _gap(self) -> int:
        """Time to the next arrival: Poisson at the peak rate, thinned by the curve later."""
        return max(1, int(self.rng.expovariate(self.rate_per_s) * 1000))

    def _lognormal_ms(self, median_s: float, sigma: float = 0.6) -> int:
        return int(self.rng.lognormvariate(math.log(median_s), sigma) * 1000)

    def _emit(self, kind: str, entity: str, at: int, fields: dict[str, Any]) -> None:
        self._out.append((at, kind, entity, fields))

    def _status(self, agent: Agent, status: str) -> None:
        agent.status = status
        self._emit("agent.status", agent.agent_id, self.now, {"status": status, "team": agent.team})

    def _schedule_shift(self, agent: Agent, after_ms: int) -> None:
        """The agent's next shift start at or after `after_ms` (local time), with breaks."""
        local = _local(after_ms, self.tz)
        start = local.replace(hour=agent.shift_start_h, minute=0, second=0, microsecond=0)
        if start < local:
            start += timedelta(days=1)
        start_ms = max(_ms(start), self.now)
        self._at(start_ms, "shift_start", agent)
        self._at(_ms(start + timedelta(hours=SHIFT_H)), "shift_end", agent)
        agent.break_due = [(_ms(start + timedelta(minutes=m)), length) for m, length in BREAKS]

    # Floor events -----------------------------------------------------------------------

    def _arrival(self, _: None) -> None:
        self._at(self.now + self._gap(), "arrival", None)
        if self.rng.random() >= self.diurnal(self.now):
            return
        self._contacts += 1
        contact_id = f"ct-{self.prefix}-{self._contacts:07d}"
        channel = _draw(self.rng, CONTACT_CHANNELS)
        queue = self.queues[min(int(self.rng.expovariate(1.0)), len(self.queues) - 1)]
        self._emit(
            "contact.queued",
            contact_id,
            self.now,
            {"queue": queue, "channel": channel, "customer_id": f"cu-{self.rng.randrange(10**6)}"},
        )
        waiting = Waiting(contact_id, channel, self.now)
        patience = max(1, int(self.rng.expovariate(1 / PATIENCE_MEAN_S[channel]) * 1000))
        self._at(self.now + patience, "patience", waiting)
        self._line.append(waiting)
        self._dispatch()

    def _patience(self, waiting: Waiting) -> None:
        if waiting not in self._line:  # answered meanwhile
            return
        self._line.remove(waiting)
        gone = "contact.abandoned" if self.rng.random() < ABANDON_EVENT_SHARE else "contact.ended"
        self._emit(gone, waiting.contact_id, self.now, {})

    def _dispatch(self) -> None:
        """Free agents take the oldest waiting contacts."""
        for agent in self.agents:
            if not self._line:
                return
            if agent.status == "available":
                self._answer(agent, self._line.popleft())

    def _answer(self, agent: Agent, waiting: Waiting) -> None:
        self._emit("contact.answered", waiting.contact_id, self.now, {"agent_id": agent.agent_id})
        self._status(agent, "busy")
        talk = self._lognormal_ms(TALK_MEDIAN_S[waiting.channel])
        self._at(self.now + talk, "end", (agent, waiting.contact_id))

    def _end(self, subject: tuple[Agent, str]) -> None:
        agent, contact_id = subject
        self._emit("contact.ended", contact_id, self.now, {})
        self._status(agent, "after_contact_work")
        self._at(self.now + self._lognormal_ms(AFTER_WORK_MEDIAN_S), "wrap", (agent, contact_id))

    def _wrap(self, subject: tuple[Agent, str]) -> None:
        agent, contact_id = subject
        if self.rng.random() < WRAP_EVENT_SHARE:
            self._emit("contact.wrapped", contact_id, self.now, {})
        self._ready(agent)

    def _ready(self, agent: Agent) -> None:
        """After work or a break: off shift, on a due break, or available for the queue."""
        if not agent.on_shift:
            self._status(agent, "offline")
            return
        if agent.break_due and agent.break_due[0][0] <= self.now:
            _, minutes = agent.break_due.pop(0)
            self._status(agent, "away")
            self._at(self.now + minutes * 60_000, "back", agent)
            return
        self._status(agent, "available")
        self._dispatch()

    def _back(self, agent: Agent) -> None:
        if agent.on_shift:  # else the shift end already signed the agent off
            self._ready(agent)

    def _break(self, agent: Agent) -> None:
        if agent.status == "available":
            self._ready(agent)

    def _shift_start(self, agent: Agent) -> None:
        agent.on_shift = True
        agent.break_due = [(at, m) for at, m in agent.break_due if at >= self.now]
        for at, _ in agent.break_due:
            self._at(at, "break", agent)
        self._ready(agent)

    def _shift_end(self, agent: Agent) -> None:
        agent.on_shift = False
        if agent.status in ("available", "away"):
            self._status(agent, "offline")
        self._schedule_shift(agent, self.now + 3_600_000)


def _draw(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _local(ms: int, tz: ZoneInfo) -> datetime:
    return (EPOCH + timedelta(milliseconds=ms)).astimezone(tz)


def _ms(when: datetime) -> int:
    return (when - EPOCH) // timedelta(milliseconds=1)
