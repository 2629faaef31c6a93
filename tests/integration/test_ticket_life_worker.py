"""Contract sections 9 and 10 on a real broker: replies, reopens and business-hours
policies give the same numbers in the streaming worker as in `kpi-stream report`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.kpi.windows import bucket, from_ms
from tests.integration.eventsets import business_hours_policy, ticket_lives
from tests.integration.worker_harness import (
    Scenario,
    Worker,
    assert_same,
    kpi_samples,
    report,
    wait_processed,
)


@pytest.fixture
def scenario(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Scenario]:
    scenario = Scenario(kafka_bootstrap, tmp_path)
    scenario.create_topics()
    yield scenario


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_replies_reopens_and_business_hours_match_the_batch_report(scenario: Scenario) -> None:
    started = now_ms()
    policy = scenario.write_sla_config(business_hours_policy(started))
    events = ticket_lives(started, seed=9)
    worker = Worker(scenario).start()
    try:
        worker.wait_ready()
        scenario.produce(events.messages)
        wait_processed([worker], len(events.messages))
        for _ in range(3):
            before = now_ms()
            scraped = kpi_samples(worker.metrics())
            after = now_ms()
            if bucket(before) == bucket(after):
                break
        else:
            raise AssertionError("could not scrape within one minute bucket")
        moment = from_ms(before).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        expected = report(events.report_lines, moment, scenario.workdir, policy)
    finally:
        worker.kill()
    names = {name for name, _ in expected}
    assert {"cs_resolutions_reopened", "cs_one_touch_resolution_ratio"} <= names
    reopened = sum(v for (n, _), v in expected.items() if n == "cs_resolutions_reopened")
    assert reopened > 0, "the event set shows no reopened resolution"
    assert_same(scraped, expected)
