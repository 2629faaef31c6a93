"""The Grafana dashboard of kpi-stream, built with grafana-foundation-sdk.

Written to deploy/grafana/dashboards/kpi-stream.json by deploy/prometheus/generate.py; the
KPI colours come from the policy file's thresholds (the wallboard's), never from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from grafana_foundation_sdk.builders import bargauge, common, dashboard, prometheus, stat
from grafana_foundation_sdk.builders import timeseries as series
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="prometheus")
WINDOW = 'window="$window"'
QUEUES = 'queue=~"$queue"'
BLUE = [("blue", None)]

# (title, description, recording rule, KPI key in the policy's thresholds, unit, decimals)
KPI_STATS = [
    ("First response time (mean)", "Mean time from ticket opened to first reply, for first replies in the window.", "cs_first_response_time_seconds:avg", "first_response_time_average_seconds", "s", 0),
    ("First-response SLA attainment", "Share of first replies in the window that met the first-response target of their priority.", "cs_first_response_sla_attainment:ratio", "first_response_sla_attainment_ratio", "percentunit", 1),
    ("Resolution time (mean)", "Mean time from ticket opened to resolution, for resolutions in the window.", "cs_resolution_time_seconds:avg", "resolution_time_average_seconds", "s", 0),
    ("Resolution SLA attainment", "Share of resolutions in the window that met the resolution target of their priority.", "cs_resolution_sla_attainment:ratio", "resolution_sla_attainment_ratio", "percentunit", 1),
    ("CSAT", "Satisfied (score 4-5) share of CSAT answers in the window.", "cs_csat:ratio", "csat_ratio", "percentunit", 1),
    ("NPS", "Promoters minus detractors, in % of NPS answers in the window.", "cs_nps:score", "nps_score", "none", 0),
]  # fmt: skip
BY_QUEUE = [
    ("First response time by queue", "cs_first_response_time_seconds:avg", "first_response_time_average_seconds"),
    ("First-response SLA attainment by queue", "cs_first_response_sla_attainment:ratio", "first_response_sla_attainment_ratio"),
    ("Resolution SLA attainment by queue", "cs_resolution_sla_attainment:ratio", "resolution_sla_attainment_ratio"),
    ("CSAT by queue", "cs_csat:ratio", "csat_ratio"),
    ("NPS by queue", "cs_nps:score", "nps_score"),
    ("Resolution time by queue", "cs_resolution_time_seconds:avg", "resolution_time_average_seconds"),
]  # fmt: skip
RANGES = {"percentunit": (0, 1), "none": (-100, 100)}  # NPS is the only unitless KPI
AWAITING = "queue_priority_sla_state:cs_tickets_awaiting_first_response:sum"
OLDEST = "queue_priority:cs_oldest_awaiting_first_response_age_seconds:max"
FRT_BUCKETS = f"queue_window_le:cs_first_response_seconds_bucket:sum{{{WINDOW}, {QUEUES}}}"
OLDEST_STEPS = [("green", None), ("yellow", 900), ("red", 3600)]


def kpi_steps(threshold: Mapping[str, Any]) -> list[tuple[str, float | None]]:
    """Grafana threshold steps for a KPI: the wallboard's green / amber (yellow) / red."""
    if threshold["direction"] == "lower_is_better":
        return [("green", None), ("yellow", threshold["green"]), ("red", threshold["amber"])]
    return [("red", None), ("yellow", threshold["amber"]), ("green", threshold["green"])]


def steps(levels: list[tuple[str, float | None]]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=color) for color, value in levels])
    )


def query(ref: str, expr: str, legend: str = "", instant: bool = False) -> prometheus.Dataquery:
    target = prometheus.Dataquery().ref_id(ref).datasource(DATASOURCE).expr(expr)
    target = target.legend_format(legend).editor_mode("code")
    return target.instant() if instant else target.range()


