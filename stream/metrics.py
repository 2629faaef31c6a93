"""Prometheus exposition: KPI gauges, additive components and live SLA gauges from
snapshots, and the worker's pipeline health; the collectors that serve them.

Everything is built at scrape time from snapshots, so a revoked partition disappears
from the next scrape by itself and replays can never overcount.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from stream.events import REASONS
from stream.kpi.contrib import Layout
from stream.kpi.gauges import KPI_NAMES, kpis, total
from stream.kpi.sla import SLA_STATES
from stream.kpi.snapshot import Snapshot
from stream.kpi.types import NPS_CATEGORIES
from stream.processor import REASONS as PROCESSOR_REASONS

DIMS: Final = ("queue", "channel", "priority")
WINDOW_DIMS: Final = ("window", *DIMS)

KPI_HELP: Final[dict[str, str]] = {
    "first_response_time_average_seconds": "Mean first response time",
    "first_response_sla_attainment_ratio": "Share of first responses within their SLA target",
    "resolution_time_average_seconds": "Mean resolution time",
    "resolution_sla_attainment_ratio": "Share of resolutions within their SLA target",
    "csat_ratio": "Satisfied (score >= 4) share of CSAT responses",
    "nps_score": "Net Promoter Score: (promoters - detractors) / responses x 100",
}


def le_label(ms: int) -> str:
    """Histogram bound in seconds as Prometheus writes it: "60", "0.5"."""
    return str(ms // 1000) if ms % 1000 == 0 else repr(ms / 1000)


def kpi_gauges(snapshot: Snapshot, layout: Layout) -> Iterator[Metric]:
    """System-wide KPI gauges (`cs_*` per window, `cs_queue_*` per window and queue)."""
    overall = {n: GaugeMetricFamily(f"cs_{n}", KPI_HELP[n], labels=["window"]) for n in KPI_NAMES}
    per_queue = {
        n: GaugeMetricFamily(
            f"cs_queue_{n}", f"{KPI_HELP[n]}, per queue", labels=["window", "queue"]
        )
        for n in KPI_NAMES
    }
    for window, cells in snapshot.windows.items():
        for name, value in kpis(total(cells.values(), layout.size)).items():
            if value is not None:
                overall[name].add_metric([window], value)
        by_queue: dict[str, list[list[int]]] = {}
        for (queue, _, _), cell in cells.items():
            by_queue.setdefault(queue, []).append(cell)
        for queue in sorted(by_queue):
            for name, value in kpis(total(by_queue[queue], layout.size)).items():
                if value is not None:
                    per_queue[name].add_metric([window, queue], value)
    yield from overall.values()
    yield from per_queue.values()


def components(snapshot: Snapshot, layout: Layout) -> Iterator[Metric]:
    """Additive components of the partitions in `snapshot` (sum them across workers)."""

    def family(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=[*WINDOW_DIMS, *extra])

    opened = family("cs_tickets_opened", "Tickets whose opened_at falls in the window")
    frt_n = family("cs_first_responses", "First responses in the window")
    frt_sum = family("cs_first_response_seconds_sum", "Sum of first response times")
    frt_hist = family("cs_first_response_seconds_bucket", "First responses with FRT <= le", ("le",))
    frt_breaches = family("cs_first_response_sla_breaches", "First responses over target")
    res_n = family("cs_resolutions", "Resolutions in the window")
    res_sum = family("cs_resolution_seconds_sum", "Sum of resolution times")
    res_hist = family("cs_resolution_seconds_bucket", "Resolutions with time <= le", ("le",))
    res_breaches = family("cs_resolution_sla_breaches", "Resolutions over target")
    csat_n = family("cs_csat_responses", "CSAT responses in the window")
    csat_sat = family("cs_csat_satisfied", "CSAT responses with score >= 4")
    nps_n = family("cs_nps_responses", "NPS responses by category", ("category",))
    frt_les = [le_label(b) for b in layout.frt_bounds_ms] + ["+Inf"]
    res_les = [le_label(b) for b in layout.res_bounds_ms] + ["+Inf"]
    for window, cells in snapshot.windows.items():
        for dims in sorted(cells):
            cell, labels = cells[dims], [window, *dims]
            opened.add_metric(labels, cell[Layout.OPENED])
            frt_n.add_metric(labels, cell[Layout.FRT_COUNT])
            frt_sum.add_metric(labels, cell[Layout.FRT_SUM_MS] / 1000)
            frt_breaches.add_metric(labels, cell[Layout.FRT_BREACHES])
            _cumulative(frt_hist, labels, frt_les, cell[layout.frt_hist : layout.res_hist])
            res_n.add_metric(labels, cell[Layout.RES_COUNT])
            res_sum.add_metric(labels, cell[Layout.RES_SUM_MS] / 1000)
            res_breaches.add_metric(labels, cell[Layout.RES_BREACHES])
            _cumulative(res_hist, labels, res_les, cell[layout.res_hist : layout.size])
            csat_n.add_metric(labels, cell[Layout.CSAT_COUNT])
            csat_sat.add_metric(labels, cell[Layout.CSAT_SATISFIED])
            for offset, category in enumerate(NPS_CATEGORIES):
                nps_n.add_metric([*labels, category], cell[Layout.NPS + offset])
    yield from (
        opened,
        frt_n,
        frt_sum,
        frt_hist,
        frt_breaches,
        res_n,
        res_sum,
        res_hist,
        res_breaches,
        csat_n,
        csat_sat,
        nps_n,
    )
    yield from live_gauges(snapshot)


def _cumulative(
    family: GaugeMetricFamily, labels: list[str], les: list[str], counts: list[int]
) -> None:
    running = 0
    for le, count in zip(les, counts, strict=True):
        running += count
        family.add_metric([*labels, le], running)


def live_gauges(snapshot: Snapshot) -> Iterator[Metric]:
    """Open tickets, tickets awaiting a first reply by SLA state, and the oldest one."""
    open_tickets = GaugeMetricFamily(
        "cs_tickets_open", "Tickets opened and not resolved", labels=list(DIMS)
    )
    awaiting = GaugeMetricFamily(
        "cs_tickets_awaiting_first_response",
        "Open tickets without a first reply, by SLA state at scrape time",
        labels=[*DIMS, "sla_state"],
    )
    oldest = GaugeMetricFamily(
        "cs_oldest_awaiting_first_response_opened_timestamp_seconds",
        "opened_at of the oldest ticket awaiting a first reply (take the min across workers)",
        labels=list(DIMS),
    )
    for dims in sorted(snapshot.live):
        live = snapshot.live[dims]
        open_tickets.add_metric(list(dims), live.open)
        for state in SLA_STATES:
            awaiting.add_metric([*dims, state], getattr(live, state))
        if live.oldest_awaiting is not None:
            oldest.add_metric(list(dims), live.oldest_awaiting / 1000)
    yield from (open_tickets, awaiting, oldest)


class SnapshotCollector:
    """KPI gauges of the system-wide snapshot (when it covers every partition) and the
    additive components of this worker's own partitions."""

    def __init__(
        self, system: Snapshot, local: Snapshot, layout: Layout, complete: bool = True
    ) -> None:
        self.system, self.local, self.layout, self.complete = system, local, layout, complete

    def collect(self) -> Iterator[Metric]:
        if self.complete:
            yield from kpi_gauges(self.system, self.layout)
        yield from components(self.local, self.layout)


