"""End to end: real workers, broker, Prometheus, Alertmanager and a webhook in the test.

Two `kpi-stream worker` processes with one app id split the 8 partitions. They get a
2-hour simulator backfill through the real broker plus a few targeted tickets:

- queue e2e-urgent: two urgent tickets, one on each worker, that pass the default urgent
  first-response target a few seconds after they are sent and never get a reply. The
  breach alert must reach the webhook within its `for` time plus Alertmanager's wait.
- queue e2e-quiet: one ticket that breaches every target and gets the worst survey
  scores, and one normal ticket past its target. The volume guards must keep every alert
  silent for it; it also gives each dashboard query data in every window.

Prometheus (repo rule files, 3 s intervals) scrapes both workers; Alertmanager runs the
repo's alertmanager.yml with every receiver pointed at the webhook. The tests run in file order, so the checks before the last test use the
time in which the breach alert's `for` elapses.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dashboard
import orjson
import pytest
import yaml
from prom_harness import (
    REPO,
    RULE_FILES,
    Prometheus,
    WebhookReceiver,
    group_wait_seconds,
    load_rules_generator,
    wait_until,
)

from kpi_devtools.simulate.generator import SimConfig, generate
from stream.events import ENTITY_ID_FIELD
from stream.kpi.settings import KpiConfig
from stream.kpi.sla import DEFAULT_FIRST_RESPONSE_S
from stream.kpi.types import TOPIC_OF_TYPE
from stream.processor import Processor
from stream.runtime.topics import key_partition
from tests.integration.worker_harness import Scenario, Worker, wait_processed

pytestmark = [pytest.mark.prometheus, pytest.mark.integration]

URGENT_QUEUE = "e2e-urgent"
QUIET_QUEUE = "e2e-quiet"
BACKFILL = timedelta(hours=2)
BREACH_DELAY_S = 10  # the urgent tickets pass their target this long after they are sent
# Scrape and evaluation interval; also the scrape timeout. A worker's /metrics asks its
# peer for a snapshot (up to 1.5 s) and renders ~8000 series: 1 s is too tight for that on
# a busy machine, and a timed-out scrape makes every series of that worker go stale.
INTERVAL_S = 3
# Delivery bound beyond `for` + group_wait: a scrape and an evaluation interval, the
# worker, Prometheus' notifier and Alertmanager's dispatch, with room for a busy machine.
DELIVERY_SLACK_S = 2 * INTERVAL_S + 6
THRESHOLDS = yaml.safe_load(load_rules_generator().THRESHOLDS.read_text())
GRAFANA_ALERTS = REPO / "deploy" / "grafana" / "provisioning" / "alerting" / "kpi-stream.yml"
RUNBOOK = REPO / "deploy" / "RUNBOOK.md"
# Series selectors in a PromQL expression: worker metrics, recorded rules and `up`.
SELECTOR = re.compile(r"\b(?:[a-z_]+:[a-z_:]+|cs_\w+|up)\b(?:\{[^}]*\})?")

Message = tuple[str, bytes, bytes]


@dataclass
class Stack:
    prometheus: Prometheus
    urgent_opened_at: float  # epoch seconds
    breach_at: float  # when the urgent tickets pass their first-response target


def midday_zone() -> str:
    """An Etc/GMT zone where it is about 13:00 now: the simulator runs at daytime load
    and the workers' `today` window holds the whole backfill, whenever the test runs."""
    offset = (13 - datetime.now(UTC).hour + 12) % 24 - 12  # hours east of UTC, -12..11
    return f"Etc/GMT{-offset:+d}"  # POSIX sign: Etc/GMT-3 is UTC+3


def event(kind: str, ticket: str, at: datetime, **fields: str | int) -> Message:
    body = {
        "event_id": str(uuid.uuid4()),
        "type": kind,
        ENTITY_ID_FIELD[kind.partition(".")[0]]: ticket,
        "occurred_at": at.isoformat(timespec="milliseconds"),
        **fields,
    }
    return TOPIC_OF_TYPE[kind], ticket.encode(), orjson.dumps(body)


def backfill(zone: str, now: datetime) -> list[Message]:
    config = SimConfig(seed=7, timezone=zone, contact_rate=180, floor_agents=40)
    return [(e.topic, e.key, e.value) for e in generate(config, now - BACKFILL, now)]