def stat_panel(
    title: str,
    levels: list[tuple[str, float | None]],
    *targets: prometheus.Dataquery,
    description: str = "",
    unit: str | None = "none",
    decimals: float | None = 0,
    width: int = 4,
    height: int = 4,
) -> stat.Panel:
    panel = stat.Panel().title(title).description(description).datasource(DATASOURCE)
    panel = panel.height(height).span(width).thresholds(steps(levels))
    panel = panel.color_scheme(dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    panel = panel.reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    panel = panel.color_mode(cm.BigValueColorMode.BACKGROUND).graph_mode(cm.BigValueGraphMode.AREA)
    if unit is not None:
        panel = panel.unit(unit)
    if decimals is not None:
        panel = panel.decimals(decimals)
    if unit in RANGES:
        panel = panel.min(RANGES[unit][0]).max(RANGES[unit][1])
    for target in targets:
        panel = panel.with_target(target)
    return panel


def bar_panel(
    title: str,
    levels: list[tuple[str, float | None]],
    target: prometheus.Dataquery,
    unit: str,
    description: str = "",
    width: int = 8,
    height: int = 8,
    orientation: cm.VizOrientation = cm.VizOrientation.HORIZONTAL,
) -> bargauge.Panel:
    panel = bargauge.Panel().title(title).description(description).datasource(DATASOURCE)
    panel = panel.height(height).span(width).unit(unit).thresholds(steps(levels))
    panel = panel.color_scheme(dashboard.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    panel = panel.reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    panel = panel.orientation(orientation).display_mode(cm.BarGaugeDisplayMode.GRADIENT)
    panel = panel.show_unfilled(True).with_target(target)
    if unit in RANGES:
        panel = panel.min(RANGES[unit][0]).max(RANGES[unit][1])
    return panel


def series_panel(
    title: str,
    *targets: prometheus.Dataquery,
    description: str = "",
    unit: str | None = None,
    width: int = 8,
    height: int = 8,
) -> series.Panel:
    panel = series.Panel().title(title).description(description).datasource(DATASOURCE)
    panel = panel.height(height).span(width)
    panel = panel.legend(
        common.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.LIST)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(True)
    )
    panel = panel.tooltip(
        common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)
    )
    if unit is not None:
        panel = panel.unit(unit)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def contact_centre_row(
    board: dashboard.Dashboard, thresholds: Mapping[str, Mapping[str, Any]]
) -> dashboard.Dashboard:
    """Calls and chats as the floor reads them: the queue now, service level, abandonment,
    ASA, AHT, per queue, agents by status and occupancy per team (contract sections 7, 8)."""
    board = board.with_row(dashboard.Row("Contact centre (window: $window, queues: $queue)"))
    service_level = kpi_steps(thresholds["contact_service_level_ratio"])
    abandonment = kpi_steps(thresholds["contact_abandonment_ratio"])
    wait = kpi_steps(thresholds["contact_longest_wait_seconds"])
    occupancy = kpi_steps(thresholds["occupancy_ratio"])
    for title, expr, levels, unit, decimals in (
        ("Contacts waiting", f"sum(queue:cs_contacts_waiting:sum{{{QUEUES}}})", BLUE, "none", 0),
        (
            "Longest wait",
            f"max(queue:cs_contact_longest_wait_seconds:max{{{QUEUES}}})",
            wait,
            "s",
            0,
        ),
        (
            "Service level ($window)",
            f"window:cs_contact_service_level:ratio{{{WINDOW}}}",
            service_level,
            "percentunit",
            None,
        ),
        (
            "Abandonment ($window)",
            f"window:cs_contact_abandonment:ratio{{{WINDOW}}}",
            abandonment,
            "percentunit",
            None,
        ),
        (
            "Average speed of answer ($window)",
            f"window:cs_contact_answer_time_seconds:avg{{{WINDOW}}}",
            wait,
            "s",
            0,
        ),
        (
            "Average handle time ($window)",
            f"window:cs_contact_handle_time_seconds:avg{{{WINDOW}}}",
            BLUE,
            "s",
            0,
        ),
    ):
        board = board.with_panel(
            stat_panel(title, levels, query("A", expr), unit=unit, decimals=decimals)
        )
    for title, rule, levels, unit in (
        ("Service level by queue", "cs_contact_service_level:ratio", service_level, "percentunit"),
        ("Abandonment by queue", "cs_contact_abandonment:ratio", abandonment, "percentunit"),
    ):  # fmt: skip
        target = query("A", f"queue_window:{rule}{{{WINDOW}, {QUEUES}}}", "{{queue}}", instant=True)
        board = board.with_panel(bar_panel(title, levels, target, unit))
    board = board.with_panel(
        bar_panel(
            "Longest wait by queue",
            wait,
            query("A", f"queue:cs_contact_longest_wait_seconds:max{{{QUEUES}}}", "{{queue}}", True),
            "s",
        )
    )
    board = board.with_panel(
        bar_panel(
            "Agents by status",
            BLUE,
            query("A", "sum by (status) (status_team:cs_agents:sum)", "{{status}}", True),
            "none",
        )
    )
    board = board.with_panel(
        bar_panel(
            "Agent occupancy by team ($window)",
            occupancy,
            query("A", f"team_window:cs_agent_occupancy:ratio{{{WINDOW}}}", "{{team}}", True),
            "percentunit",
            description="(busy + after-contact work) / (available + busy + after-contact work).",
        )
    )
    return board.with_panel(
        series_panel(
            "Contacts offered by queue ($window)",
            query("A", f"queue_window:cs_contacts_offered:sum{{{WINDOW}, {QUEUES}}}", "{{queue}}"),
            description="Answered plus abandoned contacts (short abandons excluded).",
        )
    )


