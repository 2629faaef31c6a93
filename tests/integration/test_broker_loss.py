"""A worker when the broker goes away and comes back, and when it is never there."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from kpi_devtools.broker.harness import LocalBroker, free_ports
from stream.kpi.windows import from_ms
from tests.integration.eventsets import mixed
from tests.integration.worker_harness import (
    Scenario,
    Worker,
    assert_same,
    kpi_samples,
    report,
    wait_caught_up,
)

READY_WITHIN_S = 30.0  # contract section 6
LOG_WINDOW_S = 10.0


@pytest.fixture
def own_broker(kafka_libs: Path, tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of this test only, on fixed ports, so that it can be stopped and restarted."""
    port, controller = free_ports(2)
    broker = LocalBroker(tmp_path / "broker", port=port, controller_port=controller)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_readiness_follows_the_broker_and_nothing_is_lost_across_its_restart(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    scenario = Scenario(own_broker.bootstrap, tmp_path)
    scenario.create_topics()
    events = mixed(now_ms(), seed=6)
    half = len(events.messages) // 2
    worker = Worker(scenario).start()
    try:
        worker.wait_ready()
        scenario.produce(events.messages[:half])
        wait_caught_up([worker])

        own_broker.stop()
        lost_at = time.monotonic()
        log_lines_before = len(worker.log_path.read_text().splitlines())
        while worker.status("/readyz") != 503:
            assert time.monotonic() - lost_at < READY_WITHIN_S, "/readyz still 200"
            time.sleep(0.5)
        api = worker.api()
        assert (api["stale"], api["stale_reason"]) == (True, "broker_unreachable")
        time.sleep(max(0.0, lost_at + 35 - time.monotonic()))  # 35 s without a broker
        outage_s = time.monotonic() - lost_at
        outage_log = worker.log_path.read_text().splitlines()[log_lines_before:]

        own_broker.start()
        scenario.produce(events.messages[half:])
        worker.wait_ready(timeout_s=90)
        wait_caught_up([worker])
        api = worker.api()
        assert (api["stale"], api["stale_reason"]) == (False, None)
        before = now_ms()
        scraped = kpi_samples(worker.metrics())
        expected = report(events.report_lines, _rfc3339(before), scenario.workdir)
        assert_same(scraped, expected)
    finally:
        worker.kill()

    # Every kind of warning or error at most once per 10 s (a few more at the edges).
    causes = Counter(_cause(line) for line in outage_log if re.search(r" (WARNING|ERROR) ", line))
    allowed = outage_s / LOG_WINDOW_S + 2
    assert causes, "the lost broker was not logged at all"
    assert max(causes.values()) <= allowed, causes.most_common(5)


def _cause(line: str) -> str:
    """The logger and message of a log line, with numbers (ports, counts) left out."""
    message = line.split(" ", 3)[3]
    return re.sub(r"\d+", "#", message)[:60]


def _rfc3339(ms: int) -> str:
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_an_unreachable_broker_at_start_is_one_line_naming_kpi_broker_and_exit_1(
    tmp_path: Path,
) -> None:
    (port,) = free_ports(1)
    env = {"KPI_BROKER": f"kafka://127.0.0.1:{port}", "KPI_WEB_PORT": str(free_ports(1)[0])}
    done = subprocess.run(
        [sys.executable, "-m", "stream", "worker"],
        env={**_base_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    problems = [line for line in done.stderr.splitlines() if re.search(r" (ERROR|CRITICAL) ", line)]
    assert len(problems) == 1, done.stderr
    assert f"KPI_BROKER=kafka://127.0.0.1:{port}" in problems[0]


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}


def test_the_api_says_the_data_is_fresh_while_the_worker_keeps_up(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    scenario = Scenario(kafka_bootstrap, tmp_path)
    scenario.create_topics()
    worker = Worker(scenario).start()
    try:
        worker.wait_ready()
        event = {"event_id": "f-1", "type": "ticket.opened", "ticket_id": "F-1",
                 "occurred_at": now_ms(), "queue": "q", "channel": "web", "priority": "low"}  # fmt: skip
        scenario.produce([("cs.ticket.opened", b"F-1", orjson.dumps(event))])
        wait_caught_up([worker])
        api = worker.api()
        assert (api["stale"], api["stale_reason"]) == (False, None)
    finally:
        worker.kill()
