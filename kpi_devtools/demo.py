"""`kpi-stream demo`: a local Kafka broker, a worker and the simulator, on 127.0.0.1.

The demo owns a data directory, wiped at every start so that each run begins with
empty topics (a new backfill on top of an old run's events would count the overlap
twice). It holds the broker's data and log and the worker's state and log, and stays
after the demo ends for a look at the logs. The simulator writes to the terminal: only
its one-line summary when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Final

import click

from kpi_devtools.broker.harness import (
    COMPLETE_MARKER,
    KAFKA_VERSION,
    BrokerError,
    LocalBroker,
    kafka_libs_dir,
    port_is_free,
    require_java,
)
from kpi_devtools.broker.topics import ensure_topics
from kpi_devtools.supervisor import ChildFailed, Supervised

APP_ID: Final = "kpi-demo"
PARTITIONS: Final = 8
MARKER: Final = ".kpi-demo"  # only a directory holding it (or an empty one) is ever wiped
READY_TIMEOUT_S: Final = 180.0
SIMULATOR_STOP_S: Final = 10.0
WORKER_STOP_S: Final = 30.0
_PR_SET_PDEATHSIG: Final = 1
# Business-hours calendar and two queue policies (contract section 10), shipped with the code.
DEMO_POLICY: Final = Path(__file__).with_name("demo_policy.toml")


class DemoError(click.ClickException):
    """The demo could not start or one of its parts died."""


@dataclass
class Demo:
    """What the demo started, so that everything is stopped in reverse order."""

    data_dir: Path
    broker: LocalBroker | None = None
    children: list[Supervised] = field(default_factory=list)

    def check_alive(self) -> None:
        if self.broker is not None and not self.broker.is_running():
            raise DemoError(f"The Kafka broker exited.\n{self.broker.log_tail()}")
        try:
            for child in self.children:
                child.check_alive()
        except ChildFailed as exc:
            raise DemoError(str(exc)) from None

    def stop(self) -> None:
        """The children in reverse start order (simulator, worker), then the broker."""
        while self.children:
            child = self.children.pop()
            if not child.stop():
                click.echo(
                    f"The {child.name} ignored {child.stop_signal.name} for "
                    f"{child.stop_grace_s:.0f} s; killed it."
                )
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


@click.command(context_settings={"show_default": True})
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=6066,
    envvar="KPI_WEB_PORT",
    show_envvar=True,
    help="Port of the wallboard, /api/kpis and /metrics on 127.0.0.1.",
)
@click.option(
    "--backfill",
    type=click.FloatRange(0),
    default=48.0,
    help="Hours of history sent at once first, so that every KPI has data from the start "
    "(resolutions and surveys come hours to days after a ticket opens).",
)
@click.option(
    "--rate",
    type=click.FloatRange(0, min_open=True),
    default=600.0,
    help="Simulated tickets per hour at the weekday peak of the diurnal curve.",
)
@click.option("--seed", type=int, default=1, help="Random seed of the simulator.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, resolve_path=True, path_type=Path),
    default=Path(".kpi-data/demo"),
    help="Broker, worker and simulator data and logs; wiped at every start.",
)
@click.option(
    "--duration",
    type=click.FloatRange(0, min_open=True),
    default=None,
    show_default="until Ctrl-C",
    help="Seconds to run once the worker is ready, then stop as on Ctrl-C.",
)
def demo(
    port: int, backfill: float, rate: float, seed: int, data_dir: Path, duration: float | None
) -> None:
    """Run everything on this machine: a Kafka broker, a worker and the simulator.

    Prints the wallboard and /metrics URLs; Ctrl-C stops it all. Needs Java 11+
    (and Maven once, to fetch Kafka)."""
    if not port_is_free(port):
        raise DemoError(f"Port {port} on 127.0.0.1 is in use; choose another with --port.")
    try:
        require_java()
    except BrokerError as exc:
        raise DemoError(str(exc)) from exc
    _wipe(data_dir)
    running = Demo(data_dir)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with _stopped_at_exit(running):
            _start(running, port, backfill, rate, seed)
            _print_urls(running, port)
            _wait(running, duration)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    click.echo("Stopped the simulator, the worker and the broker.")


def _wipe(data_dir: Path) -> None:
    """Empty the demo directory; refuse one that the demo did not make."""
    if data_dir.exists():
        if any(data_dir.iterdir()) and not (data_dir / MARKER).is_file():
            raise DemoError(
                f"{data_dir} is not empty and was not made by `kpi-stream demo`; "
                "choose another --data-dir (the demo wipes its directory at every start)."
            )
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / MARKER).write_text("kpi-stream demo data; wiped at every demo start\n")


@contextlib.contextmanager
def _stopped_at_exit(running: Demo) -> Iterator[None]:
    """Stop everything on the way out; Ctrl-C or SIGTERM is a normal end (exit code 0)."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo("\nStopping...")
    finally:
        signal.signal(signal.SIGINT, _ignore)  # a second Ctrl-C must not cut the clean-up
        signal.signal(signal.SIGTERM, _ignore)
        running.stop()


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    click.echo("Still stopping; please wait.")


