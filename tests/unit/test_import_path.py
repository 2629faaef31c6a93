"""The worker's import path holds no development tooling (issue 9, "one room for Kafka")."""

from __future__ import annotations

import subprocess
import sys

DEVELOPMENT = ("stream.broker", "stream.demo", "stream.simulate")


def test_a_worker_loads_neither_the_broker_harness_nor_the_demo_nor_the_simulator() -> None:
    probe = (
        "import sys, stream.cli, stream.worker; "
        "print(sorted(m for m in sys.modules if m.startswith('stream')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert "stream.runtime.loop" in loaded  # the probe did import the worker
    assert not [m for m in DEVELOPMENT if f"'{m}" in loaded], loaded


def test_the_development_commands_are_still_there() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stream", "--help"], capture_output=True, text=True, check=True
    )
    listed = {
        line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line.strip()
    }
    assert {"broker", "demo", "simulate", "worker", "report"} <= listed
