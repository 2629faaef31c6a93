"""The one process supervisor of the demo, the broker harness, the tests and the benchmarks:
spawn with a log, wait until ready, stop with a signal and a grace period, then kill."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from kpi_devtools.broker.harness import free_ports, pid_alive
from kpi_devtools.supervisor import ChildFailed, Supervised

IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ignoring SIGTERM', flush=True)\n"
    "time.sleep(60)\n"
)


def python(
    name: str, code: str, log: Path, stop_grace_s: float = 30.0, own_process_group: bool = False
) -> Supervised:
    return Supervised(
        name,
        [sys.executable, "-c", code],
        log=log,
        stop_grace_s=stop_grace_s,
        own_process_group=own_process_group,
    )


def test_a_child_that_stops_on_its_signal_is_not_killed(tmp_path: Path) -> None:
    child = python("sleeper", "import time; time.sleep(60)", tmp_path / "log").start()
    assert child.running()
    assert child.stop() is True
    assert child.process is not None and child.process.returncode == -signal.SIGTERM


def test_a_child_that_ignores_its_signal_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    log = tmp_path / "log"
    child = python("stubborn", IGNORES_SIGTERM, log, stop_grace_s=0.5).start()
    child.wait_until(lambda: "ignoring SIGTERM" in log.read_text(), 30)
    assert child.stop() is False
    assert child.process is not None and child.process.returncode == -signal.SIGKILL


def test_its_own_process_group_is_stopped_as_a_whole(tmp_path: Path) -> None:
    log = tmp_path / "log"
    spawns = (
        "import subprocess, sys, time\n"
        "grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(grandchild.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = python("parent", spawns, log, own_process_group=True).start()
    child.wait_until(lambda: log.read_text().strip().isdigit(), 30)
    grandchild = int(log.read_text())
    assert child.stop() is True
    deadline = time.monotonic() + 10
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(grandchild)


def test_waiting_for_a_child_that_exits_fails_with_its_code_and_log(tmp_path: Path) -> None:
    code = "print('bad config: KPI_BROKER'); raise SystemExit(3)"
    child = python("worker", code, tmp_path / "log").start()
    with pytest.raises(ChildFailed, match=r"The worker exited with code 3\.") as failed:
        child.wait_until(lambda: False, 30)
    assert "bad config: KPI_BROKER" in str(failed.value)


def test_waiting_ends_with_a_timeout_while_it_runs(tmp_path: Path) -> None:
    child = python("sleeper", "import time; time.sleep(60)", tmp_path / "log").start()
    try:
        with pytest.raises(ChildFailed, match=r"The sleeper was not ready within 0 s\."):
            child.wait_until(lambda: False, 0.3)
    finally:
        child.kill()
    assert not child.running()


def test_wait_ready_until_its_url_answers_200(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    (tmp_path / "index.html").write_text("ok")
    server = Supervised(
        "web server",
        ["-m", "http.server", str(port), "--bind", "127.0.0.1"],
        log=tmp_path / "log",
        cwd=tmp_path,
    ).start()
    try:
        server.wait_ready(f"http://127.0.0.1:{port}/index.html", 30)
        with pytest.raises(ChildFailed, match="not ready"):
            server.wait_ready(f"http://127.0.0.1:{port}/missing", 0.5)
    finally:
        assert server.stop() is True
