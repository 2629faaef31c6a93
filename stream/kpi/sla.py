"""SLA policies (contract sections 3 and 10): targets per priority, per queue, in calendar
time or in the business time of a calendar; breaches and the live SLA state."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from stream.kpi.calendar import Calendar

SlaState = Literal["ok", "at_risk", "breached"]
SLA_STATES: Final[tuple[SlaState, ...]] = ("ok", "at_risk", "breached")

DEFAULT_FIRST_RESPONSE_S: Final = MappingProxyType(
    {"urgent": 900, "high": 3600, "normal": 14400, "low": 86400}
)
DEFAULT_RESOLUTION_S: Final = MappingProxyType(
    {"urgent": 14400, "high": 86400, "normal": 259200, "low": 604800}
)


@dataclass(frozen=True)
class SlaPolicy:
    """Targets in milliseconds per priority, the at-risk share of a target, the calendar
    whose business time the targets count (None: calendar time, 24/7).

    The policy of the file's top level also holds the `[[policies]]` per queue:
    `for_queue` gives the one a ticket of that queue is measured by.
    """

    first_response_ms: dict[str, int] = field(
        default_factory=lambda: {p: s * 1000 for p, s in DEFAULT_FIRST_RESPONSE_S.items()}
    )
    resolution_ms: dict[str, int] = field(
        default_factory=lambda: {p: s * 1000 for p, s in DEFAULT_RESOLUTION_S.items()}
    )
    at_risk_fraction: float = 0.25
    calendar: Calendar | None = None
    policies: tuple[QueuePolicy, ...] = ()
    _by_queue: dict[str, SlaPolicy] = field(init=False, compare=False, repr=False)
    _fallback: SlaPolicy = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        by_queue: dict[str, SlaPolicy] = {}
        fallback = self
        for entry in reversed(self.policies):  # the first entry naming a queue wins
            if entry.queues is None:
                fallback = entry.sla
            else:
                by_queue.update(dict.fromkeys(entry.queues, entry.sla))
        object.__setattr__(self, "_by_queue", by_queue)
        object.__setattr__(self, "_fallback", fallback)

    def for_queue(self, queue: str) -> SlaPolicy:
        """The policy of a ticket in `queue`: the first `[[policies]]` entry naming it, else
        the first entry without `queues`, else this (top-level) policy."""
        return self._by_queue.get(queue, self._fallback)

    def every_policy(self) -> tuple[SlaPolicy, ...]:
        """This policy and every per-queue one (for histogram bounds)."""
        return (self, *(entry.sla for entry in self.policies))

    def elapsed_ms(self, start_ms: int, end_ms: int) -> int:
        """SLA time from `start_ms` to `end_ms`: business time under a calendar, else
        calendar time (0 when the end is not after the start)."""
        if self.calendar is None:
            return max(0, end_ms - start_ms)
        return self.calendar.business_ms(start_ms, end_ms)

    def clock(self, at_ms: int) -> int:
        """The SLA clock at `at_ms`: SLA time between two instants is a clock difference."""
        return at_ms if self.calendar is None else self.calendar.clock(at_ms)

    def first_response_breached(self, priority: str, sla_ms: int) -> bool:
        """A first response breaches when its SLA time is strictly above its target."""
        return sla_ms > self.first_response_ms[priority]

    def resolution_breached(self, priority: str, sla_ms: int) -> bool:
        """A resolution breaches when its SLA time is strictly above its target."""
        return sla_ms > self.resolution_ms[priority]

    def awaiting_thresholds(self, priority: str, now_ms: int) -> tuple[int, int]:
        """SLA-clock cut-offs (breached_before, at_risk_from) for tickets awaiting a reply.

        A ticket whose SLA clock at opening is before `breached_before` has used more than
        its target by `now_ms`; one at or before `at_risk_from` has used at least
        (1 - at_risk_fraction) of it. Clocks of waiting tickets are computed once, so
        this costs one clock reading per label set at scrape time.
        """
        target = self.first_response_ms[priority]
        at_risk_after = round(target * (1 - self.at_risk_fraction))
        now_clock = self.clock(now_ms)
        return now_clock - target, now_clock - at_risk_after

    def awaiting_state(self, priority: str, opened_at: int, now_ms: int) -> SlaState:
        """SLA state at `now_ms` of a ticket opened at `opened_at` and still unanswered."""
        breached_before, at_risk_from = self.awaiting_thresholds(priority, now_ms)
        opened_clock = self.clock(opened_at)
        if opened_clock < breached_before:
            return "breached"
        if opened_clock <= at_risk_from:
            return "at_risk"
        return "ok"


@dataclass(frozen=True)
class QueuePolicy:
    """One `[[policies]]` entry: the queues it covers (None: the default entry) and its SLA."""

    queues: frozenset[str] | None
    sla: SlaPolicy