def quiet_queue(now: datetime) -> list[Message]:
    """One ticket late on everything with the worst scores; one normal ticket unanswered.

    Opened 5 h ago: past the urgent resolution target (4 h) and the normal first-response
    target (4 h); the replies, resolution and answers fall in every window.
    """
    late, waiting, opened = "E2E-QUIET-LATE", "E2E-QUIET-WAITING", now - timedelta(hours=5)
    return [
        event("ticket.opened", late, opened, queue=QUIET_QUEUE, channel="email", priority="urgent"),
        event("ticket.first_reply", late, now - timedelta(minutes=4)),
        event("ticket.resolved", late, now - timedelta(minutes=3)),
        event("survey.responded", late, now - timedelta(minutes=2), survey="csat", score=1),
        event("survey.responded", late, now - timedelta(minutes=2), survey="nps", score=0),
        event(
            "ticket.opened", waiting, opened, queue=QUIET_QUEUE, channel="chat", priority="normal"
        ),
        # A caller waiting right now: the live queue and its longest wait have data.
        event(
            "contact.queued",
            "E2E-QUIET-CALL",
            now - timedelta(seconds=30),
            queue=QUIET_QUEUE,
            channel="phone",
        ),
        # One call answered late (90 s): the queue's service level is 0, below the alert
        # but under its volume guard.
        event(
            "contact.queued",
            "E2E-QUIET-ANSWERED",
            now - timedelta(minutes=4),
            queue=QUIET_QUEUE,
            channel="phone",
        ),
        event(
            "contact.answered",
            "E2E-QUIET-ANSWERED",
            now - timedelta(minutes=4) + timedelta(seconds=90),
            agent_id="e2e-agent",
        ),
    ]


def urgent_breaches(opened: datetime, owned: list[set[int]], partitions: int) -> list[Message]:
    """One unanswered urgent ticket on a partition of each worker."""
    candidates = (f"E2E-URGENT-{n}" for n in range(1000))
    tickets = [
        next(t for t in candidates if key_partition(t, partitions) in mine) for mine in owned
    ]
    return [
        event("ticket.opened", t, opened, queue=URGENT_QUEUE, channel="phone", priority="urgent")
        for t in tickets
    ]


def wait_split(workers: list[Worker], partitions: int) -> list[set[int]]:
    """Until every worker is ready and they own disjoint shares of all partitions."""

    def split() -> list[set[int]] | None:
        owned = [set(w.ready_partitions()) for w in workers]
        disjoint = sum(map(len, owned)) == len(set().union(*owned))
        if all(owned) and disjoint and set().union(*owned) == set(range(partitions)):
            return owned
        return None

    for worker in workers:
        worker.wait_ready()
    found: list[set[int]] = wait_until(split, 60, "the workers to split the partitions")
    return found


@pytest.fixture(scope="module")
def stack(
    prometheus_binaries: dict[str, str],
    kafka_bootstrap: str,  # tests/conftest.py: the session broker
    prometheus_factory: Callable[..., Prometheus],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    zone = midday_zone()
    scenario = Scenario(kafka_bootstrap, tmp_path_factory.mktemp("e2e"))
    scenario.create_topics()
    workers = [Worker(scenario, name, timezone=zone) for name in ("w1", "w2")]
    try:
        for worker in workers:
            worker.start()
        owned = wait_split(workers, scenario.partitions)
        targets = [f"127.0.0.1:{w.port}" for w in workers]
        prometheus = prometheus_factory(targets, interval_s=INTERVAL_S)
        prometheus.wait_for_targets_up(len(workers))

        now = datetime.now(UTC)
        urgent_opened = now - timedelta(seconds=DEFAULT_FIRST_RESPONSE_S["urgent"] - BREACH_DELAY_S)
        messages = [
            *backfill(zone, now),
            *quiet_queue(now),
            *urgent_breaches(urgent_opened, owned, scenario.partitions),
        ]
        scenario.produce(messages)
        wait_processed(workers, len(messages))
        print(
            f"{len(messages)} events processed {time.time() - now.timestamp():.1f}s after sending"
        )
        yield Stack(
            prometheus,
            urgent_opened.timestamp(),
            urgent_opened.timestamp() + DEFAULT_FIRST_RESPONSE_S["urgent"],
        )
    finally:
        for worker in workers:
            worker.kill()


def values(result: list[dict[str, Any]]) -> list[float]:
    return [float(sample["value"][1]) for sample in result]


def single_value(prometheus: Prometheus, expr: str) -> float:
    result = prometheus.query(expr)
    assert len(result) == 1, f"{expr}: {result}"
    return values(result)[0]


def wait_for_rule_evaluation(prometheus: Prometheus) -> None:
    """Until every rule group has been evaluated again after this call."""
    since = datetime.now(UTC)

    def evaluated() -> bool:
        groups = prometheus.api("rules")["data"]["groups"]
        return all(datetime.fromisoformat(g["lastEvaluation"]) > since for g in groups)

    wait_until(evaluated, 3 * INTERVAL_S, "a rule evaluation")


def contact_centre_wired() -> bool:
    """Whether the worker consumes the contact-centre topics (contract sections 7-8)."""
    processor = Processor(KpiConfig(), ZoneInfo("UTC"), 8)
    return "cs.contact.queued" in processor.topics and "cs.agent.status" in processor.topics


# Series of the contact centre: until the worker consumes its topics, nothing can record
# them, and only they may be empty (every ticket and pipeline rule is checked regardless).
CONTACT_CENTRE = re.compile(r"cs_contacts?_|cs_agents?_|cs_agents\b")


def waiting_for_contact_centre(name: str) -> bool:
    return not contact_centre_wired() and bool(CONTACT_CENTRE.search(name))


def rules_of(kind: str) -> list[dict[str, Any]]:
    """Every rule of the repo's rule files that has the key `kind` (record or alert)."""
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if kind in rule
    ]


