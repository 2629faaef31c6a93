"""`kpi-stream demo` end to end: its own broker, a worker and the simulator, then Ctrl-C."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from kpi_devtools.broker.harness import free_ports, pid_alive
from tests.integration.worker_harness import parse_samples

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0


class Demo:
    """A `python -m stream demo` subprocess whose output is read line by line."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.data_dir = data_dir
        command = [sys.executable, "-m", "stream", "demo", "--duration", "60", "--port",
                   str(port), "--backfill", "2", "--data-dir", str(data_dir)]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for_line(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                assert self.reader.is_alive(), f"output ended:\n{''.join(self.output)}"
                continue
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r}:\n{''.join(self.output)}")


@pytest.fixture
def demo(kafka_libs: Path, tmp_path: Path) -> Iterator[Demo]:
    started = Demo(free_ports(1)[0], tmp_path / "demo")
    yield started
    if started.process.poll() is None:  # the test failed before stopping it
        started.process.send_signal(signal.SIGINT)
        try:
            started.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            started.process.kill()
            started.process.wait()


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

    parts = children_of(demo.process.pid)
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
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(STOP_TIMEOUT_S) == 0, "".join(demo.output)
    stop_s = time.monotonic() - stopping
    demo.wait_for_line(r"Stopped the simulator, the worker and the broker\.", 5)
    assert "simulated " in "".join(demo.output)  # the simulator's summary: it got SIGINT

    assert not [pid for pid in parts if pid_alive(pid)], commands
    assert processes_mentioning(str(demo.data_dir)) == []
    print(f"demo ready in {ready_s:.1f} s, stopped in {stop_s:.1f} s")