@dataclass
class Health:
    """A worker's pipeline health at one scrape."""

    topics: Iterable[str]  # input topics as exported (prefix included), unprefixed name
    events: Counter[tuple[str, str]]  # (unprefixed topic, outcome) -> messages
    rejections: Counter[tuple[str, str]]  # (unprefixed topic, reason) -> messages
    last_event_occurred_ms: int | None
    last_processed_ms: int
    lag: Mapping[tuple[str, int], int]  # (topic, partition) -> messages behind
    assigned: int
    covered: int
    total: int
    snapshot_ms: int | None = None  # the instant the scrape's KPIs were computed at


class HealthCollector:
    """Pipeline health of this worker: events by outcome, rejections, lag, coverage."""

    def __init__(self, health: Health, prefix: str) -> None:
        self.health, self.prefix = health, prefix

    def collect(self) -> Iterator[Metric]:
        health, prefix = self.health, self.prefix
        topics = list(health.topics)
        events = CounterMetricFamily(
            "cs_events", "Events consumed, by outcome", labels=["topic", "outcome"]
        )
        for topic in topics:
            for outcome in ("accepted", "duplicate", "rejected"):
                events.add_metric([prefix + topic, outcome], health.events[topic, outcome])
        rejected = CounterMetricFamily(
            "cs_events_rejected",
            "Events sent to the dead-letter topic, by reason",
            labels=["topic", "reason"],
        )
        # Every reason word of the decoder and the processor, zero until it happens.
        reasons = sorted({*REASONS, *PROCESSOR_REASONS})
        for topic in topics:
            for reason in reasons:
                rejected.add_metric([prefix + topic, reason], health.rejections[topic, reason])
        yield from (events, rejected)
        last = GaugeMetricFamily(
            "cs_last_event_occurred_timestamp_seconds", "Largest occurred_at of the accepted events"
        )
        if health.last_event_occurred_ms is not None:
            last.add_metric([], health.last_event_occurred_ms / 1000)
        processed = GaugeMetricFamily(
            "cs_last_event_processed_timestamp_seconds",
            "Wall-clock time this worker last handled an event (its start time before the first)",
            value=health.last_processed_ms / 1000,
        )
        lag = GaugeMetricFamily(
            "cs_consumer_lag_messages", "Messages not yet processed", labels=["topic", "partition"]
        )
        for (topic, partition), messages in sorted(health.lag.items()):
            lag.add_metric([topic, str(partition)], messages)
        yield from (last, processed, lag)
        yield GaugeMetricFamily(
            "cs_partitions_assigned", "Partitions this worker owns", value=health.assigned
        )
        yield GaugeMetricFamily(
            "cs_kpi_partitions_covered",
            "Partitions the system-wide KPI gauges were computed over",
            value=health.covered,
        )
        yield GaugeMetricFamily(
            "cs_kpi_partitions_total", "Partitions of the input topics", value=health.total
        )
        if health.snapshot_ms is not None:
            yield GaugeMetricFamily(
                "cs_kpi_snapshot_timestamp_seconds",
                "The instant this scrape's KPIs and live gauges were computed at",
                value=health.snapshot_ms / 1000,
            )
