"""Self-test of prom_harness: real Prometheus + Alertmanager, one alert to the webhook.

The scrape targets here are two tiny HTTP servers serving metrics text written in this
file: a STAND-IN for two kpi-stream workers, used only to prove the harness, the rule
files and the dashboard queries against a real Prometheus. The end-to-end test with a
real worker fed through the real broker is separate.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dashboard
import pytest
import yaml
from prom_harness import (
    RULE_FILES,
    Prometheus,
    WebhookReceiver,
    load_rules_generator,
    wait_until,
)

pytestmark = pytest.mark.prometheus

WINDOWS = ("15m", "1h", "24h", "today")
FRT_BUCKETS = ("60", "300", "900", "1800", "3600", "7200", "14400", "28800", "86400", "+Inf")
RES_BUCKETS = ("900", "3600", "14400", "28800", "86400", "172800", "259200", "604800", "+Inf")
OLDEST_WAIT_S = 1200


def urgent_breach_for_seconds() -> int:
    generator = load_rules_generator()
    thresholds = yaml.safe_load(generator.THRESHOLDS.read_text())
    seconds: int = generator.seconds(
        thresholds["awaiting_first_response_breached"]["urgent"]["for"]
    )
    return seconds


def standin_metrics(worker: int, started: float, now: float) -> str:
    """Exposition text of stand-in worker `worker` (1 or 2): every family the rules use."""
    dims = f'queue="billing",channel="{("phone", "email")[worker - 1]}",priority="urgent"'
    lines = []

    def family(name: str, kind: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{{{labels}}} {value}" for labels, value in samples)

    for window in WINDOWS:
        d = f'{dims},window="{window}"'
        family("cs_tickets_opened", "gauge", [(d, 12)])
        family("cs_first_responses", "gauge", [(d, 10)])
        family("cs_first_response_seconds_sum", "gauge", [(d, 4000)])
        family("cs_first_response_sla_breaches", "gauge", [(d, 2)])
        family(
            "cs_first_response_seconds_bucket",
            "gauge",
            [(f'{d},le="{le}"', min(10, 2 * i)) for i, le in enumerate(FRT_BUCKETS)],
        )
        family("cs_resolutions", "gauge", [(d, 8)])
        family("cs_resolution_seconds_sum", "gauge", [(d, 80000)])
        family("cs_resolution_sla_breaches", "gauge", [(d, 1)])
        family("cs_resolutions_one_touch", "gauge", [(d, 5)])
        family("cs_resolutions_reopened", "gauge", [(d, 1)])
        family("cs_resolution_replies_sum", "gauge", [(d, 13)])
        family(
            "cs_resolution_seconds_bucket",
            "gauge",
            [(f'{d},le="{le}"', min(8, i)) for i, le in enumerate(RES_BUCKETS)],
        )
        family("cs_csat_responses", "gauge", [(d, 5)])
        family("cs_csat_satisfied", "gauge", [(d, 4)])
        family(
            "cs_nps_responses",
            "gauge",
            [
                (f'{d},category="{c}"', n)
                for c, n in (("promoter", 3), ("passive", 1), ("detractor", 1))
            ],
        )
        c = f'queue="billing",channel="{("phone", "chat")[worker - 1]}",window="{window}"'
        family("cs_contacts_answered", "gauge", [(c, 30)])
        family("cs_contacts_answered_within_threshold", "gauge", [(c, 24)])
        family("cs_contact_answer_wait_seconds_sum", "gauge", [(c, 600)])
        family("cs_contacts_abandoned", "gauge", [(c, 3)])
        family("cs_contacts_handled", "gauge", [(c, 28)])
        family("cs_contact_handle_seconds_sum", "gauge", [(c, 8400)])
        family(
            "cs_agent_status_seconds",
            "gauge",
            [
                (f'team="default",status="{status}",window="{window}"', seconds)
                for status, seconds in (
                    ("available", 600),
                    ("busy", 2400),
                    ("after_contact_work", 300),
                )
            ],
        )
    contact_dims = f'queue="billing",channel="{("phone", "chat")[worker - 1]}"'
    family("cs_contacts_waiting", "gauge", [(contact_dims, 2)])
    family(
        "cs_contact_oldest_waiting_queued_timestamp_seconds",
        "gauge",
        [(contact_dims, started - 45)],
    )
    family("cs_agents", "gauge", [('team="default",status="busy"', 3)])
    family("cs_tickets_open", "gauge", [(dims, 6)])
    family(
        "cs_tickets_awaiting_first_response",
        "gauge",
        [(f'{dims},sla_state="{s}"', n) for s, n in (("ok", 2), ("at_risk", 1), ("breached", 1))],
    )
    family(
        "cs_oldest_awaiting_first_response_opened_timestamp_seconds",
        "gauge",
        [(dims, started - OLDEST_WAIT_S)],
    )
    elapsed = now - started
    family(
        "cs_events_total",
        "counter",
        [
            ('topic="cs.ticket.opened",outcome="accepted"', int(20 * elapsed)),
            ('topic="cs.ticket.opened",outcome="rejected"', int(elapsed)),
        ],
    )
    family(
        "cs_events_rejected_total",
        "counter",
        [('topic="cs.ticket.opened",reason="invalid_json"', int(elapsed))],
    )
    family(
        "cs_consumer_lag_messages",
        "gauge",
        [(f'topic="cs.ticket.opened",partition="{p}"', 3) for p in (worker, worker + 2)],
    )
    family("cs_partitions_assigned", "gauge", [("", 4)])
    family("cs_kpi_partitions_covered", "gauge", [("", 8)])
    family("cs_kpi_partitions_expected", "gauge", [("", 8)])
    family("cs_last_event_processed_timestamp_seconds", "gauge", [("", now)])
    family("cs_last_event_occurred_timestamp_seconds", "gauge", [("", now - 1)])
    return "\n".join(lines).replace("{}", "") + "\n"


class StandinWorker:
    """HTTP server answering /metrics with standin_metrics()."""

    def __init__(self, worker: int, started: float) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = standin_metrics(worker, started, time.time()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.target = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def stack(
    prometheus_factory: Callable[[list[str]], Prometheus],
) -> Iterator[tuple[Prometheus, float]]:
    """Prometheus scraping two stand-in workers; yields it and its start time."""
    started = time.time()
    workers = [StandinWorker(n, started) for n in (1, 2)]
    try:
        prometheus = prometheus_factory([w.target for w in workers])
        prometheus.wait_for_targets_up(2)
        yield prometheus, started
    finally:
        for worker in workers:
            worker.stop()


def test_urgent_breach_alert_reaches_the_webhook_with_labels_and_annotations(
    stack: tuple[Prometheus, float], webhook_receiver: WebhookReceiver
) -> None:
    _, started = stack
    pending_s = urgent_breach_for_seconds()
    alert = webhook_receiver.wait_for_alert(
        "CSFirstResponseSLABreached", timeout=pending_s + 30, queue="billing", priority="urgent"
    )
    delivered_after = time.time() - started

    assert alert["labels"] == {
        "alertname": "CSFirstResponseSLABreached",
        "queue": "billing",
        "priority": "urgent",
        "severity": "page",
        "team": "cs-operations",
    }
    annotations = alert["annotations"]
    # One breached ticket on each stand-in worker: the rule sums them.
    assert annotations["summary"] == "Urgent tickets past first-response SLA in queue billing: 2"
    assert re.search(r"The oldest has waited 2\dm( \d+s)?\.$", annotations["description"])
    assert annotations["runbook_url"] == "deploy/RUNBOOK.md#csfirstresponseslabreached"
    assert pending_s <= delivered_after < pending_s + 30, delivered_after
    print(f"urgent breach alert delivered {delivered_after:.1f}s after the stack started")


def test_every_rule_evaluates_without_error_and_records_data(
    stack: tuple[Prometheus, float],
) -> None:
    prometheus, _ = stack
    rules = [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]
    records = [rule["record"] for rule in rules if "record" in rule]
    wait_until(
        lambda: all(prometheus.query(f"count({name})") for name in records),
        timeout=30,
        what="every recording rule to have data",
    )
    groups = prometheus.api("rules")["data"]["groups"]
    unhealthy = [
        (rule["name"], rule.get("lastError"))
        for group in groups
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    assert not unhealthy
    assert sum(len(group["rules"]) for group in groups) == len(rules)


def test_every_dashboard_query_parses_and_returns_data(stack: tuple[Prometheus, float]) -> None:
    prometheus, _ = stack
    board = dashboard.load()
    queries = dashboard.panel_queries(board)
    # rate() needs two scrapes in its range; recording rules one evaluation.
    wait_until(
        lambda: prometheus.query("topic_outcome:cs_events:rate5m"), 30, "event rates recorded"
    )
    empty = [title for title, expr in queries if not prometheus.query(expr)]
    assert not empty, f"no data for: {empty}"
    for name, selector in dashboard.variable_queries(board):
        assert prometheus.query(selector), f"variable {name} would have no values"
    print(f"{len(queries)} dashboard queries returned data")


def test_grafana_alert_queries_parse(stack: tuple[Prometheus, float]) -> None:
    prometheus, _ = stack
    path = dashboard.REPO / "deploy" / "grafana" / "provisioning" / "alerting" / "kpi-stream.yml"
    rules = [
        rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
    ]
    for rule in rules:
        query = next(d for d in rule["data"] if d["datasourceUid"] != "__expr__")
        prometheus.query(query["model"]["expr"])  # raises if Prometheus rejects it
    urgent = next(r for r in rules if r["title"] == "CSFirstResponseSLABreached urgent")
    assert prometheus.query(urgent["data"][0]["model"]["expr"])  # the breach the stand-in shows
