"""Prometheus exposition: KPI gauges, additive components and live SLA gauges from
snapshots, and the worker's pipeline health.

Everything is built at scrape time from snapshots, so a revoked partition disappears
from the next scrape by itself and replays can never overcount.

The ticket families are written as text directly (format 0.0.4), with each label set
rendered once per scrape: at the 100-queue cap that is ~300,000 samples, and building a
prometheus_client object per sample cost more than a second (bench/RESULTS.md). Pipeline
health is a few dozen samples: a prometheus_client collector.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from stream.events import REASONS
from stream.kpi.contrib import Layout
from stream.kpi.gauges import KPI_NAMES, TICKET_LIFE_KPI_NAMES, kpis, total
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
    "one_touch_resolution_ratio": "Share of resolutions with exactly one reply and no reopen",
    "reopened_resolution_ratio": "Share of resolutions of tickets reopened at least once",
    "replies_per_resolution_average": "Mean number of replies of the resolved tickets",
}


def le_label(ms: int) -> str:
    """Histogram bound in seconds as Prometheus writes it: "60", "0.5"."""
    return str(ms // 1000) if ms % 1000 == 0 else repr(ms / 1000)


def exposition(system: Snapshot | None, local: Snapshot, layout: Layout) -> str:
    """The ticket families: KPI gauges of `system` (None when it does not cover every
    partition), additive components and live gauges of `local`."""
    return "".join(exposition_chunks(system, local, layout))


def exposition_chunks(system: Snapshot | None, local: Snapshot, layout: Layout) -> Iterator[str]:
    """`exposition` a family at a time, so a server can yield to other work in between."""
    if system is not None:
        yield from kpi_gauges(system, layout)
    yield from components(local, layout)
    yield from live_gauges(local)


def escape(value: str) -> str:
    """A label value as the text format writes it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(names: Iterable[str], values: Iterable[str]) -> str:
    """Rendered label pairs, without braces: `queue="a",channel="b"`."""
    return ",".join(f'{n}="{escape(v)}"' for n, v in zip(names, values, strict=True))


def header(name: str, doc: str) -> str:
    """The HELP and TYPE lines of a gauge family."""
    return f"# HELP {name} {doc}\n# TYPE {name} gauge\n"


def number(value: float) -> str:
    """A sample value: integers as integers, other floats in full precision."""
    return str(value) if isinstance(value, int) else repr(value)


def kpi_gauges(snapshot: Snapshot, layout: Layout) -> Iterator[str]:
    """System-wide KPI gauges (`cs_*` per window, `cs_queue_*` per window and queue)."""
    names = KPI_NAMES + TICKET_LIFE_KPI_NAMES
    overall: dict[str, list[str]] = {n: [] for n in names}
    per_queue: dict[str, list[str]] = {n: [] for n in names}
    for window, cells in snapshot.windows.items():
        for name, value in kpis(total(cells.values(), layout.size)).items():
            if value is not None:
                overall[name].append(f'cs_{name}{{window="{window}"}} {number(value)}\n')
        by_queue: dict[str, list[list[int]]] = {}
        for (queue, _, _), cell in cells.items():
            by_queue.setdefault(queue, []).append(cell)
        for queue in sorted(by_queue):
            pair = labels(("window", "queue"), (window, queue))
            for name, value in kpis(total(by_queue[queue], layout.size)).items():
                if value is not None:
                    per_queue[name].append(f"cs_queue_{name}{{{pair}}} {number(value)}\n")
    for name in names:
        yield header(f"cs_{name}", KPI_HELP[name]) + "".join(overall[name])
    for name in names:
        yield header(f"cs_queue_{name}", f"{KPI_HELP[name]}, per queue") + "".join(per_queue[name])


