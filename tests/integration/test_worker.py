"""The streaming worker against a real broker, checked against `kpi-stream report`."""

from __future__ import annotations

import random
import re
import signal
import threading
import time
from collections import Counter
from datetime import datetime

import orjson

from stream.kpi.centre import CONTACT_KPI_NAMES
from stream.kpi.gauges import KPI_NAMES, TICKET_LIFE_KPI_NAMES
from stream.kpi.types import INPUT_TOPICS
from stream.kpi.windows import bucket
from tests.integration.eventsets import mixed
from tests.integration.worker_harness import (
    Samples,
    Scenario,
    Worker,
    assert_same,
    kpi_samples,
    now_ms,
    report,
    rfc3339,
    scrape_matching_report,
    snapshot_ms,
    wait_caught_up,
    wait_processed,
)


def test_mixed_events_match_the_batch_report_and_the_dlq_holds_exactly_the_invalid(
    scenario: Scenario, workers: list[Worker]
) -> None:
    events = mixed(now_ms(), seed=1, contacts=150, agents=12)
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
    resent = {value: c - 1 for value, c in produced.items() if c > 1}
    # An agent keeps only the latest of its events older than 48 h: a redelivery of a
    # dropped one counts as accepted (it changes nothing). Newer events are always kept.
    horizon = now_ms() - 47 * 3_600_000
    maybe = sum(n for value, n in resent.items() if _old_status(value, horizon))
    assert sum(resent.values()) - maybe <= duplicates <= sum(resent.values())
    assert maybe, "no redelivered agent event beyond the horizon: the set misses that case"


def test_sigkill_restarts_while_events_flow_lose_and_double_count_nothing(
    scenario: Scenario, workers: list[Worker]
) -> None:
    events = mixed(now_ms(), seed=2, tickets=600, contacts=300, agents=12)
    worker = Worker(scenario).start()
    workers.append(worker)
    worker.wait_ready()

    producer = _produce_slowly(scenario, events.messages)
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


def _scrape_in_one_minute(workers: list[Worker]) -> list[Samples]:
    """One scrape of each worker, all computed in the same minute bucket (the 15m and 1h
    windows move at a minute's turn; scrapes on both sides of it differ rightly)."""
    for _ in range(3):
        raw = [w.metrics() for w in workers]
        if len({bucket(snapshot_ms(r)) for r in raw}) == 1:
            return raw
    raise AssertionError("could not scrape every worker within one minute bucket")


def test_two_workers_split_partitions_and_agree_then_one_takes_over(
    scenario: Scenario, workers: list[Worker]
) -> None:
    events = mixed(now_ms(), seed=3, contacts=150, agents=12)
    first, second = Worker(scenario, "w1").start(), Worker(scenario, "w2").start()
    workers.extend([first, second])
    first.wait_ready()
    second.wait_ready()
    _wait_split(first, second, partitions=scenario.partitions)
    scenario.produce(events.messages)
    wait_processed([first, second], len(events.messages))

    owned = [set(first.ready_partitions()), set(second.ready_partitions())]
    assert owned[0] and owned[1] and not owned[0] & owned[1]
    assert owned[0] | owned[1] == set(range(scenario.partitions))
    raw = _scrape_in_one_minute([first, second])
    instants = [snapshot_ms(r) for r in raw]
    a, b = kpi_samples(raw[0]), kpi_samples(raw[1])
    gauges = {k: v for k, v in a.items() if k[0] in _GAUGES}
    assert any(k[0].startswith("cs_contact_") for k in gauges), "no contact KPI gauges served"
    assert gauges == {k: v for k, v in b.items() if k[0] in _GAUGES}

    # Agents' time runs to the millisecond: each worker's system-wide agent gauges equal
    # the report at its own instant; the summed time in status lies between the two.
    at_first, at_second = (
        report(events.report_lines, rfc3339(at), scenario.workdir) for at in instants
    )
    for samples, expected in ((a, at_first), (b, at_second)):
        timed = {k: v for k, v in expected.items() if k[0] in _TIMED_GAUGES}
        assert timed, "no agent occupancy served"
        assert_same({k: v for k, v in samples.items() if k[0] in _TIMED_GAUGES}, timed)
    early, late = sorted((at_first, at_second), key=lambda r: _status_total(r))
    summed = _sum_components([a, b])
    for key, value in summed.items():
        if key[0] in _TIMED_COMPONENTS:
            assert early[key] - 1e-6 <= value <= late[key] + 1e-6, key
    untimed = _TIMED_GAUGES | _TIMED_COMPONENTS
    assert_same(
        {k: v for k, v in {**summed, **gauges}.items() if k[0] not in untimed},
        {k: v for k, v in at_first.items() if k[0] not in untimed},
    )

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