def grafana_alert_queries() -> dict[str, str]:
    """Title -> PromQL of every Grafana-managed alert rule."""
    rules = [r for g in yaml.safe_load(GRAFANA_ALERTS.read_text())["groups"] for r in g["rules"]]
    return {
        rule["title"]: next(
            d["model"]["expr"] for d in rule["data"] if d["datasourceUid"] != "__expr__"
        )
        for rule in rules
    }


def window_choices(board: dict[str, Any]) -> list[str]:
    """The values of the dashboard's custom `window` variable."""
    variable = next(v for v in board["templating"]["list"] if v["name"] == "window")
    choices: list[str] = variable["query"].split(",")
    return choices


def test_every_recording_rule_expression_returns_numbers(stack: Stack) -> None:
    prometheus = stack.prometheus
    rules = [r for r in rules_of("record") if not waiting_for_contact_centre(r["expr"])]
    assert rules, "no recording rule left to check"

    def empty() -> list[str]:
        return [r["record"] for r in rules if not prometheus.query(r["record"])]

    wait_until(lambda: not empty(), 10 * INTERVAL_S, "every recording rule to record data")
    for rule in rules:
        result = prometheus.query(rule["expr"])
        assert result, f"{rule['record']}: no data"
        assert not any(map(math.isnan, values(result))), f"{rule['record']}: NaN"
    unhealthy = [
        (rule["name"], rule.get("lastError"))
        for group in prometheus.api("rules")["data"]["groups"]
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    assert not unhealthy


def test_recorded_system_frt_average_equals_each_workers_own_gauge(stack: Stack) -> None:
    """The rule sums the workers' components; each worker's gauge is its fan-out result.

    Compared at one rule evaluation (rule value and the gauges Prometheus held then).
    A minute boundary between the two workers' scrapes moves the windows of one of them,
    so a few evaluations are tried before calling it a mismatch.
    """
    prometheus = stack.prometheus
    rule = "window:cs_first_response_time_seconds:avg"
    contributions = prometheus.query('sum by (instance) (cs_first_responses{window="1h"})')
    assert len(contributions) == 2 and min(values(contributions)) > 0, contributions
    windows = set(window_choices(dashboard.load()))
    for _ in range(5):
        evaluated_at = max(values(prometheus.query(f"timestamp({rule})")))
        recorded = {
            r["metric"]["window"]: float(r["value"][1])
            for r in prometheus.query(rule, at=evaluated_at)
        }
        gauges = {
            (r["metric"]["instance"], r["metric"]["window"]): float(r["value"][1])
            for r in prometheus.query("cs_first_response_time_average_seconds", at=evaluated_at)
        }
        differing = {
            key: (gauge, recorded.get(key[1]))
            for key, gauge in gauges.items()
            if not math.isclose(gauge, recorded.get(key[1], math.nan), rel_tol=1e-9)
        }
        if set(recorded) == windows and len(gauges) == 2 * len(windows) and not differing:
            break
        time.sleep(INTERVAL_S)
    assert set(recorded) == windows, recorded
    assert len(gauges) == 2 * len(windows), gauges
    assert not differing, f"(worker gauge, recorded) per (instance, window): {differing}"
    print(f"recorded FRT averages {recorded} equal both workers' gauges")


def test_every_dashboard_query_returns_data_for_real_variable_values(stack: Stack) -> None:
    prometheus = stack.prometheus
    board = dashboard.load()
    selector = dict(dashboard.variable_queries(board))["queue"]
    queues = sorted({r["metric"]["queue"] for r in prometheus.query(selector)})
    assert QUIET_QUEUE in queues and len(queues) > 2, queues
    busiest = next(q for q in queues if q not in (QUIET_QUEUE, URGENT_QUEUE))
    # All (the variable's allValue), one queue, and two as Grafana writes a multi-value.
    # The contact-centre panels with All: no queue of the backfill has every call measure
    # (service level, abandonment, a caller waiting now) at once.
    queue_choices = [".*", QUIET_QUEUE, f"({busiest}|{QUIET_QUEUE})"]
    failed, ran = [], 0
    for window in window_choices(board):
        for queue in queue_choices:
            for title, expr in dashboard.panel_queries(board, {"window": window, "queue": queue}):
                if queue != ".*" and CONTACT_CENTRE.search(expr):
                    continue
                result = prometheus.query(expr)
                ran += 1
                if not result or any(map(math.isnan, values(result))):
                    failed.append(f"{title} (window {window}, queue {queue}): {result}")
    assert not failed, "\n".join(failed)
    print(f"{ran} dashboard queries returned numbers")


def test_every_alert_query_parses_and_reads_series_the_workers_export(stack: Stack) -> None:
    """Alert queries carry their threshold, so most are rightly empty; what each reads
    must exist, or the alert could never fire."""
    prometheus = stack.prometheus
    grafana = grafana_alert_queries()
    for expr in grafana.values():
        prometheus.query(expr)  # raises if Prometheus rejects it
    exprs = [rule["expr"] for rule in rules_of("alert")] + list(grafana.values())
    selectors = {s for expr in exprs for s in SELECTOR.findall(expr)}
    missing = sorted(
        s
        for s in selectors
        if not waiting_for_contact_centre(s) and not prometheus.query(f"count({s})")
    )
    assert not missing, f"alert queries read series that do not exist: {missing}"
    print(f"{len(selectors)} series selectors of {len(exprs)} alert queries have data")


LIVE_WAIT_ALERT = "CSContactLongestWaitHigh"


def test_volume_guards_keep_a_quiet_queue_silent(stack: Stack) -> None:
    prometheus = stack.prometheus
    queue = f'queue="{QUIET_QUEUE}"'
    # alert -> (key in thresholds.yml, alert level (the policy's amber), recorded KPI,
    #           recorded volume, the one ticket's KPI)
    guarded = {
        "CSFirstResponseSLAAttainmentLow": ("first_response_sla_attainment", 0.8, "cs_first_response_sla_attainment:ratio", "cs_first_responses:sum", 0.0),
        "CSResolutionSLAAttainmentLow": ("resolution_sla_attainment", 0.8, "cs_resolution_sla_attainment:ratio", "cs_resolutions:sum", 0.0),
        "CSCSATLow": ("csat", 0.8, "cs_csat:ratio", "cs_csat_responses:sum", 0.0),
        "CSNPSLow": ("nps", 20, "cs_nps:score", "cs_nps_responses:sum", -100.0),
    }  # fmt: skip
    alert_exprs = {r["alert"]: r["expr"] for r in rules_of("alert")}
    for name, (key, level, kpi, volume, expected) in guarded.items():
        limits = THRESHOLDS[key]
        window = f'window="{limits["window"]}"'
        assert f"{{{window}}} < {level}\n" in alert_exprs[name], alert_exprs[name]
        assert single_value(prometheus, f"queue_window:{kpi}{{{queue}, {window}}}") == expected
        assert single_value(prometheus, f"queue_window:{volume}{{{queue}, {window}}}") == 1
        # Without its volume guard, this one ticket would make the alert fire.
        assert expected < level and limits["min_volume"] > 1
    breached = single_value(
        prometheus,
        "queue_priority_sla_state:cs_tickets_awaiting_first_response:sum"
        f'{{{queue}, priority="normal", sla_state="breached"}}',
    )
    assert breached == 1 < THRESHOLDS["awaiting_first_response_breached"]["normal"]["min_tickets"]

    wait_for_rule_evaluation(prometheus)
    active = [
        (rule["name"], alert["state"])
        for group in prometheus.api("rules")["data"]["groups"]
        for rule in group["rules"]
        for alert in rule.get("alerts", [])
        # A caller really waiting past the limit pages whatever the volume: not guarded.
        if alert["labels"].get("queue") == QUIET_QUEUE and rule["name"] != LIVE_WAIT_ALERT
    ]
    assert not active, f"alerts pending or firing for one quiet ticket: {active}"
    fired = prometheus.query(
        f'count_over_time(ALERTS{{{queue}, alertname!="{LIVE_WAIT_ALERT}"}}[5m])'
    )
    assert not fired, fired
    service_level = "queue_window:cs_contact_service_level:ratio"
    offered = "queue_window:cs_contacts_offered:sum"
    assert single_value(prometheus, f'{service_level}{{{queue}, window="1h"}}') == 0.0
    assert single_value(prometheus, f'{offered}{{{queue}, window="1h"}}') == 1
    assert THRESHOLDS["contact_service_level"]["min_volume"] > 1


def test_urgent_breach_alert_reaches_the_webhook_in_time_with_labels_and_annotations(
    stack: Stack, webhook_receiver: WebhookReceiver
) -> None:
    prometheus = stack.prometheus
    urgent = THRESHOLDS["awaiting_first_response_breached"]["urgent"]
    expected_labels = {
        "alertname": "CSFirstResponseSLABreached",
        "queue": URGENT_QUEUE,
        "priority": "urgent",
        "severity": urgent["severity"],
        "team": THRESHOLDS["teams"]["service"],
    }
    for_s = load_rules_generator().seconds(urgent["for"])
    group_wait_s = group_wait_seconds(expected_labels)
    # Bound: breach, then `for`, then Alertmanager's group_wait, plus slack.
    deadline = stack.breach_at + for_s + group_wait_s + DELIVERY_SLACK_S

    alert = webhook_receiver.wait_for_alert(
        "CSFirstResponseSLABreached",
        timeout=max(0.0, deadline - time.time()),
        queue=URGENT_QUEUE,
        priority="urgent",
    )
    received = time.time()
    fired_at = datetime.fromisoformat(alert["startsAt"]).timestamp()

    assert alert["labels"] == expected_labels
    assert stack.breach_at + for_s - INTERVAL_S <= fired_at, "fired before its `for` elapsed"
    assert stack.breach_at + for_s <= received <= deadline
    [receiver] = [n["receiver"] for n in webhook_receiver.notifications if alert in n["alerts"]]
    assert receiver == "pager"

    annotations = alert["annotations"]
    # One ticket on each worker: the alert's sum crosses workers.
    per_worker = prometheus.query(
        "sum by (instance) (cs_tickets_awaiting_first_response"
        f'{{queue="{URGENT_QUEUE}", sla_state="breached"}})'
    )
    assert sorted(values(per_worker)) == [1.0, 1.0], per_worker
    assert (
        annotations["summary"]
        == f"Urgent tickets past first-response SLA in queue {URGENT_QUEUE}: 2"
    )
    description = annotations["description"]
    assert description.startswith(
        f"Tickets of priority urgent in queue {URGENT_QUEUE} still waiting for a first reply "
        "past their first-response target: 2 (alerting at 1 or more)."
    ), description
    waited = re.search(r" The oldest has waited (\d+)m (\d+)s\.$", description)
    assert waited, description
    waited_s = 60 * int(waited[1]) + int(waited[2])
    target_s = DEFAULT_FIRST_RESPONSE_S["urgent"]
    assert target_s + for_s - INTERVAL_S <= waited_s <= received - stack.urgent_opened_at + 1
    section = annotations["runbook_url"].removeprefix(THRESHOLDS["runbook_url_base"] + "#")
    assert section == "csfirstresponseslabreached"
    assert "\n## CSFirstResponseSLABreached\n" in RUNBOOK.read_text()

    grafana = prometheus.query(grafana_alert_queries()["CSFirstResponseSLABreached urgent"])
    assert {(r["metric"]["queue"], float(r["value"][1])) for r in grafana} >= {(URGENT_QUEUE, 2.0)}
    print(
        f"urgent breach alert delivered {received - stack.breach_at:.1f}s after the breach "
        f"(for {for_s}s + group_wait {group_wait_s}s; bound {deadline - stack.breach_at:.0f}s): "
        f"{description}"
    )
