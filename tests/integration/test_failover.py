"""Failover to warm standbys against a real broker: two workers, each keeping the other's
partitions warm (never served), events flowing, one SIGKILLed; the survivor takes the dead
worker's partitions over from its standbys (not a cold restore) and ends with `/metrics`
equal to `kpi-stream report`."""

from __future__ import annotations

import re
import time

from tests.integration.eventsets import mixed
from tests.integration.test_worker import _produce_slowly, _wait_split
from tests.integration.worker_harness import (
    Scenario,
    Worker,
    assert_same,
    now_ms,
    scrape_matching_report,
    wait_caught_up,
)

TAKEN_OVER = re.compile(
    r"partitions \[([\d, ]*)\] taken over from standby \((\d+) records; index kept for \[([\d, ]*)\]\)"
)
STANDBY_READY = re.compile(r"standby partition (\d+) ready")


def test_a_sigkilled_workers_partitions_are_taken_over_from_standbys_and_stay_exact(
    scenario: Scenario, workers: list[Worker]
) -> None:
    events = mixed(now_ms(), seed=11, tickets=600, contacts=200, agents=12)
    half = len(events.messages) // 2
    survivor, victim = (
        Worker(
            scenario, name, extra_env={"KPI_GROUP_INSTANCE_ID": name, "KPI_STANDBY_REPLICAS": "1"}
        )
        for name in ("w1", "w2")
    )
    workers.extend([survivor.start(), victim.start()])
    _wait_split(survivor, victim, partitions=scenario.partitions)
    scenario.produce(events.messages[:half])
    wait_caught_up([survivor, victim])

    owned = set(survivor.ready_partitions())
    theirs = set(victim.ready_partitions())
    deadline = time.monotonic() + 60
    while {int(p) for p in STANDBY_READY.findall(survivor.log_tail(100_000))} != theirs:
        assert time.monotonic() < deadline, survivor.log_tail()
        time.sleep(0.5)
    # Standbys are never served: each worker reports only its own partitions.
    assert owned.isdisjoint(theirs) and owned | theirs == set(range(scenario.partitions))
    assert survivor.metrics()["cs_partitions_assigned", ()] == len(owned)

    producer = _produce_slowly(scenario, events.messages[half:])
    time.sleep(1.0)
    victim.kill()
    deadline = time.monotonic() + 90
    while set(survivor.ready_partitions()) != set(range(scenario.partitions)):
        assert time.monotonic() < deadline, "the survivor did not take every partition"
        time.sleep(0.2)
    producer.join()
    wait_caught_up([survivor])

    taken = TAKEN_OVER.findall(survivor.log_tail(100_000))
    assert len(taken) == 1, survivor.log_tail()
    partitions, records, indexed = taken[0]
    assert {int(p) for p in partitions.split(", ")} == theirs
    assert {int(p) for p in indexed.split(", ")} == theirs  # no index rebuilt
    assert int(records) > 0
    scraped, expected = scrape_matching_report(survivor, events.report_lines, scenario.workdir)
    assert_same(scraped, expected)
