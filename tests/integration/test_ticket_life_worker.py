"""Contract sections 9 and 10 on a real broker: replies, reopens and business-hours
policies give the same numbers in the streaming worker as in `kpi-stream report`."""

from __future__ import annotations

from tests.integration.eventsets import business_hours_policy, ticket_lives
from tests.integration.worker_harness import (
    Scenario,
    Worker,
    assert_same,
    now_ms,
    scrape_matching_report,
    wait_processed,
)


def test_replies_reopens_and_business_hours_match_the_batch_report(
    scenario: Scenario, workers: list[Worker]
) -> None:
    started = now_ms()
    policy = scenario.write_sla_config(business_hours_policy(started))
    events = ticket_lives(started, seed=9)
    worker = Worker(scenario).start()
    workers.append(worker)
    worker.wait_ready()
    scenario.produce(events.messages)
    wait_processed([worker], len(events.messages))
    scraped, expected = scrape_matching_report(
        worker, events.report_lines, scenario.workdir, policy
    )
    reopened = sum(v for (n, _), v in expected.items() if n == "cs_resolutions_reopened")
    assert reopened > 0, "the event set shows no reopened resolution"
    assert any(n == "cs_one_touch_resolution_ratio" for n, _ in expected)
    assert_same(scraped, expected)
