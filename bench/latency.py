"""End-to-end latency (event produced → visible in /metrics) under a steady event rate.

    python -m bench.latency [--quick]

A steady producer sends simulator events at RATE/s. Every 100 ms a probe event is sent:
the `ticket.opened` of a new ticket in queue `bench-probe`, all on partition 0 so the worker
applies them in order. A poll loop reads the worker's snapshot every POLL_PAUSE_S; a probe
is visible once the open-ticket count of its queue counts it. Its latency is the end of that
poll minus the moment it was handed to the producer; the resolution is one poll period.

The poll reads `/api/kpis`, not `/metrics`: both serve the same cached snapshot (the same
`cs_tickets_open` numbers), but rendering `/metrics` costs the worker's event loop so much
that a tight `/metrics` loop starves the worker and measures itself. A `/metrics` scrape at
the end of the warm-up and of the run gives the processed count and the consumer lag, and
its duration is the further delay until a scrape shows the snapshot.

If the worker cannot keep up, the lag grows without bound and the latency only measures how
long the run was: then the figure is the lag growth, and the latency is measured again at a
rate the worker sustains.

    python -m bench.latency --agents 200     # the same events, agent ids folded onto 200
    python -m bench.latency --in-process     # no broker: what a scrape costs the worker
    python -m bench.latency --mixed          # contacts and agent statuses besides tickets

The simulator names one agent per 8 tickets of its peak hour: 31,250 agents for the
events of a full run, since 5,000 events/s is a very large centre. `--agents N` keeps every
event and its timing and renames agent `agent-K` to `agent-(K mod N)`, for a floor of N
agents (the per-agent state grows with the agents, not with the events).

`--in-process` applies the same events to a `Processor` in this process (a second's worth
at a time, in batches of 1,000 as the runtime does) and after each second takes what a
scrape takes: the snapshot a partition at a time (the event loop runs between steps) and
the KPI families of `/metrics`, once without the per-agent cells (`/api/kpis`, `/metrics`)
and once with them (`/api/agents`, `KPI_AGENT_METRICS=true`). Wall time, the cyclic
garbage collector's pauses included (they are reported too), and at the end one full
collection of the state built, without and with `gc.freeze()` (what the worker does after
restoring partitions).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, generate_latest

from bench.common import (
    PARTITIONS,
    Figure,
    Message,
    Namespace,
    WorkerProcess,
    fast_producer,
    http_get,
    local_broker,
    machine_facts,
    median,
    metric_sum,
    percentile,
    print_figures,
    run_dir,
    running_worker,
    scaled,
    simulator_events,
)
from bench.processor import apply_batches
from stream.centre_metrics import CentreCollector, by_agent_exposition
from stream.kpi.entity import partition_of
from stream.kpi.settings import KpiConfig
from stream.kpi.snapshot import Snapshot
from stream.metrics import exposition_chunks
from stream.processor import Processor
from stream.runtime.topics import key_partition

RATE = 5_000
LOWER_RATE = 1_000  # measured as well, for the shape of the latency
DURATION_S = 60
WARMUP_S = 5
PROBE_EVERY_S = 0.1
POLL_PAUSE_S = 0.02
PROBE_QUEUE = "bench-probe"
TARGET_P99_MS = 250
TARGET_STEP_MS = 20
KEEP_UP_SHARE = 0.95  # processed at least this share of the offered rate


@dataclass
class Probe:
    sent: float
    seen: float | None = None


@dataclass
class Sample:
    """One /metrics scrape: when it ended, how long it took, messages sent and processed,
    and the worker's own lag gauge."""

    at: float
    seconds: float
    sent: int
    processed: float
    reported_lag: float

    @property
    def backlog(self) -> float:
        return self.sent - self.processed


async def scrape(url: str, sent: int) -> Sample:
    _, body, seconds = await asyncio.to_thread(http_get, f"{url}/metrics")
    text = body.decode()
    return Sample(
        time.perf_counter(),
        seconds,
        sent,
        metric_sum(text, "cs_events_total"),
        metric_sum(text, "cs_consumer_lag_messages"),
    )


def probe_ids(tag: str) -> Iterator[str]:
    """Ticket ids of new tickets that the default partitioner puts on partition 0."""
    for n in itertools.count():
        ticket_id = f"probe-{tag}-{n}"
        if key_partition(ticket_id, PARTITIONS) == 0:
            yield ticket_id


