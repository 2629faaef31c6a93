"""Contract section 3: SLA targets, breaches and the live state of unanswered tickets."""

from __future__ import annotations

import pytest
from kpi_helpers import SECOND

from stream.kpi.sla import SlaPolicy

CONTRACT_TARGETS = [
    # priority, first response (s), resolution (s)
    ("urgent", 900, 14400),
    ("high", 3600, 86400),
    ("normal", 14400, 259200),
    ("low", 86400, 604800),
]


@pytest.mark.parametrize(("priority", "first_response_s", "resolution_s"), CONTRACT_TARGETS)
def test_default_targets_are_the_contract_table(
    priority: str, first_response_s: int, resolution_s: int
) -> None:
    policy = SlaPolicy()
    assert policy.first_response_ms[priority] == first_response_s * SECOND
    assert policy.resolution_ms[priority] == resolution_s * SECOND
    assert policy.at_risk_fraction == 0.25


@pytest.mark.parametrize(("priority", "first_response_s", "resolution_s"), CONTRACT_TARGETS)
@pytest.mark.parametrize(
    ("over_target_ms", "breached"),
    [
        pytest.param(-60_000, False, id="a-minute-under"),
        pytest.param(0, False, id="exactly-target"),
        pytest.param(1, True, id="1ms-over"),
        pytest.param(3_600_000, True, id="an-hour-over"),
    ],
)
def test_breach_only_when_strictly_above_target(
    priority: str, first_response_s: int, resolution_s: int, over_target_ms: int, breached: bool
) -> None:
    policy = SlaPolicy()
    assert policy.first_response_breached(priority, first_response_s * SECOND + over_target_ms) is (
        breached
    )
    assert policy.resolution_breached(priority, resolution_s * SECOND + over_target_ms) is breached


def test_zero_time_never_breaches() -> None:
    policy = SlaPolicy()
    for priority, _, _ in CONTRACT_TARGETS:
        assert not policy.first_response_breached(priority, 0)
        assert not policy.resolution_breached(priority, 0)


NOW = 1_795_341_630_000


@pytest.mark.parametrize(
    ("priority", "fraction", "waited_ms", "state"),
    [
        # urgent: target 900 s, at risk in the last 25 % = from 675 s
        pytest.param("urgent", 0.25, 0, "ok", id="urgent-just-opened"),
        pytest.param("urgent", 0.25, 674_999, "ok", id="urgent-1ms-before-at-risk"),
        pytest.param("urgent", 0.25, 675_000, "at_risk", id="urgent-enters-last-25pc"),
        pytest.param("urgent", 0.25, 899_999, "at_risk", id="urgent-1ms-before-target"),
        pytest.param("urgent", 0.25, 900_000, "at_risk", id="urgent-exactly-target"),
        pytest.param("urgent", 0.25, 900_001, "breached", id="urgent-1ms-over-target"),
        pytest.param("urgent", 0.25, -200_000, "ok", id="urgent-opened-in-the-future"),
        # low: 86400 s, at risk from 64800 s
        pytest.param("low", 0.25, 64_799_999, "ok", id="low-before-at-risk"),
        pytest.param("low", 0.25, 64_800_000, "at_risk", id="low-at-risk"),
        pytest.param("low", 0.25, 86_400_001, "breached", id="low-breached"),
        # configured fraction: high 3600 s, fraction 0.5 -> at risk from 1800 s
        pytest.param("high", 0.5, 1_799_999, "ok", id="half-fraction-before"),
        pytest.param("high", 0.5, 1_800_000, "at_risk", id="half-fraction-at-risk"),
        pytest.param("high", 0.1, 3_239_999, "ok", id="tenth-fraction-before"),
        pytest.param("high", 0.1, 3_240_000, "at_risk", id="tenth-fraction-at-risk"),
        pytest.param("normal", 0.25, 14_400_001, "breached", id="normal-breached"),
    ],
)
def test_awaiting_state_by_time_waited(
    priority: str, fraction: float, waited_ms: int, state: str
) -> None:
    policy = SlaPolicy(at_risk_fraction=fraction)
    assert policy.awaiting_state(priority, NOW - waited_ms, NOW) == state


@pytest.mark.parametrize("priority", ["low", "normal", "high", "urgent"])
def test_awaiting_state_follows_the_contract_formula_around_each_edge(priority: str) -> None:
    policy = SlaPolicy()
    target = policy.first_response_ms[priority]
    for edge in (0, target * 3 // 4, target):
        for waited in range(edge - 3, edge + 4):
            if waited > target:
                expected = "breached"
            elif waited >= target * 0.75:
                expected = "at_risk"
            else:
                expected = "ok"
            assert policy.awaiting_state(priority, NOW - waited, NOW) == expected, waited


def test_configured_targets_are_used_per_priority() -> None:
    policy = SlaPolicy(
        first_response_ms={"urgent": 60_000, "high": 1, "normal": 2, "low": 3},
        resolution_ms={"urgent": 120_000, "high": 1, "normal": 2, "low": 3},
    )
    assert policy.first_response_breached("urgent", 60_001)
    assert not policy.first_response_breached("urgent", 60_000)
    assert policy.resolution_breached("urgent", 120_001)
    assert policy.awaiting_state("urgent", NOW - 60_001, NOW) == "breached"
    assert policy.awaiting_state("urgent", NOW - 45_000, NOW) == "at_risk"
