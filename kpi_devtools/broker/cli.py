"""`kpi-stream broker start|stop|status`: a local Kafka broker for development."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from kpi_devtools.broker.harness import (
    COMPLETE_MARKER,
    KAFKA_VERSION,
    BrokerError,
    LocalBroker,
    answers_metadata,
    fetch_kafka,
    is_broker_process,
    kafka_libs_dir,
    stop_broker,
)
from kpi_devtools.broker.topics import ensure_topics

STATE_FILE = "broker.json"


@dataclass(frozen=True)
class BrokerState:
    """What `start` records so that `status` and `stop` can find the broker."""

    pid: int
    bootstrap: str
    partitions: int


def default_data_dir() -> Path:
    """`$KPI_DATA_DIR/broker`, else `./.kpi-data/broker`."""
    base = os.environ.get("KPI_DATA_DIR")
    return (Path(base) if base else Path.cwd() / ".kpi-data") / "broker"


def read_state(data_dir: Path) -> BrokerState | None:
    """The recorded broker of this data directory, if its JVM is still alive."""
    try:
        state = BrokerState(**json.loads((data_dir / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not is_broker_process(state.pid, data_dir / "server.properties"):
        return None
    return state


def _write_state(data_dir: Path, state: BrokerState) -> None:
    (data_dir / STATE_FILE).write_text(json.dumps(asdict(state)) + "\n")


def _forget_state(data_dir: Path) -> None:
    (data_dir / STATE_FILE).unlink(missing_ok=True)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, resolve_path=True, path_type=Path),
    default=default_data_dir,
    show_default="$KPI_DATA_DIR/broker or ./.kpi-data/broker",
    help="Broker data (topics, offsets, server.log) and its pid/state file.",
)


@click.group()
def broker() -> None:
    """Run a local single-node Kafka broker (KRaft) on 127.0.0.1."""


@broker.command()
@data_dir_option
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    show_default="a free port",
    help="Client (PLAINTEXT) port on 127.0.0.1.",
)
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=8,
    envvar="KPI_PARTITIONS",
    show_envvar=True,
    show_default=True,
    help="Partitions of the contract topics.",
)
@click.option(
    "--topic-prefix",
    default="",
    envvar="KPI_TOPIC_PREFIX",
    show_envvar=True,
    help="Put before every contract topic name.",
)
@click.option("--heap", default="512m", show_default=True, help="JVM maximum heap (-Xmx).")
@click.option("--foreground", is_flag=True, help="Stay attached; Ctrl-C stops the broker.")
def start(
    data_dir: Path,
    port: int | None,
    partitions: int,
    topic_prefix: str,
    heap: str,
    foreground: bool,
) -> None:
    """Start the broker, create the contract topics, print the bootstrap address."""
    running = read_state(data_dir)
    if running is not None:
        raise click.ClickException(
            f"A broker already runs from {data_dir} at {running.bootstrap} (pid {running.pid})."
        )
    if not (kafka_libs_dir() / COMPLETE_MARKER).is_file():
        click.echo(f"Fetching Kafka {KAFKA_VERSION} from Maven Central (only once)...", err=True)
    local = LocalBroker(
        data_dir, port=port, partitions=partitions, heap=heap, die_with_parent=foreground
    )
    try:
        bootstrap = local.start()
        asyncio.run(ensure_topics(bootstrap, partitions, prefix=topic_prefix))
    except BrokerError as exc:
        local.stop()
        raise click.ClickException(str(exc)) from exc
    assert local.pid is not None
    _write_state(data_dir, BrokerState(local.pid, bootstrap, partitions))
    click.echo(
        f"Kafka {KAFKA_VERSION} running at {bootstrap} (pid {local.pid}); log: {local.server_log}",
        err=True,
    )
    click.echo(bootstrap)
    if foreground:
        _run_until_signalled(local)
    else:
        click.echo("Stop it with: kpi-stream broker stop", err=True)


def _run_until_signalled(local: LocalBroker) -> None:
    """Keep the broker until Ctrl-C or SIGTERM; fail if the JVM dies on its own."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while local.is_running():
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("Stopping the broker...", err=True)
    else:
        tail = local.log_tail()
        raise click.ClickException(f"The broker exited on its own.\n{tail}")
    finally:
        local.stop()
        _forget_state(local.data_dir)


@broker.command()
@data_dir_option
def stop(data_dir: Path) -> None:
    """Stop the broker started from this data directory (no-op when none runs)."""
    state = read_state(data_dir)
    if state is not None:
        try:
            stop_broker(state.pid)
        except BrokerError as exc:
            raise click.ClickException(str(exc)) from exc
    _forget_state(data_dir)
    if state is None:
        click.echo(f"No broker is running from {data_dir}.")
        return
    click.echo(f"Stopped the broker at {state.bootstrap} (pid {state.pid}).")


@broker.command()
@data_dir_option
def status(data_dir: Path) -> None:
    """Print whether the broker runs and answers; exit status 0 only if it does."""
    state = read_state(data_dir)
    if state is None:
        click.echo(f"No broker is running from {data_dir}.")
        raise SystemExit(1)
    if not asyncio.run(answers_metadata(state.bootstrap)):
        click.echo(f"Broker pid {state.pid} runs but does not answer at {state.bootstrap}.")
        raise SystemExit(1)
    click.echo(
        f"Kafka {KAFKA_VERSION} running at {state.bootstrap} (pid {state.pid}, "
        f"{state.partitions} partitions per topic, data in {data_dir})."
    )


@broker.command()
def fetch() -> None:
    """Download the pinned Kafka jars into the cache (once; later calls reuse them)."""
    try:
        libs = fetch_kafka()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Kafka {KAFKA_VERSION} jars in {libs}")
