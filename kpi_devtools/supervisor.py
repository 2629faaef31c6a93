"""One way to run a child process (a worker, the simulator, the demo, the Kafka broker,
Prometheus): spawn it with its output in a log file, wait until it is ready (a URL answers
200, or any check), stop it with a signal and a grace period, then kill it. Used by
`kpi-stream demo` and `broker`, the tests and the benchmarks; never by a worker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from stream.errors import KpiStreamError

KILL_WAIT_S: Final = 5.0


class ChildFailed(KpiStreamError):
    """A supervised process exited, or did not get ready in time."""


class Supervised:
    """A child process and its log: `["-m", "stream", ...]` runs this Python, any other
    `args` run as they are. With `own_process_group` it runs in its own session (Ctrl-C in
    the terminal does not reach it) and its stop and kill signals go to its whole group."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        cwd: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_grace_s: float = 30.0,
        own_process_group: bool = False,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.args = [sys.executable, *args] if args[0] == "-m" else list(args)
        self.env = None if env is None else dict(env)
        self.log = log  # stdout and stderr; without one, stderr stays the parent's
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.stop_grace_s = stop_grace_s
        self.own_process_group = own_process_group
        self.preexec = preexec
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ChildFailed(f"the {self.name} was not started")
        return self.process.pid

    def start(self) -> Supervised:
        """Spawn it (again, after a stop); output goes to the end of the log file."""
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(self.log.open("ab")) if self.log else subprocess.DEVNULL
            self.process = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if self.log else None,
                start_new_session=self.own_process_group,
                preexec_fn=self.preexec,
            )
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        """Raise ChildFailed (with the end of its log) if it has exited."""
        if self.process is not None and (code := self.process.poll()) is not None:
            raise ChildFailed(f"The {self.name} exited with code {code}.{self.log_tail()}")

    def wait_until(
        self, ready: Callable[[], bool], timeout_s: float, interval_s: float = 0.2
    ) -> float:
        """Until `ready()` is true while it runs; returns the perf_counter time it was."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if ready():
                return time.perf_counter()
            time.sleep(interval_s)
        raise ChildFailed(
            f"The {self.name} was not ready within {timeout_s:.0f} s.{self.log_tail()}"
        )

    def wait_ready(self, url: str, timeout_s: float, interval_s: float = 0.2) -> float:
        """Until `url` answers 200; returns the perf_counter time it did."""
        return self.wait_until(lambda: answers_200(url), timeout_s, interval_s)

    def wait_exit(self, timeout_s: float) -> int:
        """The exit code once it has ended by itself."""
        if self.process is None:
            raise ChildFailed(f"the {self.name} was not started")
        return self.process.wait(timeout_s)

    def stop(self) -> bool:
        """Its stop signal, then SIGKILL after the grace period; False if it had to be killed."""
        if not self.running():
            return True
        process = self.process
        assert process is not None
        return stop_process(
            process.pid,
            self.stop_signal,
            self.stop_grace_s,
            has_exited=lambda: process.poll() is not None,
            group=self.own_process_group,
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown at all."""
        if self.running():
            assert self.process is not None
            _send(self.process.pid, signal.SIGKILL, self.own_process_group)
            self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        if self.log is None or not self.log.is_file():
            return ""
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return f"\n--- {self.log} (last {lines} lines) ---\n{tail}"


def answers_200(url: str) -> bool:
    """True when a GET of `url` answers 200."""
    with (
        contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
        urllib.request.urlopen(url, timeout=5) as response,
    ):
        return bool(response.status == 200)
    return False


def stop_process(
    pid: int,
    stop_signal: signal.Signals = signal.SIGTERM,
    grace_s: float = 30.0,
    *,
    has_exited: Callable[[], bool],
    group: bool = False,
) -> bool:
    """`stop_signal`, then SIGKILL after `grace_s`; False if it had to be killed.

    `has_exited` tells when it has ended (`Popen.poll` for a child; for a process started
    by another one, its /proc entry). `group` signals its whole process group."""
    for sig, wait_s in ((stop_signal, grace_s), (signal.SIGKILL, KILL_WAIT_S)):
        _send(pid, sig, group)
        deadline = time.monotonic() + wait_s
        while not has_exited():
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        else:
            return sig == stop_signal
    raise ChildFailed(f"Process {pid} did not exit even after SIGKILL.")


def _send(pid: int, sig: signal.Signals, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
