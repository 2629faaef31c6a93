"""Every benchmark in one run on one local broker, then a summary against the targets.

python -m bench.run_all [--quick]
"""

from __future__ import annotations

import argparse
import time

from bench import failover, latency, processor, recovery, throughput
from bench.common import Figure, local_broker, machine_facts, print_figures, run_dir

BENCHMARKS = (
    ("the processor alone (no broker)", processor.run),
    ("replay throughput", throughput.run),
    ("end-to-end latency", latency.run),
    ("recovery, memory and scrape time", recovery.run),
    ("failover: a dead worker's partitions on another worker", failover.run),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the events (smoke run)")
    quick = parser.parse_args().quick
    command = "python -m bench.run_all" + (" --quick" if quick else "")
    print(f"{command}\n{machine_facts()}", flush=True)
    started = time.monotonic()
    workdir = run_dir()
    figures: list[Figure] = []
    with local_broker() as bootstrap:
        for title, run in BENCHMARKS:
            section = run(bootstrap, workdir, quick)
            print_figures(title, section)
            figures += section
    print_figures("summary: figures with a target", [f for f in figures if f.target])
    print(f"\n{machine_facts()}; {time.monotonic() - started:.0f} s; logs in {workdir}")


if __name__ == "__main__":
    main()