def _produce_slowly(
    scenario: Scenario, messages: list[tuple[str, bytes | None, bytes]]
) -> threading.Thread:
    """A thread producing `messages` 100 at a time, 0.15 s apart."""

    def produce() -> None:
        for start in range(0, len(messages), 100):
            scenario.produce(messages[start : start + 100])
            time.sleep(0.15)

    thread = threading.Thread(target=produce)
    thread.start()
    return thread


# System-wide KPI gauges: identical on every worker, not summed.
_GAUGES = {f"cs_{n}" for n in (*KPI_NAMES, *TICKET_LIFE_KPI_NAMES, *CONTACT_KPI_NAMES)} | {
    f"cs_queue_{n}" for n in (*KPI_NAMES, *TICKET_LIFE_KPI_NAMES, *CONTACT_KPI_NAMES)
}
# System-wide gauges and components that depend on the exact instant (agents' time).
_TIMED_GAUGES = {
    "cs_agent_occupancy_ratio",
    "cs_team_agent_occupancy_ratio",
    "cs_staffed_cost",
    "cs_team_staffed_cost",
    "cs_cost_per_contact",
}
_TIMED_COMPONENTS = {"cs_agent_status_seconds"}
_MIN_ACROSS = {
    "cs_oldest_awaiting_first_response_opened_timestamp_seconds",
    "cs_contact_oldest_waiting_queued_timestamp_seconds",
}


def _old_status(value: bytes, horizon_ms: int) -> bool:
    event = orjson.loads(value)
    at = event["occurred_at"]
    at_ms = at if isinstance(at, int) else round(datetime.fromisoformat(at).timestamp() * 1000)
    return bool(event["type"] == "agent.status" and at_ms < horizon_ms)


def _status_total(samples: Samples) -> float:
    return sum(v for k, v in samples.items() if k[0] in _TIMED_COMPONENTS)


def _sum_components(per_worker: list[Samples]) -> Samples:
    summed: Samples = {}
    for samples in per_worker:
        for key, value in samples.items():
            if key[0] in _GAUGES or key[0] in _TIMED_GAUGES:
                continue
            if key[0] in _MIN_ACROSS:
                summed[key] = min(summed.get(key, value), value)
            else:
                summed[key] = summed.get(key, 0.0) + value
    return summed


def _wait_split(*workers: Worker, partitions: int) -> None:
    """Until every worker serves some partitions and together exactly all, once each."""
    deadline = time.monotonic() + 60
    while True:
        owned = [set(w.ready_partitions()) for w in workers]
        if all(owned) and sum(map(len, owned)) == partitions == len(set().union(*owned)):
            return
        assert time.monotonic() < deadline, f"partitions not split: {owned}"
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


def test_an_unexpected_error_stops_the_worker_before_its_commit_and_a_restart_applies_all(
    scenario: Scenario, workers: list[Worker]
) -> None:
    events = mixed(now_ms(), seed=4)
    scenario.produce(events.messages)  # all there first, so the worker reads big batches
    fault_at = len(events.messages) // 2
    faulty = Worker(
        scenario,
        "faulty",
        module="tests.integration.faulty_worker",
        extra_env={"KPI_TEST_FAULT_AT": str(fault_at)},
    ).start()
    workers.append(faulty)

    assert faulty.wait_exit(90) != 0
    log = faulty.log_tail(1000)
    critical = [line for line in log.splitlines() if " CRITICAL " in line]
    assert len(critical) == 1, log
    assert f"RuntimeError while processing {scenario.prefix}cs." in critical[0]
    assert f"injected fault at message {fault_at}" in critical[0]
    assert "Traceback" not in log
    # Messages before the fault in its batch were applied in memory but never written:
    # nothing of that batch may be committed.
    assert sum(scenario.committed().values()) < fault_at - 1

    worker = Worker(scenario, "w1").start()
    workers.append(worker)
    worker.wait_ready()
    wait_caught_up([worker])
    scraped, expected = scrape_matching_report(worker, events.report_lines, scenario.workdir)
    assert_same(scraped, expected)
    dead = scenario.read_dlq(len(events.invalid))
    assert {value for value, _ in dead} == {value for value, _ in events.invalid}


