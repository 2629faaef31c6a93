"""Contract section 10 end to end (batch path): per-queue policies on business hours.

The calendar is Stockholm office hours, Mon-Fri 08:00-17:00, holiday 2026-12-24;
2026-11-27 is a Friday, 2026-11-30 a Monday. Every expected value is worked out by hand.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from kpi_helpers import HOUR, MINUTE, dims, exported, first_reply, key, opened, report, resolved
from kpi_helpers import utc_ms as at

from kpi_devtools.demo import DEMO_POLICY
from stream.config import load_kpi_config, parse_kpi_config
from stream.kpi.settings import KpiConfig

POLICY_FILE = {
    "calendars": {
        "office": {
            "timezone": "Europe/Stockholm",
            **{d: ["08:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            "holidays": ["2026-12-24"],
        }
    },
    "policies": [
        {
            "queues": ["billing"],
            "calendar": "office",
            "first_response_seconds": {"urgent": 3600},
            "resolution_seconds": {"urgent": 4 * 3600},
        },
        {"first_response_seconds": {"urgent": 1234}},
    ],
}


def config() -> KpiConfig:
    return parse_kpi_config(POLICY_FILE)


BILLING = dims("billing", "email", "urgent")
SALES = dims("sales", "email", "urgent")


@pytest.mark.parametrize(
    ("reply_at", "breaches"),
    [
        # Friday 16:30 -> 17:00 is 30 min; Monday 08:00 -> 08:30 another 30: exactly 1 h.
        pytest.param("2026-11-30T08:30:00+01:00", 0, id="business-time-exactly-target"),
        pytest.param("2026-11-30T08:30:01+01:00", 1, id="one-second-over"),
        pytest.param("2026-11-28T12:00:00+01:00", 0, id="saturday-reply-30min-business"),
    ],
)
def test_first_response_breach_counts_business_time(reply_at: str, breaches: int) -> None:
    opened_at = at("2026-11-27T16:30:00+01:00")
    result = report(
        [opened("t", opened_at, priority="urgent"), first_reply("t", reply_at)],
        now=at(reply_at) + HOUR,
        config=config(),
    )
    metrics = exported(result)
    # The average stays in calendar time.
    calendar_s = (at(reply_at) - opened_at) / 1000
    assert metrics[key("cs_first_response_seconds_sum", window="24h", **BILLING)] == calendar_s
    assert metrics[key("cs_first_response_sla_breaches", window="24h", **BILLING)] == breaches
    assert metrics[key("cs_first_response_sla_attainment_ratio", window="24h")] == 1 - breaches


def test_histogram_stays_in_calendar_time_and_has_every_policy_target() -> None:
    now = at("2026-11-30T12:00:00+01:00")
    events = [
        opened("t", "2026-11-27T16:30:00+01:00", priority="urgent"),
        first_reply("t", "2026-11-30T08:30:00+01:00"),  # 64 h calendar time, 1 h business
    ]
    metrics = exported(report(events, now=now, config=config()))
    bucket = "cs_first_response_seconds_bucket"
    assert metrics[key(bucket, window="24h", le="1234", **BILLING)] == 0  # default policy target
    assert metrics[key(bucket, window="24h", le="86400", **BILLING)] == 0
    assert metrics[key(bucket, window="24h", le="259200", **BILLING)] == 1
    assert metrics[key(bucket, window="24h", le="+Inf", **BILLING)] == 1


def test_resolution_breach_counts_business_time_over_a_holiday() -> None:
    # Wed 23rd 15:00 -> 17:00 (2 h), Thu 24th holiday, Fri 25th 08:00 -> 10:00 (2 h): 4 h.
    events = [
        opened("t", "2026-12-23T15:00:00+01:00", priority="urgent"),
        first_reply("t", "2026-12-23T15:10:00+01:00"),
        resolved("t", "2026-12-25T10:00:00+01:00"),
        opened("u", "2026-12-23T15:00:00+01:00", priority="urgent"),
        first_reply("u", "2026-12-23T15:10:00+01:00"),
        resolved("u", "2026-12-25T10:01:00+01:00"),
    ]
    metrics = exported(report(events, now=at("2026-12-25T12:00:00+01:00"), config=config()))
    assert metrics[key("cs_resolutions", window="24h", **BILLING)] == 2
    assert metrics[key("cs_resolution_sla_breaches", window="24h", **BILLING)] == 1
    assert (
        metrics[key("cs_resolution_seconds_sum", window="24h", **BILLING)]
        == (2 * (43 * HOUR) + MINUTE) / 1000
    )


@pytest.mark.parametrize(
    ("now", "state"),
    [
        # Opened Saturday 10:00: the clock starts Monday 08:00; target 1 h, at risk from 45 min.
        pytest.param("2026-11-30T07:59:59+01:00", "ok", id="weekend-ok"),
        pytest.param("2026-11-30T08:44:59.999+01:00", "ok", id="just-before-at-risk"),
        pytest.param("2026-11-30T08:45:00+01:00", "at_risk", id="at-risk-at-45min"),
        pytest.param("2026-11-30T09:00:00+01:00", "at_risk", id="exactly-target"),
        pytest.param("2026-11-30T09:00:00.001+01:00", "breached", id="breached-1ms-later"),
    ],
)
def test_live_state_moves_with_the_business_clock(now: str, state: str) -> None:
    events = [opened("t", "2026-11-28T10:00:00+01:00", priority="urgent")]
    metrics = exported(report(events, now=at(now), config=config()))
    for candidate in ("ok", "at_risk", "breached"):
        sample = key("cs_tickets_awaiting_first_response", sla_state=candidate, **BILLING)
        assert metrics[sample] == (candidate == state), candidate
    oldest = key("cs_oldest_awaiting_first_response_opened_timestamp_seconds", **BILLING)
    assert metrics[oldest] == at("2026-11-28T10:00:00+01:00") / 1000


def test_queue_without_a_policy_takes_the_default_policy_in_calendar_time() -> None:
    # Default policy: urgent 1234 s, 24/7. Saturday 10:00 + 1234 s = 10:20:34.
    events = [opened("t", "2026-11-28T10:00:00+01:00", queue="sales", priority="urgent")]
    metrics = exported(report(events, now=at("2026-11-28T10:20:35+01:00"), config=config()))
    assert metrics[key("cs_tickets_awaiting_first_response", sla_state="breached", **SALES)] == 1


def test_without_a_default_policy_other_queues_get_the_top_level_targets() -> None:
    only_billing = {**POLICY_FILE, "policies": POLICY_FILE["policies"][:1]}
    events = [opened("t", "2026-11-28T10:00:00+01:00", queue="sales", priority="urgent")]
    now = at("2026-11-28T10:15:00+01:00")  # top-level urgent target: 900 s, 24/7
    metrics = exported(report(events, now=now, config=parse_kpi_config(only_billing)))
    assert metrics[key("cs_tickets_awaiting_first_response", sla_state="at_risk", **SALES)] == 1
    later = exported(report(events, now=now + 1, config=parse_kpi_config(only_billing)))
    assert later[key("cs_tickets_awaiting_first_response", sla_state="breached", **SALES)] == 1


def test_the_demo_policy_file_has_a_calendar_and_two_queue_policies() -> None:
    config = load_kpi_config(DEMO_POLICY, ZoneInfo("UTC"))
    office = config.calendars["stockholm-office"]
    assert office.timezone == ZoneInfo("Europe/Stockholm")
    vip, billing, other = (config.sla.for_queue(q) for q in ("vip", "billing", "returns"))
    assert vip.calendar is office and billing.calendar is office and other.calendar is None
    assert vip.first_response_ms["urgent"] == 600_000
    assert billing.first_response_ms == config.sla.first_response_ms
    assert other.first_response_ms["low"] == 172_800_000
    # Friday 2026-11-27 15:00 -> Monday 09:00 in office hours: Fri 15-16, Mon 08-09.
    assert billing.elapsed_ms(at("2026-11-27T15:00:00+01:00"), at("2026-11-30T09:00:00+01:00")) == (
        2 * HOUR
    )