@dataclass
class Sent:
    """Messages handed to the producers so far."""

    load: int = 0
    probes: int = 0


async def steady_load(
    producer: AIOKafkaProducer,
    prefix: str,
    events: Iterator[Message],
    rate: int,
    until: float,
    sent: Sent,
) -> None:
    """Send `rate` events per second until `until` (perf_counter)."""
    started = time.perf_counter()
    pending = []
    while (now := time.perf_counter()) < until:
        while sent.load < int((now - started) * rate):
            topic, key, value = next(events)
            pending.append(await producer.send(prefix + topic, value, key=key))
            sent.load += 1
        await asyncio.sleep(0.005)
    await asyncio.gather(*pending)


async def send_probes(
    producer: AIOKafkaProducer,
    prefix: str,
    probes: list[Probe],
    start: float,
    until: float,
    sent: Sent,
) -> None:
    ids = probe_ids(prefix.rstrip("."))
    due = start
    while due < until:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        ticket_id = next(ids)
        value = orjson.dumps(
            {
                "event_id": f"{ticket_id}-opened",
                "type": "ticket.opened",
                "ticket_id": ticket_id,
                "occurred_at": time.time_ns() // 1_000_000,
                "queue": PROBE_QUEUE,
                "channel": "chat",
                "priority": "normal",
            }
        )
        probes.append(Probe(time.perf_counter()))
        sent.probes += 1
        await producer.send(prefix + "cs.ticket.opened", value, key=ticket_id.encode())
        due += PROBE_EVERY_S


def probes_open(api_kpis: bytes) -> int:
    """Open tickets of the probe queue in an /api/kpis document."""
    queues = orjson.loads(api_kpis)["live"]["queues"]
    return sum(q["open"] for q in queues if q["queue"] == PROBE_QUEUE)


async def poll_visible(url: str, probes: list[Probe], periods: list[float], until: float) -> None:
    """Poll until `until`, and after it until every probe was seen (at most 10 s more)."""
    visible = 0
    last = time.perf_counter()
    while time.perf_counter() < until or (
        visible < len(probes) and time.perf_counter() < until + 10
    ):
        body = (await asyncio.to_thread(http_get, f"{url}/api/kpis"))[1]
        now = time.perf_counter()
        periods.append(now - last)
        last = now
        for probe in probes[visible : probes_open(body)]:
            probe.seen = now
            visible += 1
        await asyncio.sleep(POLL_PAUSE_S)


async def health_samples(url: str, start: float, until: float, sent: Sent) -> tuple[Sample, Sample]:
    """/metrics scrapes at the end of the warm-up and at the end of the run."""
    await asyncio.sleep(start - time.perf_counter())
    first = await scrape(url, sent.load + sent.probes)
    await asyncio.sleep(until - time.perf_counter())
    return first, await scrape(url, sent.load + sent.probes)


async def measure(
    worker: WorkerProcess, events: Iterator[Message], rate: int, duration_s: float
) -> tuple[int, list[Probe], list[float], tuple[Sample, Sample]]:
    """(events sent, probes, poll periods, /metrics samples at the start and end)."""
    namespace = worker.namespace
    load, probing = fast_producer(namespace.bootstrap, 5), fast_producer(namespace.bootstrap, 0)
    await load.start()
    await probing.start()
    probes: list[Probe] = []
    periods: list[float] = []
    sent = Sent()
    start = time.perf_counter() + WARMUP_S
    until = start + duration_s
    try:
        *_, health = await asyncio.gather(
            steady_load(load, namespace.prefix, events, rate, until, sent),
            send_probes(probing, namespace.prefix, probes, start, until, sent),
            poll_visible(worker.url, probes, periods, until),
            health_samples(worker.url, start, until, sent),
        )
    finally:
        await load.stop()
        await probing.stop()
    return sent.load, probes, periods, health


