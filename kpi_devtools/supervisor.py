"""One way to run a child process (a worker, the simulator): spawn it with its output in a
log file, wait until a URL of it answers 200, stop it with a signal and a grace period,
then kill it. Used by `kpi-stream demo`, the tests and the benchmarks; never by a worker."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from stream.errors import KpiStreamError


class ChildFailed(KpiStreamError):
    """A supervised process exited, or did not get ready in time."""


class Supervised:
    """A `python -m stream ARGS` style child process and its log."""

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
                process_group=0 if self.own_process_group else None,
                preexec_fn=self.preexec,
            )
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        """Raise ChildFailed (with the end of its log) if it has exited."""
        if self.process is not None and (code := self.process.poll()) is not None:
            raise ChildFailed(f"The {self.name} exited with code {code}.{self.log_tail()}")

    def wait_ready(self, url: str, timeout_s: float, interval_s: float = 0.2) -> float:
        """Until `url` answers 200; returns the perf_counter time it did."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            with (
                contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
                urllib.request.urlopen(url, timeout=5) as response,
            ):
                if response.status == 200:
                    return time.perf_counter()
            time.sleep(interval_s)
        raise ChildFailed(
            f"The {self.name} was not ready within {timeout_s:.0f} s.{self.log_tail()}"
        )

    def wait_exit(self, timeout_s: float) -> int:
        """The exit code once it has ended by itself."""
        if self.process is None:
            raise ChildFailed(f"the {self.name} was not started")
        return self.process.wait(timeout_s)

    def stop(self) -> bool:
        """Its stop signal, then SIGKILL after the grace period; False if it had to be killed."""
        if not self.running():
            return True
        assert self.process is not None
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(self.stop_grace_s)
            return True
        except subprocess.TimeoutExpired:
            self.kill()
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown at all."""
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        if self.log is None or not self.log.is_file():
            return ""
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return f"\n--- {self.log} (last {lines} lines) ---\n{tail}"
