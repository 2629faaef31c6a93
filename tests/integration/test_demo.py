"""`kpi-stream demo` end to end: its own broker, a worker and the simulator, then Ctrl-C."""

from __future__ import annotations

import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from kpi_devtools.broker.harness import free_ports, pid_alive
from kpi_devtools.supervisor import Supervised
from tests.integration.worker_harness import parse_samples

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0


class Demo:
    """A `python -m stream demo` child of the supervisor; its output goes to a log file."""

    def __init__(self, port: int, data_dir: Path, log: Path) -> None:
        self.data_dir = data_dir
        command = ["-m", "stream", "demo", "--duration", "60", "--port", str(port),
                   "--backfill", "2", "--data-dir", str(data_dir)]  # fmt: skip
        self.child = Supervised(
            "demo", command, log=log, stop_signal=signal.SIGINT, stop_grace_s=STOP_TIMEOUT_S
        ).start()

    @property
    def pid(self) -> int:
        return self.child.pid

    def output(self) -> str:
        assert self.child.log is not None
        return self.child.log.read_text(errors="replace")

    def wait_for_line(self, pattern: str, timeout_s: float) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def printed() -> bool:
            found[:] = [m for m in [re.search(pattern, self.output(), re.MULTILINE)] if m]
            return bool(found)

        self.child.wait_until(printed, timeout_s, interval_s=0.2)
        return found[0]


@pytest.fixture
def demo(kafka_libs: Path, tmp_path: Path) -> Iterator[Demo]:
    started = Demo(free_ports(1)[0], tmp_path / "demo", tmp_path / "demo.out")
    yield started
    started.child.stop()  # Ctrl-C, if the test failed before stopping it


def children_of(pid: int) -> dict[int, str]:
    """{pid: command line} of the processes whose parent is `pid`."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found[int(stat.parent.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes whose command line or environment holds `text`."""
    needle = text.encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if (needle in cmdline or needle in environ) and pid_alive(int(proc.name)):
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body


def test_demo_serves_a_full_board_and_stops_everything_on_ctrl_c(demo: Demo) -> None:
    started = time.monotonic()
    base = demo.wait_for_line(r"wallboard\s+(http://127\.0\.0\.1:\d+)/", START_TIMEOUT_S)[1]
    ready_s = time.monotonic() - started
    demo.wait_for_line(r"metrics\s+" + re.escape(base) + "/metrics", 5)

    parts = children_of(demo.pid)
    commands = " | ".join(parts.values())
    assert len(parts) == 3, commands
    assert "kafka.Kafka" in commands
    assert "-m stream worker" in commands
    assert "-m stream simulate" in commands

    deadline = time.monotonic() + 30
    while True:
        body = orjson.loads(get(f"{base}/api/kpis"))
        if body["windows"]["24h"]["overall"]["first_responses"] > 0:
            break
        assert time.monotonic() < deadline, f"no first responses on the board: {body}"
        time.sleep(0.5)
    assert body["complete"] is True
    awaiting = body["live"]["awaiting"]
    assert set(awaiting) == {"ok", "at_risk", "breached"}
    assert all(isinstance(n, int) and n >= 0 for n in awaiting.values())
    assert body["live"]["open"] >= sum(awaiting.values()) > 0
    assert b"<html" in get(f"{base}/").lower()

    samples = parse_samples(get(f"{base}/metrics").decode())
    frt = samples.get(("cs_first_response_time_average_seconds", (("window", "24h"),)))
    assert frt is not None and frt > 0

    stopping = time.monotonic()
    assert demo.child.stop(), f"the demo had to be killed:\n{demo.output()}"  # Ctrl-C
    assert demo.child.wait_exit(0) == 0, demo.output()
    stop_s = time.monotonic() - stopping
    assert "Stopped the simulator, the worker and the broker." in demo.output()
    assert "simulated " in demo.output()  # the simulator's summary: it got SIGINT

    assert not [pid for pid in parts if pid_alive(pid)], commands
    assert processes_mentioning(str(demo.data_dir)) == []
    print(f"demo ready in {ready_s:.1f} s, stopped in {stop_s:.1f} s")
