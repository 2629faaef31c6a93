"""Command line: `kpi-stream worker | report | simulate | demo | broker`."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
import orjson

from stream import __version__
from stream.config import agent_metrics_from_env, load_kpi_config
from stream.errors import ConfigError
from stream.kpi.windows import to_ms


class Commands(click.Group):
    """The command group. The development commands live in the `kpi_devtools` package,
    outside the worker's: they are imported only when one is run, so a worker never loads
    the broker harness, the demo or the simulator, and an installation without them (the
    worker image) lists only `worker` and `report`."""

    DEVELOPMENT: Final = {
        "broker": ("kpi_devtools.broker.cli", "broker"),
        "demo": ("kpi_devtools.demo", "demo"),
        "simulate": ("kpi_devtools.simulate.command", "simulate"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        tools = self.DEVELOPMENT if importlib.util.find_spec("kpi_devtools") else {}
        return sorted([*super().list_commands(ctx), *tools])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.DEVELOPMENT:
            return super().get_command(ctx, cmd_name)
        if importlib.util.find_spec("kpi_devtools") is None:
            raise click.UsageError(
                f"`kpi-stream {cmd_name}` is a development tool (package kpi_devtools), "
                "not installed here; the worker image runs only `worker` and `report`."
            )
        module, name = self.DEVELOPMENT[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), name)
        return command


@click.group(
    cls=Commands,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(__version__, prog_name="kpi-stream")
def main() -> None:
    """Real-time customer-service KPIs from Kafka to Prometheus."""


def _parse_now(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not RFC 3339") from exc
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} needs a UTC offset, e.g. 2026-11-22T10:00:00Z")
    return to_ms(moment)


def _parse_zone(_ctx: click.Context, _param: click.Parameter, value: str) -> ZoneInfo:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise click.BadParameter(f"unknown time zone {value!r}") from exc


@main.command()
@click.argument("events", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option(
    "--now",
    "now_ms",
    required=True,
    callback=_parse_now,
    help="The instant to report at (RFC 3339 with offset).",
)
@click.option(
    "--tz",
    "tz",
    default="UTC",
    envvar="KPI_TIMEZONE",
    show_envvar=True,
    callback=_parse_zone,
    help="Time zone of the `today` window.",
)
@click.option(
    "--sla-config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="KPI_SLA_CONFIG",
    show_envvar=True,
    help="KPI policy TOML file.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["prom", "json"]),
    default="prom",
    help="Prometheus text format or a JSON list of samples.",
)
def report(
    events: Path, now_ms: int, tz: ZoneInfo, sla_config: Path | None, output_format: str
) -> None:
    """Apply the KPI rules to EVENTS.jsonl (one event per line; - for stdin) and print
    what a single worker would export at --now."""
    from stream.report import prometheus_text, run_batch, samples

    try:
        config = load_kpi_config(sla_config, tz)
        per_agent = agent_metrics_from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        stream = sys.stdin.buffer if str(events) == "-" else events.open("rb")
    except OSError as exc:
        raise click.ClickException(f"cannot read {events}: {exc.strerror}") from exc
    with stream:
        result = run_batch(_with_progress(stream, events), now_ms, config, tz)
    rejected = sum(result.rejected.values())
    summary = ", ".join(f"{reason}={n}" for reason, n in sorted(result.rejected.items()))
    click.echo(
        f"report: {result.accepted} events accepted ({result.duplicates} duplicates), "
        f"{rejected} rejected{': ' + summary if summary else ''}",
        err=True,
    )
    for line, reason, detail in result.first_rejections:
        click.echo(f"  line {line}: {reason}: {detail}", err=True)
    if rejected > len(result.first_rejections):
        hidden = rejected - len(result.first_rejections)
        click.echo(f"  ... and {hidden} more invalid lines not shown", err=True)
    if output_format == "json":
        sys.stdout.buffer.write(
            orjson.dumps(samples(result, per_agent), option=orjson.OPT_INDENT_2) + b"\n"
        )
    else:
        sys.stdout.buffer.write(prometheus_text(result, per_agent))


@main.command()
@click.option(
    "--loglevel",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
    envvar="KPI_LOGLEVEL",
    show_envvar=True,
    help="Log level.",
)
def worker(loglevel: str) -> None:
    """Run a worker (start more with the same command to scale out).

    Configured by KPI_* environment variables; see the README's configuration table."""
    from stream.config import settings_from_env
    from stream.worker import run_worker

    try:
        settings = settings_from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    run_worker(settings, loglevel)


def _with_progress(stream: BinaryIO, path: Path) -> Iterator[bytes]:
    """Lines of `stream`, with a progress bar on stderr when it is a terminal."""
    if not sys.stderr.isatty() or str(path) == "-":
        yield from stream
        return
    size = max(1, os.path.getsize(path))
    done = 0
    for number, line in enumerate(stream, start=1):
        done += len(line)
        if number % 50_000 == 0:
            filled = 40 * done // size
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (40 - filled)}] {100 * done // size}%")
        yield line
    sys.stderr.write("\r" + " " * 50 + "\r")
