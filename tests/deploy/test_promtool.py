"""Prometheus rules: generated files up to date, promtool check/test, alert conventions."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prom_harness import REPO, RULE_FILES, RULES_GENERATOR, load_rules_generator, require_binary

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
UNIT_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))
RUNBOOK = REPO / "deploy" / "RUNBOOK.md"
SEVERITIES = {"page", "ticket", "info"}


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def run(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_generated_rule_files_are_up_to_date() -> None:
    result = run(sys.executable, RULES_GENERATOR, "--check")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_promtool_check_rules_accepts_every_rule_file() -> None:
    promtool = require_binary("promtool")
    result = run(promtool, "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_FILES)


@pytest.mark.prometheus
@pytest.mark.parametrize("unit_test", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(unit_test: Path) -> None:
    promtool = require_binary("promtool")
    result = run(promtool, "test", "rules", unit_test.name, cwd=unit_test.parent)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_compose_prometheus_and_alertmanager_configs_are_valid() -> None:
    promtool = require_binary("promtool")
    amtool = require_binary("amtool")
    prometheus = run(promtool, "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert prometheus.returncode == 0, prometheus.stdout + prometheus.stderr
    alertmanager = run(
        amtool, "check-config", REPO / "deploy" / "alertmanager" / "alertmanager.yml"
    )
    assert alertmanager.returncode == 0, alertmanager.stdout + alertmanager.stderr


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - silent == set(), "alerts never shown silent"


def test_every_alert_has_severity_team_annotations_and_a_runbook_section() -> None:
    anchors = {
        github_anchor(line.lstrip("#"))
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("#")
    }
    for rule in alert_rules():
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["labels"]["team"], rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        anchor = annotations["runbook_url"].rpartition("#")[2]
        assert anchor in anchors, f"{rule['alert']}: no runbook section #{anchor}"


# Each mutation weakens one guard in thresholds.yml; the unit tests must then fail,
# which shows they really check that guard.
MUTATIONS = {
    "urgent pages at once": (
        "sla_breach",
        ("awaiting_first_response_breached", "urgent", "for"),
        "0s",
    ),
    "normal needs 1 ticket": (
        "sla_breach",
        ("awaiting_first_response_breached", "normal", "min_tickets"),
        1,
    ),
    "no volume guard on FRT": ("kpi", ("first_response_sla_attainment", "min_volume"), 1),
    "no volume guard on CSAT": ("kpi", ("csat", "min_volume"), 1),
    "stall detected late": ("pipeline", ("pipeline", "stalled", "stalled_after"), "10m"),
    "no DLQ rate guard": ("pipeline", ("pipeline", "dlq", "min_per_second"), 0),
    "no volume guard on burn rate": ("slo", ("sla_burn_rate", "min_volume"), 1),
    "page tier slower": ("slo", ("sla_burn_rate", "page", "factor"), 7),
}


@pytest.mark.prometheus
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_unit_tests_fail_when_a_guard_is_weakened(mutation: str, tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    generator = load_rules_generator()
    thresholds = yaml.safe_load(generator.THRESHOLDS.read_text())
    unit_test, keys, value = MUTATIONS[mutation]
    target = thresholds
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    files = generator.render(thresholds, generator.policy_thresholds())
    (tmp_path / "rules").mkdir()
    for source in (generator.RECORDING_RULES, generator.ALERT_RULES):
        (tmp_path / "rules" / source.name).write_text(files[source])
    shutil.copytree(PROMETHEUS_DIR / "tests", tmp_path / "tests")
    result = run(promtool, "test", "rules", f"{unit_test}.test.yml", cwd=tmp_path / "tests")
    assert result.returncode != 0, f"unit tests still pass with: {mutation}"