def at_rate(
    bootstrap: str, workdir: Path, events: list[Message], rate: int, duration_s: float
) -> list[Figure]:
    namespace = Namespace(bootstrap, f"latency{rate}")
    namespace.create_topics()
    with running_worker(namespace, workdir) as worker:
        worker.start()
        worker.wait_ready()
        sent, probes, periods, (first, last) = asyncio.run(
            measure(worker, itertools.cycle(events), rate, duration_s)
        )
    processed_rate = (last.processed - first.processed) / (last.at - first.at)
    keeps_up = processed_rate >= KEEP_UP_SHARE * rate
    latencies = [1000 * (p.seen - p.sent) for p in probes if p.seen is not None]
    unseen = len(probes) - len(latencies)
    p99 = percentile(latencies, 99) if latencies else None
    scrape_ms = 1000 * max(first.seconds, last.seconds)
    label = f"at {rate:,}/s"
    return [
        Figure(f"offered load {label} ({sent:,} events)", sent / (WARMUP_S + duration_s), "events/s"),
        Figure(f"processed {label}", processed_rate, "events/s", f">= {KEEP_UP_SHARE:.0%} of offered", keeps_up),
        Figure(f"backlog growth {label} (sent - processed)", last.backlog - first.backlog, "messages", note=f"{first.backlog:,.0f} → {last.backlog:,.0f} in {last.at - first.at:.0f} s; the worker's lag gauge said {first.reported_lag:,.0f} → {last.reported_lag:,.0f}"),
        Figure(f"latency to snapshot p50 {label}", percentile(latencies, 50) if latencies else None, "ms", note=f"{len(latencies)} probes, {unseen} not seen"),
        Figure(f"latency to snapshot p99 {label}", p99, "ms", note="" if keeps_up else "meaningless: the worker falls behind"),
        Figure(f"poll period (resolution) {label}, median", 1000 * median(periods), "ms"),
        Figure(f"/metrics scrape time at the end {label}", scrape_ms, "ms"),
        Figure(f"latency to /metrics p99 {label} (snapshot p99 + scrape)", None if p99 is None else p99 + scrape_ms, "ms", f"<= {TARGET_P99_MS}", keeps_up and p99 is not None and p99 + scrape_ms <= TARGET_P99_MS and not unseen),
    ]  # fmt: skip


def folded(events: list[Message], agents: int | None) -> list[Message]:
    """`events` with agent `agent-K` renamed `agent-(K mod agents)` (None: unchanged)."""
    if agents is None:
        return events
    out = []
    for topic, key, value in events:
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError:  # the simulator's invalid events stay as they are
            out.append((topic, key, value))
            continue
        agent = body.get("agent_id") if isinstance(body, dict) else None
        if isinstance(agent, str) and agent.startswith("agent-") and agent[6:].isdigit():
            body["agent_id"] = f"agent-{int(agent[6:]) % agents:03d}"
            value = orjson.dumps(body)
        out.append((topic, key, value))
    return out


def run(
    bootstrap: str, workdir: Path, quick: bool, agents: int | None = None, mixed: bool = False
) -> list[Figure]:
    duration = 15 if quick else DURATION_S
    events = folded(simulator_events(scaled(1_000_000, quick), mixed=mixed), agents)
    figures = at_rate(bootstrap, workdir, events, RATE, duration)
    lower = at_rate(bootstrap, workdir, events, LOWER_RATE, duration)
    for figure in lower:  # for information: the targets are at RATE
        figure.target, figure.met = "", None
    return figures + lower