# (name, help, slot) of the components that are one slot of a cell.
COUNTS: Final = (
    ("cs_tickets_opened", "Tickets whose opened_at falls in the window", Layout.OPENED),
    ("cs_first_responses", "First responses in the window", Layout.FRT_COUNT),
    ("cs_first_response_sla_breaches", "First responses over target", Layout.FRT_BREACHES),
    ("cs_resolutions", "Resolutions in the window", Layout.RES_COUNT),
    ("cs_resolution_sla_breaches", "Resolutions over target", Layout.RES_BREACHES),
    (
        "cs_resolutions_one_touch",
        "Resolutions with exactly one reply and no reopen",
        Layout.RES_ONE_TOUCH,
    ),
    (
        "cs_resolutions_reopened",
        "Resolutions of tickets reopened at least once",
        Layout.RES_REOPENED,
    ),
    ("cs_resolution_replies_sum", "Replies of the resolved tickets", Layout.RES_REPLIES_SUM),
    ("cs_csat_responses", "CSAT responses in the window", Layout.CSAT_COUNT),
    ("cs_csat_satisfied", "CSAT responses with score >= 4", Layout.CSAT_SATISFIED),
)
SUMS: Final = (
    ("cs_first_response_seconds_sum", "Sum of first response times", Layout.FRT_SUM_MS),
    ("cs_resolution_seconds_sum", "Sum of resolution times", Layout.RES_SUM_MS),
)


def components(snapshot: Snapshot, layout: Layout) -> Iterator[str]:
    """Additive components of the partitions in `snapshot` (sum them across workers)."""
    rows = [
        (labels(WINDOW_DIMS, (window, *dims)), cells[dims])
        for window, cells in snapshot.windows.items()
        for dims in sorted(cells)
    ]
    for name, doc, slot in COUNTS:
        yield header(name, doc) + "".join([f"{name}{{{lbl}}} {cell[slot]}\n" for lbl, cell in rows])
    for name, doc, slot in SUMS:
        yield header(name, doc) + "".join(
            [f"{name}{{{lbl}}} {cell[slot] / 1000!r}\n" for lbl, cell in rows]
        )
    histograms = (
        ("cs_first_response_seconds_bucket", "First responses with FRT <= le", "frt"),
        ("cs_resolution_seconds_bucket", "Resolutions with time <= le", "res"),
    )
    for name, doc, which in histograms:
        bounds = layout.frt_bounds_ms if which == "frt" else layout.res_bounds_ms
        first = layout.frt_hist if which == "frt" else layout.res_hist
        les = [f',le="{le_label(b)}"}} ' for b in bounds] + [',le="+Inf"} ']
        stop = first + len(les)
        lines = [header(name, doc)]
        for lbl, cell in rows:
            prefix = f"{name}{{{lbl}"
            lines.extend(
                [
                    f"{prefix}{le}{count}\n"
                    for le, count in zip(les, accumulate(cell[first:stop]), strict=True)
                ]
            )
        yield "".join(lines)
    yield nps_family("cs_nps_responses", "NPS responses by category", rows)


def nps_family(name: str, doc: str, rows: list[tuple[str, list[int]]]) -> str:
    """The NPS responses of each (rendered labels, cell) row, by category."""
    lines = [header(name, doc)]
    for offset, category in enumerate(NPS_CATEGORIES):
        slot = Layout.NPS + offset
        lines.extend(
            [f'{name}{{{lbl},category="{category}"}} {cell[slot]}\n' for lbl, cell in rows]
        )
    return "".join(lines)


def live_gauges(snapshot: Snapshot) -> Iterator[str]:
    """Open tickets, tickets awaiting a first reply by SLA state, and the oldest one."""
    rows = [(labels(DIMS, dims), snapshot.live[dims]) for dims in sorted(snapshot.live)]
    yield header("cs_tickets_open", "Tickets opened and not resolved") + "".join(
        [f"cs_tickets_open{{{lbl}}} {live.open}\n" for lbl, live in rows]
    )
    name = "cs_tickets_awaiting_first_response"
    lines = [header(name, "Open tickets without a first reply, by SLA state at scrape time")]
    for state in SLA_STATES:
        lines.extend(
            [f'{name}{{{lbl},sla_state="{state}"}} {getattr(live, state)}\n' for lbl, live in rows]
        )
    yield "".join(lines)
    name = "cs_oldest_awaiting_first_response_opened_timestamp_seconds"
    doc = "opened_at of the oldest ticket awaiting a first reply (take the min across workers)"
    yield header(name, doc) + "".join(
        [
            f"{name}{{{lbl}}} {live.oldest_awaiting / 1000!r}\n"
            for lbl, live in rows
            if live.oldest_awaiting is not None
        ]
    )


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
            "cs_kpi_partitions_expected", "Partitions of the input topics", value=health.total
        )
        if health.snapshot_ms is not None:
            yield GaugeMetricFamily(
                "cs_kpi_snapshot_timestamp_seconds",
                "The instant this scrape's KPIs and live gauges were computed at",
                value=health.snapshot_ms / 1000,
            )
