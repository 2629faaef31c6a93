"""One set of KPI levels everywhere: the policy file -> wallboard colours (the worker's
parsed thresholds, served in /api/kpis), alert rules, SLO burn-rate alerts, the Grafana
dashboard and the Kubernetes ConfigMap. Expected values are written out here."""

from __future__ import annotations

import json
from typing import Any

import yaml
from prom_harness import REPO, load_rules_generator

from stream.config import load_kpi_config
from stream.kpi.settings import KpiConfig

POLICY = REPO / "deploy" / "policy.toml"
# The levels chosen in docs/decisions/thresholds.md.
LEVELS = {
    "first_response_time_average_seconds": ("lower_is_better", 900, 3600),
    "resolution_time_average_seconds": ("lower_is_better", 14400, 86400),
    "first_response_sla_attainment_ratio": ("higher_is_better", 0.9, 0.8),
    "resolution_sla_attainment_ratio": ("higher_is_better", 0.9, 0.8),
    "csat_ratio": ("higher_is_better", 0.85, 0.8),
    "nps_score": ("higher_is_better", 30, 20),
    "contact_service_level_ratio": ("higher_is_better", 0.9, 0.8),
    "contact_abandonment_ratio": ("lower_is_better", 0.05, 0.1),
    "contact_longest_wait_seconds": ("lower_is_better", 60, 120),
    "occupancy_ratio": ("lower_is_better", 0.85, 0.9),
}
EXPECTED = {k: {"direction": d, "green": g, "amber": a} for k, (d, g, a) in LEVELS.items()}


def generated(policy_text: str | None = None, tmp_path: Any = None) -> dict[str, Any]:
    """Alert rules (by name and severity) and dashboard panels (by title), as generated."""
    generator = load_rules_generator()
    cfg = yaml.safe_load(generator.THRESHOLDS.read_text())
    policy = generator.policy_thresholds()
    if policy_text is not None:
        path = tmp_path / "policy.toml"
        path.write_text(policy_text)
        policy = generator.policy_thresholds(path)
    files = generator.render(cfg, policy)
    alerts = {
        (rule["alert"], rule["labels"]["severity"]): rule["expr"]
        for group in yaml.safe_load(files[generator.ALERT_RULES])["groups"]
        for rule in group["rules"]
    }
    dashboard = json.loads(files[generator.DASHBOARD])
    panels = {
        p["title"]: [
            (s["color"], s["value"]) for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]
        ]
        for p in dashboard["panels"]
        if "thresholds" in p.get("fieldConfig", {}).get("defaults", {})
    }
    return {"alerts": alerts, "panels": panels}


def test_the_worker_colours_the_wallboard_with_the_chosen_levels() -> None:
    assert load_kpi_config(POLICY).thresholds == EXPECTED
    assert KpiConfig().thresholds == EXPECTED  # no policy file: the same levels


def test_alerts_fire_below_amber_and_burn_rates_use_green_as_objective() -> None:
    alerts = generated()["alerts"]
    csat = alerts["CSCSATLow", "ticket"]
    assert csat.startswith('queue_window:cs_csat:ratio{window="24h"} < 0.8\n')
    assert alerts["CSNPSLow", "ticket"].startswith('queue_window:cs_nps:score{window="24h"} < 20\n')
    assert " < 0.8\n" in alerts["CSFirstResponseSLAAttainmentLow", "ticket"]
    assert " < 0.8\n" in alerts["CSResolutionSLAAttainmentLow", "ticket"]
    assert alerts["CSContactServiceLevelLow", "page"].startswith(
        'queue_window:cs_contact_service_level:ratio{window="1h"} < 0.8\n'
    )
    assert alerts["CSContactAbandonmentHigh", "ticket"].startswith(
        'queue_window:cs_contact_abandonment:ratio{window="1h"} > 0.1\n'
    )
    assert alerts["CSContactLongestWaitHigh", "page"] == (
        "queue:cs_contact_longest_wait_seconds:max > 120"
    )
    assert (
        'team_window:cs_agent_occupancy:ratio{window="1h"} > 0.9\n'
        in (alerts["CSAgentOccupancyHigh", "ticket"])
    )
    page = alerts["CSFirstResponseSLABurnRate", "page"]
    assert page.splitlines()[0] == (
        '(1 - window:cs_first_response_sla_attainment:ratio{window="1h"}) > (6 * 0.1)'
    )
    ticket = alerts["CSResolutionSLABurnRate", "ticket"]
    assert ticket.splitlines()[0] == (
        '(1 - window:cs_resolution_sla_attainment:ratio{window="24h"}) > (3 * 0.1)'
    )