class Pauses:
    """The cyclic garbage collector's pauses while installed (ms, generation)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, int]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((1000 * (time.perf_counter() - self._started), info["generation"]))


def scrape_steps(processor: Processor, now_ms: int, per_agent: bool) -> tuple[float, float]:
    """(whole, longest step) wall ms of a scrape's work: the snapshot a partition at a time,
    then the KPI families of /metrics a family at a time."""
    steps: Iterator[object] = processor.snapshot_steps(now_ms, per_agent)
    longest = whole = 0.0
    snapshot: Snapshot | None = None
    while snapshot is None:
        started = time.perf_counter()
        try:
            next(steps)  # type: ignore[call-overload]
        except StopIteration as done:
            snapshot = done.value
        step = 1000 * (time.perf_counter() - started)
        longest, whole = max(longest, step), whole + step
    config = processor.config
    capped = snapshot.cap_queues(config.max_queues)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CentreCollector(snapshot, snapshot, config))
    agents = by_agent_exposition(snapshot, config) if per_agent else iter(())
    texts = itertools.chain(exposition_chunks(capped, capped, processor.layout), agents)
    for chunk in itertools.chain(texts, (registry,)):
        started = time.perf_counter()
        if isinstance(chunk, str):
            chunk.encode()
        else:
            generate_latest(chunk)
        step = 1000 * (time.perf_counter() - started)
        longest, whole = max(longest, step), whole + step
    return whole, longest


def full_collection_ms(freeze: bool = False) -> float:
    """Wall ms of one full collection of this process's heap (after `gc.freeze()` if
    `freeze`: then the collector skips what lived before)."""
    if freeze:
        gc.freeze()
    try:
        started = time.perf_counter()
        gc.collect()
        return 1000 * (time.perf_counter() - started)
    finally:
        gc.unfreeze()


def in_process(quick: bool, agents: int | None, mixed: bool) -> list[Figure]:
    """What a scrape costs the worker as the events of a run at RATE accumulate."""
    count = scaled(RATE * (WARMUP_S + DURATION_S), quick)
    messages = [
        (topic, partition_of(key.decode(), PARTITIONS), key, value)
        for topic, key, value in folded(
            simulator_events(scaled(1_000_000, quick), mixed=mixed), agents
        )[:count]
    ]
    processor = Processor(KpiConfig(), ZoneInfo("UTC"), PARTITIONS)
    processor.assign(range(PARTITIONS))
    gc.collect()
    gc.freeze()  # the bench's own event list is no part of the worker's heap
    pauses = Pauses()
    gc.callbacks.append(pauses)
    lean: list[tuple[float, float]] = []
    full: list[tuple[float, float]] = []
    try:
        for start in range(0, count, RATE):
            now_ms = time.time_ns() // 1_000_000
            apply_batches(processor, messages[start : start + RATE], now_ms)
            lean.append(scrape_steps(processor, now_ms, per_agent=False))
            full.append(scrape_steps(processor, now_ms, per_agent=True))
    finally:
        gc.callbacks.remove(pauses)
        gc.unfreeze()
    del messages
    full_gc, frozen_gc = full_collection_ms(), full_collection_ms(freeze=True)
    agents_seen = len(
        processor.snapshot(time.time_ns() // 1_000_000).centre.tickets_by_agent["24h"]
    )
    longest_pause = max(pauses.pauses, default=(0.0, 0))
    label = f"{count:,} events, {agents_seen:,} agents"
    lean_step = max(step for _, step in lean)
    return [
        Figure(f"scrape work without per-agent cells, {label}, median", median(w for w, _ in lean), "ms", note="/api/kpis, /metrics"),
        Figure("its longest step (all scrapes)", lean_step, "ms", f"<= {TARGET_STEP_MS}", lean_step <= TARGET_STEP_MS, "GC pauses included"),
        Figure("scrape work with per-agent cells, median", median(w for w, _ in full), "ms", note="/api/agents, KPI_AGENT_METRICS=true"),
        Figure("its longest step (all scrapes)", max(step for _, step in full), "ms"),
        Figure("longest GC pause in the run", longest_pause[0], "ms", note=f"generation {longest_pause[1]}; {sum(1 for _, g in pauses.pauses if g == 2)} full collections"),
        Figure("a full collection of the state at the end", full_gc, "ms", note="what the worker pauses for"),
        Figure("the same after gc.freeze()", frozen_gc, "ms", note="as the worker does after restoring partitions"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description="end-to-end latency")
    parser.add_argument("--agents", type=int, help="fold the agent ids onto this many agents")
    parser.add_argument("--in-process", action="store_true", help="no broker: scrape cost")
    parser.add_argument("--mixed", action="store_true", help="contacts and agents besides tickets")
    parser.add_argument("--quick", action="store_true", help="a tenth of the events (smoke run)")
    options = parser.parse_args()
    print(machine_facts(), flush=True)
    if options.in_process:
        figures = in_process(options.quick, options.agents, options.mixed)
        print_figures("scrape cost in-process", figures)
    else:
        with local_broker() as bootstrap:
            figures = run(bootstrap, run_dir(), options.quick, options.agents, options.mixed)
        print_figures("end-to-end latency", figures)
    print(machine_facts())


if __name__ == "__main__":
    main()
