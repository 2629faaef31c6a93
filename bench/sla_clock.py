"""Live SLA state under business-hours calendars: cost of an index build and of a snapshot.

python -m bench.sla_clock [--tickets N] [--repeats R]

N tickets awaiting their first reply, spread over 20 queues x 4 priorities x 2 channels,
opened over the last 30 days. The same index is measured twice: every queue in calendar
time (24/7, the baseline) and every queue under a Stockholm office-hours calendar with
holidays. A snapshot is what a scrape computes (window totals and live state); its time
per scrape is the median over R scrapes with the clock moving forward 7 s each time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from stream.config import parse_kpi_config
from stream.kpi.contrib import Layout, contribution
from stream.kpi.index import KpiIndex
from stream.kpi.settings import KpiConfig
from stream.kpi.ticket import Ticket
from stream.kpi.windows import to_ms

QUEUES = [f"queue-{n:02}" for n in range(20)]
PRIORITIES = ("low", "normal", "high", "urgent")
CHANNELS = ("email", "chat")
NOW = to_ms(datetime.fromisoformat("2026-11-30T10:00:00+01:00"))  # a Monday
DAY_MS = 86_400_000

OFFICE = {
    "timezone": "Europe/Stockholm",
    **{d: ["08:00-12:00", "13:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-11-11", "2026-12-24", "2026-12-25"],
}


def configs() -> dict[str, KpiConfig]:
    calendar_file = {
        "calendars": {"office": OFFICE},
        "policies": [{"queues": QUEUES, "calendar": "office"}],
    }
    return {"24/7": parse_kpi_config({}), "calendar": parse_kpi_config(calendar_file)}


def tickets(count: int) -> list[Ticket]:
    rng = random.Random(7)
    return [
        Ticket(
            opened_at=NOW - rng.randrange(30 * DAY_MS),
            opened_event_id=f"e{n}",
            queue=rng.choice(QUEUES),
            channel=rng.choice(CHANNELS),
            priority=rng.choice(PRIORITIES),
        )
        for n in range(count)
    ]


def measure(config: KpiConfig, records: list[Ticket], repeats: int) -> tuple[float, float, int]:
    """(build seconds, median snapshot seconds, tickets breached at NOW)."""
    layout = Layout(config.sla)
    index = KpiIndex(config.sla, layout, ZoneInfo("UTC"))
    started = time.perf_counter()
    for record in records:
        index.update(None, contribution(record, config.sla, layout))
    build = time.perf_counter() - started
    index.snapshot(NOW)  # the first one sums the window totals
    times = []
    for n in range(1, repeats + 1):
        started = time.perf_counter()
        snapshot = index.snapshot(NOW + n * 7000)
        times.append(time.perf_counter() - started)
    breached = sum(live.breached for live in snapshot.live.values())
    return build, statistics.median(times), breached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    records = tickets(args.tickets)
    results = {name: measure(c, records, args.repeats) for name, c in configs().items()}
    print(f"{args.tickets:,} tickets awaiting a first reply, {args.repeats} scrapes each")
    for name, (build, scrape, breached) in results.items():
        print(
            f"{name:>9}: index build {build * 1000:8.1f} ms, "
            f"snapshot median {scrape * 1000:7.2f} ms, breached {breached:,}"
        )
    base, cal = results["24/7"], results["calendar"]
    print(f"calendar / 24/7: build {cal[0] / base[0]:.2f}x, snapshot {cal[1] / base[1]:.2f}x")


if __name__ == "__main__":
    main()