def test_dashboard_colours_are_the_wallboard_levels() -> None:
    panels = generated()["panels"]
    assert panels["CSAT"] == [("red", None), ("yellow", 0.8), ("green", 0.85)]
    assert panels["CSAT by queue"] == [("red", None), ("yellow", 0.8), ("green", 0.85)]
    assert panels["NPS"] == [("red", None), ("yellow", 20), ("green", 30)]
    assert panels["First-response SLA attainment"] == [
        ("red", None),
        ("yellow", 0.8),
        ("green", 0.9),
    ]
    assert panels["First response time (mean)"] == [
        ("green", None),
        ("yellow", 900),
        ("red", 3600),
    ]
    assert panels["Service level by queue"] == [("red", None), ("yellow", 0.8), ("green", 0.9)]
    assert panels["Abandonment by queue"] == [("green", None), ("yellow", 0.05), ("red", 0.1)]
    assert panels["Longest wait"] == [("green", None), ("yellow", 60), ("red", 120)]
    assert panels["Longest wait by queue"] == [("green", None), ("yellow", 60), ("red", 120)]
    assert panels["Agent occupancy by team ($window)"] == [
        ("green", None),
        ("yellow", 0.85),
        ("red", 0.9),
    ]
    assert panels["Resolution time by queue"] == [
        ("green", None),
        ("yellow", 14400),
        ("red", 86400),
    ]


def test_one_edit_of_the_policy_file_moves_alerts_and_dashboard_together(tmp_path) -> None:
    text = POLICY.read_text().replace(
        "[thresholds.csat_ratio]\ngreen = 0.85\namber = 0.8",
        "[thresholds.csat_ratio]\ngreen = 0.95\namber = 0.7",
    )
    assert text != POLICY.read_text()
    after = generated(text, tmp_path)
    assert after["alerts"]["CSCSATLow", "ticket"].startswith(
        'queue_window:cs_csat:ratio{window="24h"} < 0.7\n'
    )
    assert after["panels"]["CSAT"] == [("red", None), ("yellow", 0.7), ("green", 0.95)]
    policy = (tmp_path / "policy.toml").read_text()
    assert load_kpi_config(tmp_path / "policy.toml").thresholds["csat_ratio"] == {
        "direction": "higher_is_better",
        "green": 0.95,
        "amber": 0.7,
    }
    assert "green = 0.95" in policy


def test_longest_wait_and_occupancy_levels_come_from_the_policy_file(tmp_path) -> None:
    """They lived in thresholds.yml; now one edit of the policy file moves both alerts and
    the dashboard colours (and the wallboard's, through the worker's thresholds)."""
    text = (
        POLICY.read_text()
        .replace(
            "[thresholds.contact_longest_wait_seconds]  # the longest-waiting contact of a queue, "
            "live\ngreen = 60\namber = 120",
            "[thresholds.contact_longest_wait_seconds]\ngreen = 30\namber = 90",
        )
        .replace(
            "[thresholds.occupancy_ratio]   # (busy + after-contact work) / ready time; lower is "
            "better\ngreen = 0.85\namber = 0.9",
            "[thresholds.occupancy_ratio]\ngreen = 0.8\namber = 0.88",
        )
    )
    assert text.count("amber = 90") == 1 and text.count("amber = 0.88") == 1
    after = generated(text, tmp_path)
    assert after["alerts"]["CSContactLongestWaitHigh", "page"] == (
        "queue:cs_contact_longest_wait_seconds:max > 90"
    )
    assert "> 0.88\n" in after["alerts"]["CSAgentOccupancyHigh", "ticket"]
    assert after["panels"]["Longest wait"] == [("green", None), ("yellow", 30), ("red", 90)]
    assert after["panels"]["Agent occupancy by team ($window)"] == [
        ("green", None),
        ("yellow", 0.8),
        ("red", 0.88),
    ]
    levels = load_kpi_config(tmp_path / "policy.toml").thresholds
    assert (
        levels["contact_longest_wait_seconds"]["amber"],
        levels["occupancy_ratio"]["amber"],
    ) == (
        90,
        0.88,
    )
    assert "120" not in (REPO / "deploy" / "prometheus" / "thresholds.yml").read_text()


def test_kubernetes_mounts_the_same_policy_file() -> None:
    (configmap,) = yaml.safe_load_all((REPO / "deploy" / "k8s" / "policy.yaml").read_text())
    assert configmap["metadata"]["name"] == "kpi-stream-sla"
    assert configmap["data"]["sla.toml"] == POLICY.read_text()
