"""The web layer end to end: real workers with a cluster token against the real broker.

What workers ask each other needs the token; a peer's out-of-range clock is refused with
400 and changes nothing; two workers with the token still agree with `kpi-stream report`.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from tests.integration.eventsets import mixed
from tests.integration.worker_harness import (
    Scenario,
    Worker,
    assert_same,
    now_ms,
    scrape_matching_report,
    wait_processed,
)

TOKEN = "cluster-s3cret"


def status(worker: Worker, path: str, token: str | None = None) -> int:
    request = urllib.request.Request(f"{worker.url}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_peer_endpoint_needs_the_token_and_a_far_future_clock_changes_nothing(
    scenario: Scenario, workers: list[Worker]
) -> None:
    events = mixed(now_ms(), seed=11)
    worker = Worker(scenario, extra_env={"KPI_CLUSTER_TOKEN": TOKEN}).start()
    workers.append(worker)
    worker.wait_ready()
    scenario.produce(events.messages)
    wait_processed([worker], len(events.messages))

    now = now_ms()
    assert status(worker, f"/internal/snapshot?now_ms={now}") == 401
    assert status(worker, f"/internal/snapshot?now_ms={now}", "wrong") == 401
    assert status(worker, f"/internal/snapshot?now_ms={now}", TOKEN) == 200
    for attack in ("253402300799999", "-1", "99999999999999999999999", "1e12"):
        assert status(worker, f"/internal/snapshot?now_ms={attack}", TOKEN) == 400, attack
    scraped, expected = scrape_matching_report(worker, events.report_lines, scenario.workdir)
    assert any(name == "cs_first_responses" for name, _ in expected)
    assert_same(scraped, expected)


def test_two_workers_with_a_token_serve_complete_gauges(
    scenario: Scenario, workers: list[Worker]
) -> None:
    events = mixed(now_ms(), seed=12)
    env = {"KPI_CLUSTER_TOKEN": TOKEN}
    first = Worker(scenario, "w1", extra_env=env).start()
    second = Worker(scenario, "w2", extra_env=env).start()
    workers.extend([first, second])
    first.wait_ready()
    second.wait_ready()
    deadline = time.monotonic() + 60
    while len(first.ready_partitions()) + len(second.ready_partitions()) != scenario.partitions:
        assert time.monotonic() < deadline, "partitions not split"
        time.sleep(0.5)
    scenario.produce(events.messages)
    wait_processed([first, second], len(events.messages))
    for worker in (first, second):
        covered = worker.metrics()["cs_kpi_partitions_covered", ()]
        assert covered == scenario.partitions, "a peer refused the token"
        assert worker.api()["complete"] is True
