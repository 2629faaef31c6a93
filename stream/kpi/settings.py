"""The KPI settings (the policy file's keys, contract section 10) with their defaults.

Reading them from the TOML file and the environment is stream/config.py's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from stream.kpi.calendar import Calendar
from stream.kpi.sla import SlaPolicy

# The KPI levels of the whole product (docs/decisions/thresholds.md): the wallboard's
# colours, the Grafana dashboard's, the alerts (below amber) and the SLO objectives (green).
DEFAULT_THRESHOLDS: Final[dict[str, dict[str, Any]]] = {
    "first_response_time_average_seconds": {
        "direction": "lower_is_better",
        "green": 900,
        "amber": 3600,
    },
    "resolution_time_average_seconds": {
        "direction": "lower_is_better",
        "green": 14400,
        "amber": 86400,
    },
    "first_response_sla_attainment_ratio": {
        "direction": "higher_is_better",
        "green": 0.9,
        "amber": 0.8,
    },
    "resolution_sla_attainment_ratio": {
        "direction": "higher_is_better",
        "green": 0.9,
        "amber": 0.8,
    },
    "csat_ratio": {"direction": "higher_is_better", "green": 0.85, "amber": 0.8},
    "nps_score": {"direction": "higher_is_better", "green": 30, "amber": 20},
    "contact_service_level_ratio": {"direction": "higher_is_better", "green": 0.9, "amber": 0.8},
    "contact_abandonment_ratio": {"direction": "lower_is_better", "green": 0.05, "amber": 0.1},
    "contact_longest_wait_seconds": {"direction": "lower_is_better", "green": 60, "amber": 120},
    "occupancy_ratio": {"direction": "lower_is_better", "green": 0.85, "amber": 0.9},
}
DEFAULT_CONTACT_SERVICE_LEVEL_S: Final = MappingProxyType(
    {"phone": 20, "video": 20, "chat": 60, "other": 60}
)


@dataclass(frozen=True)
class KpiConfig:
    """The KPI policy file (contract section 10's list): every key with its default.

    `sla` holds the top-level targets, the at-risk share and the `[[policies]]` per queue
    with their calendars (`sla.for_queue(queue)` picks a ticket's policy). Durations are
    kept in the file's unit (seconds, days); the `_ms` properties convert.
    """

    sla: SlaPolicy = field(default_factory=SlaPolicy)
    max_queues: int = 100
    ticket_retention_days: float = 35
    thresholds: dict[str, dict[str, Any]] = field(default_factory=lambda: DEFAULT_THRESHOLDS)
    max_agents: int = 200
    short_abandon_seconds: float = 5
    contact_stale_seconds: float = 14400
    agent_stale_seconds: float = 43200
    max_events_per_entity: int = 10_000
    # Service-level threshold per contact channel (phone, video, chat, other), seconds.
    contact_service_level_seconds: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_CONTACT_SERVICE_LEVEL_S)
    )
    # Hourly cost per team ("default" for teams not listed); None: no cost gauges at all.
    cost_per_hour: Mapping[str, float] | None = None
    # Every `[calendars.NAME]`, also those no policy uses.
    calendars: Mapping[str, Calendar] = field(default_factory=dict)
    # `[wallboard] min_answers`: a KPI resting on fewer answers is shown greyed.
    min_answers: int = 20

    @property
    def retention_ms(self) -> int:
        """Ticket (and contact) retention in milliseconds."""
        return round(self.ticket_retention_days * 86_400_000)

    @property
    def short_abandon_ms(self) -> int:
        """A wait below this is a short abandon (milliseconds)."""
        return round(self.short_abandon_seconds * 1000)

    @property
    def contact_stale_ms(self) -> int:
        """A waiting or in-progress contact this old is presumed lost (milliseconds)."""
        return round(self.contact_stale_seconds * 1000)

    @property
    def agent_stale_ms(self) -> int:
        """An agent whose latest status event is this old counts as offline (milliseconds)."""
        return round(self.agent_stale_seconds * 1000)

    def contact_service_level_ms(self, channel: str) -> int:
        """The service-level threshold of a contact channel, in milliseconds."""
        return round(self.contact_service_level_seconds[channel] * 1000)
