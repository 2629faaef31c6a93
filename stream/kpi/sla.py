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

    def first_response_breached(self, priority: str, frt_ms: int) -> bool:
        """A first response breaches when FRT is strictly above its target."""
        return frt_ms > self.first_response_ms[priority]

    def resolution_breached(self, priority: str, resolution_ms: int) -> bool:
        """A resolution breaches when resolution time is strictly above its target."""
        return resolution_ms > self.resolution_ms[priority]

    def awaiting_thresholds(self, priority: str, now_ms: int) -> tuple[int, int]:
        """Opened-at cut-offs (breached_before, at_risk_from) for a ticket awaiting reply.

        A ticket opened before `breached_before` has waited longer than its target; one
        opened at or before `at_risk_from` has used at least (1 - at_risk_fraction) of it.
        """
        target = self.first_response_ms[priority]
        at_risk_after = round(target * (1 - self.at_risk_fraction))
        return now_ms - target, now_ms - at_risk_after

    def awaiting_state(self, priority: str, opened_at: int, now_ms: int) -> SlaState:
        """SLA state at `now_ms` of a ticket opened at `opened_at` and still unanswered."""
        breached_before, at_risk_from = self.awaiting_thresholds(priority, now_ms)
        if opened_at < breached_before:
            return "breached"
        if opened_at <= at_risk_from:
            return "at_risk"
        return "ok"


@dataclass(frozen=True)
class QueuePolicy:
    """One `[[policies]]` entry: the queues it covers (None: the default entry) and its SLA."""

    queues: frozenset[str] | None
    sla: SlaPolicy