def _start(running: Demo, port: int, backfill: float, rate: float, seed: int) -> None:
    if not (kafka_libs_dir() / COMPLETE_MARKER).is_file():
        click.echo(f"Fetching Kafka {KAFKA_VERSION} from Maven Central (only once)...")
    click.echo(f"Starting Kafka {KAFKA_VERSION}...")
    running.broker = LocalBroker(running.data_dir / "broker", partitions=PARTITIONS)
    try:
        bootstrap = running.broker.start()
        asyncio.run(ensure_topics(bootstrap, PARTITIONS))
    except BrokerError as exc:
        raise DemoError(str(exc)) from exc
    broker_url = f"kafka://{bootstrap}"
    click.echo(f"Kafka is up at {bootstrap}; starting a worker and the simulator...")
    worker_env = {
        **os.environ,
        "KPI_BROKER": broker_url,
        "KPI_WEB_HOST": "127.0.0.1",
        "KPI_WEB_PORT": str(port),
        "KPI_DATA_DIR": str(running.data_dir / "worker"),
        "KPI_APP_ID": APP_ID,
        "KPI_PARTITIONS": str(PARTITIONS),
        "KPI_TOPIC_PREFIX": "",
        "KPI_ADVERTISED_URL": "",
        "KPI_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "KPI_SLA_CONFIG": str(DEMO_POLICY),
    }
    worker = _spawn("worker", ["worker"], worker_env, running.data_dir / "worker.log")
    worker.stop_grace_s = WORKER_STOP_S
    running.children.append(worker)
    simulator_args = ["simulate", "--backfill", str(backfill), "--rate", str(rate),
                      "--seed", str(seed), "--broker", broker_url, "--topic-prefix", ""]  # fmt: skip
    simulator = _spawn("simulator", simulator_args, dict(os.environ), None)
    # SIGINT: the simulator prints its one-line summary of what it sent.
    simulator.stop_signal, simulator.stop_grace_s = signal.SIGINT, SIMULATOR_STOP_S
    running.children.append(simulator)
    _wait_ready(running, f"http://127.0.0.1:{port}/readyz")


def _spawn(name: str, args: list[str], env: dict[str, str], log: Path | None) -> Supervised:
    """`python -m stream ARGS` in its own process group, so that Ctrl-C in the terminal
    reaches only the demo, which stops its parts in order; a log file takes stdout and
    stderr (without one, stderr stays the demo's: the simulator's summary line)."""
    child = Supervised(
        name, ["-m", "stream", *args], env=env, log=log, own_process_group=True,
        preexec=_child_setup,
    )  # fmt: skip
    return child.start()


def _child_setup() -> None:
    """In the child before exec: SIGTERM if the demo dies without stopping it, and SIGINT
    back to its default even if the demo started with it ignored (as a background job)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_ready(running: Demo, url: str) -> None:
    """Until the worker's /readyz says 200 (partitions assigned, state recovered)."""
    try:
        running.children[0].wait_ready(url, READY_TIMEOUT_S, interval_s=0.25)
    except ChildFailed as exc:
        running.check_alive()  # the broker or the simulator may be the one that died
        raise DemoError(str(exc)) from None


def _print_urls(running: Demo, port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    logs = running.data_dir
    click.echo(
        "\nkpi-stream demo is running.\n"
        f"  wallboard  {base}/\n"
        f"  agents     {base}/agents\n"
        f"  metrics    {base}/metrics\n"
        f"  api        {base}/api/kpis\n"
        f"  logs       {logs / 'worker.log'}, {logs / 'broker' / 'server.log'}\n"
        "The worker is reading the simulated history; the board fills within seconds.\n"
        "Press Ctrl-C to stop."
    )


def _wait(running: Demo, duration: float | None) -> None:
    """Until Ctrl-C, SIGTERM or the end of `duration`; a part that dies ends the demo."""
    end = None if duration is None else time.monotonic() + duration
    while end is None or time.monotonic() < end:
        running.check_alive()
        time.sleep(0.5)
