"""The streaming worker against a real broker, checked against `kpi-stream report`."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from stream.kpi.gauges import KPI_NAMES
from stream.kpi.types import INPUT_TOPICS
from stream.kpi.windows import bucket, from_ms
from tests.integration.eventsets import mixed
from tests.integration.worker_harness import (
    Samples,
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


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def rfc3339(ms: int) -> str:
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def scrape_matching_report(
    worker: Worker, lines: list[bytes], workdir: Path, sla_config: Path | None = None
) -> tuple[Samples, Samples]:
    """Scrape the worker and run the report at the scrape instant.

    The two must agree exactly; a scrape that straddles a minute boundary is repeated.
    """
    for _ in range(3):
        before = now_ms()
        scraped = kpi_samples(worker.metrics())
        after = now_ms()
        if bucket(before) == bucket(after):
            return scraped, report(lines, rfc3339(before), workdir, sla_config)
    raise AssertionError("could not scrape within one minute bucket")


def test_mixed_events_match_the_batch_report_and_the_dlq_holds_exactly_the_invalid(
    scenario: Scenario, workers: list[Worker]
) -> None:
    events = mixed(now_ms(), seed=1)
    worker = Worker(scenario).start()
    workers.append(worker)
    worker.wait_ready()
    scenario.produce(events.messages)
    wait_processed([worker], len(events.messages))

    scraped, expected = scrape_matching_report(worker, events.report_lines, scenario.workdir)
    assert any(name == "cs_csat_ratio" for name, _ in expected), "the event set shows no CSAT"
    assert_same(scraped, expected)

    dead = scenario.read_dlq(len(events.invalid))
    assert Counter(value for value, _ in dead) == Counter(value for value, _ in events.invalid)
    reasons = {value: headers["kpi-reason"].decode() for value, headers in dead}
    assert reasons == {value: reason for value, reason in events.invalid}
    assert all(
        {"kpi-topic", "kpi-partition", "kpi-offset"} <= headers.keys() for _, headers in dead
    )

    health = worker.metrics()
    duplicates = sum(
        v
        for (n, labels), v in health.items()
        if n == "cs_events_total" and ("outcome", "duplicate") in labels
    )
    lag = {
        dict(labels)["topic"] + "/" + dict(labels)["partition"]: v
        for (n, labels), v in health.items()
        if n == "cs_consumer_lag_messages"
    }
    assert len(lag) == len(INPUT_TOPICS) * scenario.partitions, "lag missing for some partitions"
    assert set(lag.values()) == {0}
    invalid = {value for value, _ in events.invalid}
    produced = Counter(value for _, _, value in events.messages if value not in invalid)
    assert duplicates == sum(c - 1 for c in produced.values() if c > 1)


def test_sigkill_restarts_while_events_flow_lose_and_double_count_nothing(
    scenario: Scenario, workers: list[Worker]
) -> None:
    events = mixed(now_ms(), seed=2, tickets=600)
    worker = Worker(scenario).start()
    workers.append(worker)
    worker.wait_ready()

    def produce_slowly() -> None:
        chunk = 100
        for start in range(0, len(events.messages), chunk):
            scenario.produce(events.messages[start : start + chunk])
            time.sleep(0.15)

    producer = threading.Thread(target=produce_slowly)
    producer.start()
    rng = random.Random(7)
    for _ in range(3):
        time.sleep(rng.uniform(1.0, 3.0))
        worker.kill()
        worker.start()
        worker.wait_ready(timeout_s=90)
    producer.join()
    # Counters restart with each process, so wait for the numbers themselves to settle.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        scraped, expected = scrape_matching_report(worker, events.report_lines, scenario.workdir)
        if scraped == expected:
            break
        time.sleep(1.0)
    assert_same(scraped, expected)


def test_two_workers_split_partitions_and_agree_then_one_takes_over(
    scenario: Scenario, workers: list[Worker]
) -> None:
    events = mixed(now_ms(), seed=3)
    first, second = Worker(scenario, "w1").start(), Worker(scenario, "w2").start()
    workers.extend([first, second])
    first.wait_ready()
    second.wait_ready()
    _wait_split(first, second, scenario.partitions)
    scenario.produce(events.messages)
    wait_processed([first, second], len(events.messages))

    owned = [set(first.ready_partitions()), set(second.ready_partitions())]
    assert owned[0] and owned[1] and not owned[0] & owned[1]
    assert owned[0] | owned[1] == set(range(scenario.partitions))
    for _ in range(3):  # both scrapes and the report must see the same minute
        before = now_ms()
        a, b = kpi_samples(first.metrics()), kpi_samples(second.metrics())
        if bucket(now_ms()) == bucket(before):
            break
    gauges = {k: v for k, v in a.items() if k[0] in _GAUGES}
    assert gauges, "no KPI gauges served"
    assert gauges == {k: v for k, v in b.items() if k[0] in _GAUGES}

    summed = _sum_components([a, b])
    expected = report(events.report_lines, rfc3339(before), scenario.workdir)
    assert_same({**summed, **gauges}, expected)

    second.stop()
    deadline = time.monotonic() + 60
    while set(first.ready_partitions()) != set(range(scenario.partitions)):
        assert time.monotonic() < deadline, "the survivor did not take every partition"
        time.sleep(0.5)
    scraped, expected = scrape_matching_report(first, events.report_lines, scenario.workdir)
    assert_same(scraped, expected)


def test_unanswered_ticket_moves_from_ok_to_at_risk_to_breached_with_the_clock(
    scenario: Scenario, workers: list[Worker]
) -> None:
    scenario.write_sla_config("at_risk_fraction = 0.5\n[first_response_seconds]\nurgent = 8\n")
    worker = Worker(scenario).start()
    workers.append(worker)
    worker.wait_ready()
    opened = now_ms()
    event = {
        "event_id": "sla-1",
        "type": "ticket.opened",
        "ticket_id": "SLA-1",
        "occurred_at": opened,
        "queue": "vip",
        "channel": "phone",
        "priority": "urgent",
    }
    scenario.produce([("cs.ticket.opened", b"SLA-1", orjson.dumps(event))])

    def state() -> str:
        samples = worker.metrics()
        for (name, labels), value in samples.items():
            if name == "cs_tickets_awaiting_first_response" and value == 1:
                return dict(labels)["sla_state"]
        return "absent"

    seen = []
    deadline = opened + 12_000
    while now_ms() < deadline:
        # The state was computed between `earliest` (a cached snapshot may be 250 ms old)
        # and `latest`; only a state that holds over that whole span is asserted.
        earliest = (now_ms() - opened) / 1000 - 0.3
        current = state()
        latest = (now_ms() - opened) / 1000
        seen.append(current)
        if earliest > 0.5 and latest < 4:
            assert current in ("ok", "absent")
        elif earliest > 4 and latest < 8:
            assert current == "at_risk"
        elif earliest > 8:
            assert current == "breached"
        time.sleep(0.25)
    assert {"ok", "at_risk", "breached"} <= set(seen)


# System-wide KPI gauges: identical on every worker, not summed.
_GAUGES = {f"cs_{n}" for n in KPI_NAMES} | {f"cs_queue_{n}" for n in KPI_NAMES}
_MIN_ACROSS = {"cs_oldest_awaiting_first_response_opened_timestamp_seconds"}


def _sum_components(per_worker: list[Samples]) -> Samples:
    summed: Samples = {}
    for samples in per_worker:
        for key, value in samples.items():
            if key[0] in _GAUGES:
                continue
            if key[0] in _MIN_ACROSS:
                summed[key] = min(summed.get(key, value), value)
            else:
                summed[key] = summed.get(key, 0.0) + value
    return summed


def _wait_split(first: Worker, second: Worker, partitions: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        a, b = set(first.ready_partitions()), set(second.ready_partitions())
        if a and b and not a & b and a | b == set(range(partitions)):
            return
        assert time.monotonic() < deadline, f"partitions not split: {a} / {b}"
        time.sleep(0.5)


def test_tickets_past_retention_are_swept_from_the_live_gauges(
    scenario: Scenario, workers: list[Worker]
) -> None:
    # 0.0001 days = 8.64 s of retention, so the worker sweeps every ~2 s
    scenario.write_sla_config("ticket_retention_days = 0.0001\n")
    worker = Worker(scenario).start()
    workers.append(worker)
    worker.wait_ready()
    event = {
        "event_id": "ret-1",
        "type": "ticket.opened",
        "ticket_id": "RET-1",
        "occurred_at": now_ms(),
        "queue": "retention",
        "channel": "web",
        "priority": "low",
    }
    scenario.produce([("cs.ticket.opened", b"RET-1", orjson.dumps(event))])

    def open_tickets() -> float:
        return sum(
            v
            for (name, labels), v in worker.metrics().items()
            if name == "cs_tickets_open" and ("queue", "retention") in labels
        )

    deadline = time.monotonic() + 5
    while open_tickets() != 1:
        assert time.monotonic() < deadline, "the ticket never showed as open"
        time.sleep(0.2)
    deadline = time.monotonic() + 20
    while open_tickets() != 0:
        assert time.monotonic() < deadline, "the expired ticket was not swept"
        time.sleep(0.5)
    # After a crash the ticket stays gone: either its tombstone was written, or the
    # recovered record is past retention and swept again.
    worker.kill()
    worker.start()
    worker.wait_ready()
    deadline = time.monotonic() + 20
    while open_tickets() != 0:
        assert time.monotonic() < deadline, "the expired ticket came back after a restart"
        time.sleep(0.5)