def build_dashboard(thresholds: Mapping[str, Mapping[str, Any]], job: str) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model; `thresholds` as the worker parses them."""
    board = (
        dashboard.Dashboard("kpi-stream: contact centre KPIs")
        .uid("kpi-stream")
        .description("Service KPIs, SLA state and pipeline health of kpi-stream.")
        .tags(["kpi-stream", "customer-service"])
        .timezone("browser")
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .refresh("15s")
        .time("now-6h", "now")
        .with_variable(
            dashboard.CustomVariable("window")
            .label("Window")
            .values("15m,1h,24h,today")
            .current(dm.VariableOption(selected=True, text="1h", value="1h"))
        )
        .with_variable(
            dashboard.QueryVariable("queue")
            .label("Queue")
            .datasource(DATASOURCE)
            .query("label_values(queue_priority:cs_tickets_open:sum, queue)")
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
        )
    )

    board = board.with_row(dashboard.Row("Service KPIs, all queues (window: $window)"))
    for title, description, rule, key, unit, decimals in KPI_STATS:
        expr = f"window:{rule}{{{WINDOW}}}"
        board = board.with_panel(
            stat_panel(
                title,
                kpi_steps(thresholds[key]),
                query("A", expr),
                description=description,
                unit=unit,
                decimals=decimals,
                height=5,
            )
        )
    live = [
        ("Open tickets", "Tickets opened and not yet resolved.", "sum(queue_priority:cs_tickets_open:sum)", BLUE),
        ("Tickets opened ($window)", "Tickets whose opened_at falls in the window.", f"sum(window:cs_tickets_opened:sum{{{WINDOW}}})", BLUE),
        ("Awaiting first reply", "Open tickets with no first reply yet, any SLA state.", f"sum({AWAITING})", BLUE),
        ("At risk of first-response breach", "Awaiting a first reply, in the last 25 % of the target.", f'sum({AWAITING}{{sla_state="at_risk"}})', [("green", None), ("orange", 1)]),
        ("Past first-response SLA", "Awaiting a first reply beyond the target: answer these first.", f'sum({AWAITING}{{sla_state="breached"}})', [("green", None), ("red", 1)]),
    ]  # fmt: skip
    for title, description, expr, levels in live:
        board = board.with_panel(
            stat_panel(title, levels, query("A", expr), description=description)
        )
    board = board.with_panel(
        stat_panel(
            "Oldest waiting for first reply",
            OLDEST_STEPS,
            query("A", f"max({OLDEST})"),
            description="Age of the oldest ticket still waiting for its first reply.",
            unit="s",
        )
    )

    board = board.with_row(dashboard.Row("Per queue (window: $window, queues: $queue)"))
    units = {key: unit for _, _, _, key, unit, _ in KPI_STATS}
    for title, rule, key in BY_QUEUE:
        expr = f"queue_window:{rule}{{{WINDOW}, {QUEUES}}}"
        target = query("A", expr, "{{queue}}", instant=True)
        board = board.with_panel(bar_panel(title, kpi_steps(thresholds[key]), target, units[key]))
    board = board.with_panel(
        series_panel(
            "Tickets opened by queue ($window)",
            query("A", f"queue_window:cs_tickets_opened:sum{{{WINDOW}, {QUEUES}}}", "{{queue}}"),
            description="Tickets opened in the window, per queue, over time.",
            width=12,
        )
    )
    board = board.with_panel(
        series_panel(
            "First responses and resolutions ($window)",
            query(
                "A",
                f"sum(queue_window:cs_first_responses:sum{{{WINDOW}, {QUEUES}}})",
                "first responses",
            ),
            query(
                "B", f"sum(queue_window:cs_resolutions:sum{{{WINDOW}, {QUEUES}}})", "resolutions"
            ),
            width=12,
        )
    )

    board = board.with_row(
        dashboard.Row("First response time distribution (window: $window, queues: $queue)")
    )
    board = board.with_panel(
        bar_panel(
            "First replies by response time",
            BLUE,
            query("A", f"sum by (le) ({FRT_BUCKETS})", "\u2264 {{le}} s", instant=True),
            "none",
            description="Number of first replies per response-time bucket (upper bound in "
            "seconds), from the cumulative buckets.",
            width=12,
            height=9,
            orientation=cm.VizOrientation.VERTICAL,
        )
    )
    quantiles = [
        query(ref, f"histogram_quantile({q}, sum by (le) ({FRT_BUCKETS}))", f"p{round(q * 100)}")
        for ref, q in (("A", 0.5), ("B", 0.9), ("C", 0.99))
    ]
    board = board.with_panel(
        series_panel(
            "First response time percentiles",
            *quantiles,
            description="Estimated from the bucket boundaries (linear within a bucket).",
            unit="s",
            width=12,
            height=9,
        )
    )

    board = board.with_row(dashboard.Row("First-response SLA state (queues: $queue)"))
    by_state = series_panel(
        "Awaiting first reply by SLA state",
        query("A", f"sum by (sla_state) ({AWAITING}{{{QUEUES}}})", "{{sla_state}}"),
        description="ok, at_risk (last 25 % of the target) and breached.",
    )
    for state, colour in (("ok", "green"), ("at_risk", "orange"), ("breached", "red")):
        by_state = by_state.override_by_name(
            state,
            [dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": colour})],
        )
    board = board.with_panel(by_state)
    board = board.with_panel(
        bar_panel(
            "Past SLA by queue and priority",
            [("green", None), ("red", 1)],
            query(
                "A",
                f'{AWAITING}{{sla_state="breached", {QUEUES}}}',
                "{{queue}} / {{priority}}",
                instant=True,
            ),
            "none",
        )
    )
    board = board.with_panel(
        bar_panel(
            "Oldest waiting by queue and priority",
            OLDEST_STEPS,
            query("A", f"{OLDEST}{{{QUEUES}}}", "{{queue}} / {{priority}}", instant=True),
            "s",
        )
    )

    board = contact_centre_row(board, thresholds)

    board = board.with_row(dashboard.Row("Pipeline health"))
    board = board.with_panel(
        series_panel(
            "Events per second by outcome",
            query("A", "sum by (outcome) (topic_outcome:cs_events:rate5m)", "{{outcome}}"),
            unit="ops",
        )
    )
    board = board.with_panel(
        series_panel(
            "Rejected events (DLQ) by reason",
            query("A", "sum by (reason) (topic_reason:cs_events_rejected:rate5m)", "{{reason}}"),
            unit="ops",
        )
    )
    board = board.with_panel(
        series_panel(
            "Consumer lag by topic",
            query("A", "topic:cs_consumer_lag_messages:sum", "{{topic}}"),
            unit="none",
        )
    )
    board = board.with_panel(
        stat_panel(
            "Workers up",
            [("red", None), ("green", 1)],
            query("A", f'sum(up{{job="{job}"}})'),
            unit=None,
        )
    )
    board = board.with_panel(
        stat_panel(
            "Partitions assigned",
            BLUE,
            query("A", "job:cs_partitions_assigned:sum", "assigned"),
            query("B", "job:cs_kpi_partitions_expected:max", "total"),
            unit=None,
            width=5,
        )
    )
    board = board.with_panel(
        stat_panel(
            "KPI partition coverage",
            [("red", None), ("green", 1)],
            query("A", "min(cs_kpi_partitions_covered / cs_kpi_partitions_expected)"),
            description="Share of partitions the system-wide KPI gauges were computed over "
            "(1 = all).",
            unit="percentunit",
            decimals=None,
            width=5,
        )
    )
    board = board.with_panel(
        stat_panel(
            "Since last event applied",
            [("green", None), ("yellow", 60), ("red", 300)],
            query("A", "time() - cs_last_event_processed_timestamp_seconds", "{{instance}}"),
            description="Per worker; long gaps with lag > 0 mean the pipeline is stalled.",
            unit="s",
            width=10,
        )
    )
    model: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for number, panel in enumerate(model["panels"], start=1):
        panel["id"] = number
    return model


def render_dashboard(thresholds: Mapping[str, Mapping[str, Any]], job: str) -> str:
    """The dashboard file's text (stable key order, so --check can compare it)."""
    return json.dumps(build_dashboard(thresholds, job), indent=2, sort_keys=True) + "\n"
