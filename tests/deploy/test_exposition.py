"""`promtool check metrics` on a real worker's whole /metrics: tickets, contacts, agents
(per-agent series on), pipeline health. Every remaining warning is one the README
justifies (section "Metrics": the windowed histograms are gauges by contract)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prom_harness import require_binary

from tests.integration.worker_harness import (
    Scenario,
    Worker,
    consumed,
    simulate_backfill,
    wait_processed,
)

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]
REPO = Path(__file__).resolve().parents[2]

# (metric, promtool's complaint) that the README explains; nothing else may appear.
JUSTIFIED = {
    ("cs_first_response_seconds_bucket", 'non-histogram metrics should not have "_bucket" suffix'),
    ("cs_first_response_seconds_bucket", 'non-histogram metrics should not have "le" label'),
    ("cs_first_response_seconds_sum", 'non-histogram and non-summary metrics should not have "_sum" suffix'),
    ("cs_resolution_seconds_bucket", 'non-histogram metrics should not have "_bucket" suffix'),
    ("cs_resolution_seconds_bucket", 'non-histogram metrics should not have "le" label'),
    ("cs_resolution_seconds_sum", 'non-histogram and non-summary metrics should not have "_sum" suffix'),
    # Contract section 9 names it: the replies of the window's resolutions, a windowed sum.
    ("cs_resolution_replies_sum", 'non-histogram and non-summary metrics should not have "_sum" suffix'),
}  # fmt: skip
# Every `..._sum` additive component (contract sections 5, 7, 8, 9: `_seconds_sum`,
# `cs_resolution_replies_sum`) is a windowed sum, a gauge; promtool flags the suffix. Also
# under the `cs_by_agent_` prefix.
SUM_SUFFIX = 'non-histogram and non-summary metrics should not have "_sum" suffix'
SUMS = re.compile(r"cs_(by_agent_)?[a-z_]+_sum")


def warnings(exposition: str) -> set[tuple[str, str]]:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = set()
    for line in (result.stdout + result.stderr).splitlines():
        metric, _, problem = line.strip().partition(" ")
        if metric:
            found.add((metric, problem))
    return found


@pytest.fixture
def worker(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Worker]:
    scenario = Scenario(kafka_bootstrap, tmp_path)
    asyncio.run(asyncio.to_thread(scenario.create_topics))
    sent = simulate_backfill(scenario, 3)
    started = Worker(scenario, extra_env={"KPI_AGENT_METRICS": "true"}).start()
    started.wait_ready()
    wait_processed([started], consumed(started, sent, scenario), timeout_s=180)
    yield started
    started.kill()


def test_full_exposition_passes_promtool_but_for_the_justified_warnings(worker: Worker) -> None:
    deadline = time.monotonic() + 30
    exposition = worker.get("/metrics").decode()
    while "cs_consumer_lag_messages{" not in exposition and time.monotonic() < deadline:
        time.sleep(1)  # lag is exported once the broker's high watermarks were read
        exposition = worker.get("/metrics").decode()
    families = set(re.findall(r"^# TYPE (\S+) ", exposition, re.MULTILINE))
    # The exposition is full: ticket, contact, agent, per-agent and health families.
    assert {
        "cs_first_response_seconds_bucket",
        "cs_resolution_seconds_sum",
        "cs_nps_responses",
        "cs_events_total",
        "cs_consumer_lag_messages",
        "cs_kpi_partitions_expected",
    } <= families, sorted(families)
    found = warnings(exposition)
    sums = {(m, p) for m, p in found if p == SUM_SUFFIX and SUMS.fullmatch(m)}
    assert found - sums <= JUSTIFIED, sorted(found - sums - JUSTIFIED)
    assert not any("_total" in problem for _, problem in found)
    # promtool's output was read: the known warnings of the windowed buckets are there.
    assert (
        "cs_first_response_seconds_bucket",
        'non-histogram metrics should not have "le" label',
    ) in found
    assert ("cs_resolution_seconds_sum", SUM_SUFFIX) in sums