def test_rebalance_from_one_to_three_workers_and_back_while_events_flow(
    scenario: Scenario, workers: list[Worker]
) -> None:
    events = mixed(now_ms(), seed=5, tickets=600)
    half = len(events.messages) // 2
    first = Worker(scenario, "w1").start()
    workers.append(first)
    first.wait_ready()

    producer = _produce_slowly(scenario, events.messages[:half])
    time.sleep(1.0)
    others = [Worker(scenario, "w2").start(), Worker(scenario, "w3").start()]
    workers.extend(others)
    _wait_split(first, *others, partitions=scenario.partitions)
    producer.join()
    wait_caught_up([first, *others])
    gauges = [
        {k: v for k, v in kpi_samples(raw).items() if k[0] in _GAUGES}
        for raw in _scrape_in_one_minute([first, *others])
    ]
    assert gauges[0], "no KPI gauges served by three workers"
    assert gauges[0] == gauges[1] == gauges[2]

    producer = _produce_slowly(scenario, events.messages[half:])
    time.sleep(1.0)
    for worker in others:
        worker.stop()
    producer.join()
    deadline = time.monotonic() + 60
    while set(first.ready_partitions()) != set(range(scenario.partitions)):
        assert time.monotonic() < deadline, "the last worker did not take every partition"
        time.sleep(0.5)
    wait_caught_up([first])
    scraped, expected = scrape_matching_report(first, events.report_lines, scenario.workdir)
    assert_same(scraped, expected)


def test_a_restarted_worker_reads_its_local_snapshot_and_only_the_changelog_tail(
    scenario: Scenario, workers: list[Worker]
) -> None:
    events = mixed(now_ms(), seed=8)
    third = len(events.messages) // 3
    worker = Worker(scenario).start()
    workers.append(worker)
    worker.wait_ready()
    scenario.produce(events.messages[:third])
    wait_caught_up([worker])
    worker.stop()  # a clean stop writes the local snapshots
    scenario.produce(events.messages[third : 2 * third])

    def restart() -> tuple[int, int]:
        """Start again; (records from local snapshots, records from changelogs)."""
        log_start = len(worker.log_tail(100_000).splitlines())
        worker.start()
        worker.wait_ready()
        wait_caught_up([worker])
        lines = worker.log_tail(100_000).splitlines()[log_start:]
        found = [RESTORED.search(line) for line in lines]
        counts = [(int(m[1]), int(m[2])) for m in found if m]
        assert len(counts) == 1, lines
        return counts[0]

    from_snapshots, from_changelogs = restart()
    assert from_snapshots > 0 and from_changelogs == 0
    scenario.produce(events.messages[2 * third :])
    wait_caught_up([worker])
    worker.kill()  # no new snapshot: the old one plus the changelog written since
    tail_snapshots, tail_changelogs = restart()
    assert tail_snapshots == from_snapshots and tail_changelogs > 0
    scraped, expected = scrape_matching_report(worker, events.report_lines, scenario.workdir)
    assert_same(scraped, expected)


RESTORED = re.compile(r"restored (\d+) records from local snapshots and (\d+) from changelogs")


def test_readyz_is_503_from_the_moment_a_worker_begins_to_stop(
    scenario: Scenario, workers: list[Worker]
) -> None:
    """After SIGTERM a worker still saves its snapshots (seconds at a million tickets; here
    made 8 s longer by the test wrapper) and answers meanwhile, but no longer as ready."""
    worker = Worker(
        scenario,
        "slow-save",
        module="tests.integration.faulty_worker",
        extra_env={"KPI_TEST_SAVE_DELAY_S": "8"},
    ).start()
    workers.append(worker)
    worker.wait_ready()
    assert worker.status("/readyz") == 200
    assert worker.process is not None
    stopping = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    while (ready := worker.status("/readyz")) == 200:
        time.sleep(0.05)
    # Not the broker-loss path, which would take 15 s without a poll of the broker.
    assert ready == 503 and time.monotonic() - stopping < 5
    assert worker.status("/healthz") == 200, "still answering while it saves its snapshots"
    assert worker.process.poll() is None
    assert worker.wait_exit(60) == 0
