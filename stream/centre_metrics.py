"""Prometheus exposition of the contact centre (contract sections 7 and 8).

KPI gauges come from the merged (system-wide) snapshot; additive components, live
contacts and agents from the snapshot of the partitions this worker owns. The per-agent
series (`KPI_AGENT_METRICS`, ~100 per agent) are written as text directly like the ticket
families (`stream.metrics`); the rest are a few hundred prometheus_client samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final

from prometheus_client.core import GaugeMetricFamily, Metric

from stream.kpi.centre import (
    CONTACT_KPI_NAMES,
    CentreSnapshot,
    Slot,
    contact_kpis,
    keep,
    occupancy,
    staffed_cost,
)
from stream.kpi.contrib import Layout
from stream.kpi.gauges import total
from stream.kpi.settings import KpiConfig
from stream.kpi.snapshot import Snapshot
from stream.kpi.types import AGENT_STATUSES, OTHER_QUEUE
from stream.metrics import COUNTS, SUMS, header, labels, nps_family

CONTACT_KPI_HELP: Final = {
    "contact_service_level_ratio": "Answered within the threshold / (answered + abandoned)",
    "contact_abandonment_ratio": "Abandoned / (answered + abandoned), short abandons excluded",
    "contact_answer_time_average_seconds": "Mean wait of answered contacts (ASA)",
    "contact_handle_time_average_seconds": "Mean handle time of handled contacts (AHT)",
}
# (name without the cs_ prefix, slot, divisor, help) of every additive contact component.
CONTACT_COMPONENTS: Final = (
    ("contacts_queued", Slot.QUEUED, 1, "Contacts whose queued_at is in the window"),
    ("contacts_answered", Slot.ANSWERED, 1, "Contacts answered in the window"),
    (
        "contacts_answered_within_threshold",
        Slot.WITHIN,
        1,
        "Contacts answered within the channel's service-level threshold",
    ),
    ("contact_answer_wait_seconds_sum", Slot.ANSWER_WAIT_MS, 1000, "Sum of answered waits"),
    ("contacts_abandoned", Slot.ABANDONED, 1, "Contacts abandoned (short abandons excluded)"),
    ("contacts_abandoned_short", Slot.ABANDONED_SHORT, 1, "Short abandons"),
    ("contact_abandon_wait_seconds_sum", Slot.ABANDON_WAIT_MS, 1000, "Sum of abandoned waits"),
    ("contacts_handled", Slot.HANDLED, 1, "Answered contacts that ended in the window"),
    ("contact_talk_seconds_sum", Slot.TALK_MS, 1000, "Sum of talk times"),
    ("contact_after_work_seconds_sum", Slot.AFTER_WORK_MS, 1000, "Sum of after-contact work"),
    ("contact_handle_seconds_sum", Slot.HANDLE_MS, 1000, "Sum of handle times"),
)


class CentreCollector:
    """A prometheus_client collector of the contact-centre families at one instant.

    `system` is merged over every partition (the KPI gauges, left out unless `complete`),
    `local` covers this worker's partitions (components, live contacts and agents; the
    per-agent series are `by_agent_exposition`).
    """

    def __init__(
        self, system: Snapshot, local: Snapshot, config: KpiConfig, complete: bool = True
    ) -> None:
        self.system, self.local = system, local
        self.config, self.complete = config, complete

    def collect(self) -> Iterator[Metric]:
        if self.complete:  # system-wide gauges only over every partition
            yield from system_families(self.system, self.config)
        yield from local_families(self.local, self.config)


def system_families(system: Snapshot, config: KpiConfig) -> Iterator[Metric]:
    """The system-wide KPI gauges; ticket resolutions count in the cost per contact."""
    resolutions = {
        window: sum(cell[Layout.RES_COUNT] for cell in cells.values())
        for window, cells in system.windows.items()
    }
    yield from centre_kpi_gauges(
        system.centre.capped(config.max_queues, config.max_agents),
        resolutions,
        config.cost_per_hour,
        config.max_queues,
    )


def local_families(local: Snapshot, config: KpiConfig) -> Iterator[Metric]:
    """Additive components, live contacts and agents of the partitions in `local`."""
    yield from centre_components(
        local.centre.capped(config.max_queues, config.max_agents), config.max_queues
    )


def centre_kpi_gauges(
    snap: CentreSnapshot,
    resolutions: Mapping[str, int],
    cost_per_hour: Mapping[str, float] | None,
    max_teams: int,
) -> Iterator[Metric]:
    """System-wide contact KPIs, occupancy and cost; `resolutions` per window for cost/contact."""
    overall = {
        n: GaugeMetricFamily(f"cs_{n}", CONTACT_KPI_HELP[n], labels=["window"])
        for n in CONTACT_KPI_NAMES
    }
    per_queue = {
        n: GaugeMetricFamily(
            f"cs_queue_{n}", f"{CONTACT_KPI_HELP[n]}, per queue", labels=["window", "queue"]
        )
        for n in CONTACT_KPI_NAMES
    }
    for window, cells in snap.contacts.items():
        for name, value in contact_kpis(_sum(cells.values())).items():
            if value is not None:
                overall[name].add_metric([window], value)
        by_queue: dict[str, list[list[int]]] = {}
        for (queue, _), cell in cells.items():
            by_queue.setdefault(queue, []).append(cell)
        for queue in sorted(by_queue):
            for name, value in contact_kpis(_sum(by_queue[queue])).items():
                if value is not None:
                    per_queue[name].add_metric([window, queue], value)
    yield from overall.values()
    yield from per_queue.values()
    team_of = team_labels(snap, max_teams)
    occ = GaugeMetricFamily(
        "cs_agent_occupancy_ratio",
        "(busy + after-contact work) / (available + busy + after-contact work) time",
        labels=["window"],
    )
    team_occ = GaugeMetricFamily(
        "cs_team_agent_occupancy_ratio", "Agent occupancy per team", labels=["window", "team"]
    )
    for window, times in snap.status_ms.items():
        by_status: dict[str, int] = {}
        by_team: dict[str, dict[str, int]] = {}
        for (team, status), ms in times.items():
            by_status[status] = by_status.get(status, 0) + ms
            of_team = by_team.setdefault(team_of(team), {})
            of_team[status] = of_team.get(status, 0) + ms
        value = occupancy(by_status)
        if value is not None:
            occ.add_metric([window], value)
        for team in sorted(by_team):
            value = occupancy(by_team[team])
            if value is not None:
                team_occ.add_metric([window, team], value)
    yield from (occ, team_occ)
    if cost_per_hour is None:
        return
    cost = GaugeMetricFamily(
        "cs_staffed_cost", "Staffed seconds x the team's hourly cost / 3600", labels=["window"]
    )
    team_cost = GaugeMetricFamily(
        "cs_team_staffed_cost", "Staffed cost per team", labels=["window", "team"]
    )
    per_contact = GaugeMetricFamily(
        "cs_cost_per_contact",
        "Staffed cost / (handled contacts + resolved tickets)",
        labels=["window"],
    )
    for window, times in snap.status_ms.items():
        costs = staffed_cost(times, cost_per_hour)
        cost_of: dict[str, float] = {}
        for team in sorted(costs):
            cost_of[team_of(team)] = cost_of.get(team_of(team), 0.0) + costs[team]
        window_cost = sum(cost_of[t] for t in sorted(cost_of))
        cost.add_metric([window], window_cost)
        for team in sorted(cost_of):
            team_cost.add_metric([window, team], cost_of[team])
        served = _sum(snap.contacts[window].values())[Slot.HANDLED] + resolutions.get(window, 0)
        if served:
            per_contact.add_metric([window], window_cost / served)
    yield from (cost, team_cost, per_contact)


def centre_components(snap: CentreSnapshot, max_teams: int) -> Iterator[Metric]:
    """Additive contact components, live contacts and agents (this worker's partitions)."""
    families = [
        (
            GaugeMetricFamily(f"cs_{name}", doc, labels=["window", "queue", "channel"]),
            slot,
            divisor,
        )
        for name, slot, divisor, doc in CONTACT_COMPONENTS
    ]
    for window, cells in snap.contacts.items():
        for dims in sorted(cells):
            cell = cells[dims]
            for family, slot, divisor in families:
                family.add_metric([window, *dims], cell[slot] / divisor)
    yield from (family for family, _, _ in families)
    yield from _live_contacts(snap)
    yield from _agents(snap, max_teams)


def by_agent_exposition(local: Snapshot, config: KpiConfig) -> Iterator[str]:
    """`cs_by_agent_…{window,agent}` as text, a family at a time: every contact and windowed
    ticket component per agent of `local` (agents beyond `max_agents` as "other"); tickets
    opened are nobody's work, histograms are left out. `local` needs its per-agent cells."""
    snap = local.centre.capped(config.max_queues, config.max_agents)
    ticket_components = [
        (name.removeprefix("cs_"), slot, 1, doc)
        for name, doc, slot in COUNTS
        if slot != Layout.OPENED
    ] + [(name.removeprefix("cs_"), slot, 1000, doc) for name, doc, slot in SUMS]
    nps_rows = []
    for of_agents, components in (
        (snap.by_agent, CONTACT_COMPONENTS),
        (snap.tickets_by_agent, ticket_components),
    ):
        rows = [
            (labels(("window", "agent"), (window, agent)), cells[agent])
            for window, cells in of_agents.items()
            for agent in sorted(cells)
        ]
        if of_agents is snap.tickets_by_agent:
            nps_rows = rows
        for name, slot, divisor, doc in components:
            family = f"cs_by_agent_{name}"
            yield header(family, f"{doc}, per agent") + "".join(
                [f"{family}{{{lbl}}} {cell[slot] / divisor!r}\n" for lbl, cell in rows]
            )
    yield nps_family("cs_by_agent_nps_responses", "NPS responses by category, per agent", nps_rows)


def _live_contacts(snap: CentreSnapshot) -> Iterator[Metric]:
    labels = ["queue", "channel"]
    waiting = GaugeMetricFamily(
        "cs_contacts_waiting", "Contacts queued, not answered, not abandoned", labels=labels
    )
    in_progress = GaugeMetricFamily(
        "cs_contacts_in_progress", "Contacts answered, not ended", labels=labels
    )
    oldest = GaugeMetricFamily(
        "cs_contact_oldest_waiting_queued_timestamp_seconds",
        "queued_at of the contact waiting longest (take the min across workers)",
        labels=labels,
    )
    stale = GaugeMetricFamily(
        "cs_contacts_stale",
        "Contacts waiting or in progress for at least contact_stale_seconds: presumed lost",
        labels=labels,
    )
    for dims in sorted(snap.live):
        live = snap.live[dims]
        waiting.add_metric(list(dims), live.waiting)
        in_progress.add_metric(list(dims), live.in_progress)
        stale.add_metric(list(dims), live.stale)
        if live.oldest_waiting is not None:
            oldest.add_metric(list(dims), live.oldest_waiting / 1000)
    yield from (waiting, in_progress, oldest, stale)


def _agents(snap: CentreSnapshot, max_teams: int) -> Iterator[Metric]:
    team_of = team_labels(snap, max_teams)
    agents = GaugeMetricFamily(
        "cs_agents",
        "Agents with an event in the last 48 h, by current status",
        labels=["status", "team"],
    )
    counts: dict[tuple[str, str], int] = {}
    for state in snap.agents.values():
        label = (state.status, team_of(state.team))
        counts[label] = counts.get(label, 0) + 1
    teams = {team for _, team in counts} | {
        team_of(team) for times in snap.status_ms.values() for team, _ in times
    }
    for team in sorted(teams):
        for status in AGENT_STATUSES:
            agents.add_metric([status, team], counts.get((status, team), 0))
    yield agents
    seconds = GaugeMetricFamily(
        "cs_agent_status_seconds",
        "Agent time in each status inside the window (the current bucket up to now)",
        labels=["window", "team", "status"],
    )
    for window, times in snap.status_ms.items():
        by_label: dict[tuple[str, str], int] = {}
        for (team, status), ms in times.items():
            label = (team_of(team), status)
            by_label[label] = by_label.get(label, 0) + ms
        for team in sorted(teams):
            for status in AGENT_STATUSES:
                seconds.add_metric([window, team, status], by_label.get((team, status), 0) / 1000)
    yield seconds


def team_labels(snap: CentreSnapshot, max_teams: int) -> Callable[[str], str]:
    """Team label of a team name: beyond the `max_teams` with the most agent time in the
    24h window plus current agents (ties by name), teams are reported as "other"."""
    activity: dict[str, int] = {}
    for (team, _), ms in snap.status_ms["24h"].items():
        activity[team] = activity.get(team, 0) + ms
    for state in snap.agents.values():
        activity.setdefault(state.team, 0)
    kept = keep(activity, max_teams, "default")
    return lambda team: team if kept is None or team in kept else OTHER_QUEUE


def _sum(cells: Iterable[list[int]]) -> list[int]:
    return total(cells, Slot.SIZE)
