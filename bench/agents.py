"""/metrics scrape time with 200 agents, per-agent series on, against the same state off.

python -m bench.agents [--quick]

Two workers, one after the other, each in a consumer group of its own, apply the same topics: 200 agents' status events over
the last 24 h (a change every ~20 minutes) and contacts answered by them. The first runs
without per-agent series (the baseline), the second with KPI_AGENT_METRICS=true.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import orjson

from bench.common import (
    Figure,
    Message,
    Namespace,
    WorkerProcess,
    http_get,
    median,
    scaled,
    standalone,
)

AGENTS = 200
CONTACTS = 50_000
SCRAPES = 15
SCRAPE_SPACING_S = 0.4  # past the 250 ms snapshot cache: every scrape computes afresh
STATUSES = ("available", "busy", "after_contact_work", "away", "offline")


def events(count: int, now_ms: int) -> list[Message]:
    """Status events of AGENTS agents and `count` contacts answered by them, last 24 h."""
    rng = random.Random(5)
    messages: list[Message] = []
    for n in range(AGENTS):
        agent = f"agent-{n:03d}"
        at = now_ms - 24 * 3_600_000
        while at < now_ms - 60_000:
            body = {"event_id": f"s-{agent}-{at}", "type": "agent.status", "agent_id": agent,
                    "occurred_at": at, "status": rng.choice(STATUSES), "team": f"team-{n % 8}"}  # fmt: skip
            messages.append(("cs.agent.status", agent.encode(), orjson.dumps(body)))
            at += rng.randint(5, 35) * 60_000
    for n in range(count):
        contact, queued = f"c-{n}", now_ms - rng.randint(120_000, 24 * 3_600_000)
        answered = queued + rng.randint(1_000, 90_000)
        for kind, at, fields in (
            ("queued", queued, {"queue": f"q{n % 10}", "channel": "phone"}),
            ("answered", answered, {"agent_id": f"agent-{rng.randrange(AGENTS):03d}"}),
            ("ended", answered + rng.randint(30_000, 600_000), {}),
        ):
            body = {"event_id": f"{kind}-{contact}", "type": f"contact.{kind}",
                    "contact_id": contact, "occurred_at": min(at, now_ms - 1_000), **fields}  # fmt: skip
            messages.append((f"cs.contact.{kind}", contact.encode(), orjson.dumps(body)))
    return messages


def scrape_ms(worker: WorkerProcess) -> tuple[float, int]:
    """Median /metrics time (ms) and the lines of the last answer."""
    times, lines = [], 0
    for _ in range(SCRAPES):
        time.sleep(SCRAPE_SPACING_S)
        _, body, seconds = http_get(f"{worker.url}/metrics")
        times.append(1000 * seconds)
        lines = body.count(b"\n")
    return median(times), lines


def run(bootstrap: str, workdir: Path, quick: bool) -> list[Figure]:
    messages = events(scaled(CONTACTS, quick), time.time_ns() // 1_000_000)
    namespace = Namespace(bootstrap, "agents")
    namespace.create_topics()
    namespace.produce(messages)
    figures = {}
    for label, env in (("off", {}), ("on", {"KPI_AGENT_METRICS": "true"})):
        # Same topics, a consumer group of its own: each worker applies every event.
        group = Namespace(bootstrap, f"agents-{label}", namespace.prefix)
        worker = WorkerProcess(group, workdir, env)
        worker.start()
        try:
            worker.wait_ready()
            worker.wait_processed(len(messages), timeout_s=900)
            figures[label] = scrape_ms(worker)
        finally:
            worker.stop()
    (off, off_lines), (on, on_lines) = figures["off"], figures["on"]
    return [
        Figure(
            f"/metrics scrape, {AGENTS} agents, per-agent series off (median)",
            off,
            "ms",
            note=f"{off_lines:,} lines",
        ),
        Figure(
            f"/metrics scrape, {AGENTS} agents, KPI_AGENT_METRICS=true (median)",
            on,
            "ms",
            note=f"{on_lines:,} lines",
        ),
        Figure("per-agent on / off scrape time", on / off, "x"),
    ]


if __name__ == "__main__":
    standalone("scrape time with 200 agents", run)
