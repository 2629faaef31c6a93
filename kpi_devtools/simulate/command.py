"""`kpi-stream simulate`: send generated events when due, to Kafka or to a JSONL file."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from kpi_devtools.simulate.generator import (
    DEFAULT_QUEUES,
    DEFECTS,
    SimConfig,
    SimulatedEvent,
    generate,
    rfc3339,
    to_ms,
)
from stream.config import kafka_security_from_env
from stream.kafka_client import bootstrap_servers, client_security, log_to_stderr

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
PENDING_DELIVERIES = 10_000  # await Kafka acks at least this often


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Stats:
    """What was sent, for the one-line summary."""

    by_topic: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    invalid: int = 0

    def add(self, event: SimulatedEvent) -> None:
        self.by_topic[event.topic] += 1
        self.duplicates += event.kind == "duplicate"
        self.invalid += event.kind == "invalid"

    def summary(self) -> str:
        topics = ", ".join(f"{topic} {n}" for topic, n in sorted(self.by_topic.items()))
        counts = f"{self.duplicates} duplicates, {self.invalid} invalid"
        return f"{self.by_topic.total()} events ({topics}); {counts}" if topics else "0 events"


class Sink(Protocol):
    async def send(self, event: SimulatedEvent) -> None: ...

    async def flush(self) -> None: ...


async def pace(
    events: Iterable[SimulatedEvent],
    sink: Sink,
    *,
    now: Clock = utcnow,
    sleep: Sleep = asyncio.sleep,
    stats: Stats | None = None,
    until: datetime | None = None,
) -> Stats:
    """Send each event once `now()` reaches its send time (history at once), then idle `until`.

    `sleep(seconds)` waits; tests pass one that moves their `now` forward."""
    stats = Stats() if stats is None else stats
    for event in events:
        if event.emit_ms > to_ms(now()):
            await sink.flush()  # a live reader sees everything due before we idle
            await _sleep_until(event.emit_ms, now, sleep)
        elif stats.by_topic.total() % 1000 == 0:
            await sleep(0)  # a long backfill must not starve the event loop
        await sink.send(event)
        stats.add(event)
    await sink.flush()
    if until is not None:
        await _sleep_until(to_ms(until), now, sleep)
    return stats


async def _sleep_until(ms: int, now: Clock, sleep: Sleep) -> None:
    while (wait := ms - to_ms(now())) > 0:
        await sleep(wait / 1000)


class JsonlSink:
    """One JSON value per line; the `type` field stands in for the topic."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out

    async def send(self, event: SimulatedEvent) -> None:
        self._out.write(event.value + b"\n")

    async def flush(self) -> None:
        self._out.flush()


class KafkaSink:
    """An aiokafka producer; delivery failures surface at the next flush."""

    def __init__(self, producer: Any, topic_prefix: str = "") -> None:
        self._producer = producer
        self._topic_prefix = topic_prefix
        self._pending: list[asyncio.Future[Any]] = []

    async def send(self, event: SimulatedEvent) -> None:
        topic = self._topic_prefix + event.topic
        delivery = await self._producer.send(topic, event.value, key=event.key)
        self._pending.append(delivery)
        if len(self._pending) >= PENDING_DELIVERIES:
            await self.flush()

    async def flush(self) -> None:
        await asyncio.gather(*self._pending)
        self._pending.clear()


async def produce(
    events: Iterable[SimulatedEvent],
    broker: str,
    *,
    now: Clock = utcnow,
    stats: Stats | None = None,
    until: datetime | None = None,
    topic_prefix: str = "",
) -> Stats:
    """Produce the events to Kafka as they come due (key = ticket_id); see `pace`.

    `topic_prefix` goes before every topic name (KPI_TOPIC_PREFIX); `Stats` keeps the
    contract's names. Kafka security comes from the KPI_KAFKA_* variables, as for a worker."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(broker),
        acks="all",
        linger_ms=20,
        max_batch_size=256 * 1024,
        **client_security(kafka_security_from_env()),
    )
    await producer.start()
    try:
        sink = KafkaSink(producer, topic_prefix)
        return await pace(events, sink, now=now, stats=stats, until=until)
    finally:
        await producer.stop()


async def write_jsonl(
    events: Iterable[SimulatedEvent],
    out: IO[bytes],
    *,
    now: Clock = utcnow,
    stats: Stats | None = None,
    until: datetime | None = None,
) -> Stats:
    """Write the events to `out`, one JSON object per line, as they come due; see `pace`."""
    return await pace(events, JsonlSink(out), now=now, stats=stats, until=until)


def _zone(_ctx: click.Context, _param: click.Parameter, name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise click.BadParameter(f"unknown time zone {name!r}") from exc
    return name


def _instant(_ctx: click.Context, _param: click.Parameter, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"not an RFC 3339 time: {text!r}") from exc
    if when.tzinfo is None:
        raise click.BadParameter("needs an offset, e.g. Z or +01:00")
    return when.astimezone(UTC)


@click.command(context_settings={"show_default": True})
@click.option(
    "--rate",
    type=click.FloatRange(0, min_open=True),
    default=600.0,
    help="Tickets per hour at the weekday peak of the diurnal curve.",
)
@click.option(
    "--duration",
    type=click.FloatRange(0),
    default=None,
    show_default="until Ctrl-C",
    help="Seconds to run live after the backfill; 0 = history only. "
    "With --out and --backfill it defaults to 0.",
)
@click.option(
    "--backfill",
    type=click.FloatRange(0),
    default=0.0,
    help="Hours of history sent at once first, with past timestamps.",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    help="Random seed; with --now the output is byte-for-byte reproducible.",
)
@click.option(
    "--now",
    "now_at",
    callback=_instant,
    show_default="the wall clock",
    help="The simulated present, RFC 3339 (backfill ends and live mode starts here).",
)
@click.option(
    "--queues", default=",".join(DEFAULT_QUEUES), help="Comma-separated queue names, busiest first."
)
@click.option(
    "--agents",
    type=click.IntRange(1),
    default=80,
    help="Agents on shift (each handles ~10 tickets/h; fewer slows first replies).",
)
@click.option(
    "--contact-rate",
    type=click.FloatRange(0),
    default=180.0,
    help="Calls, chats and video contacts per hour at the weekday peak; 0 = tickets only.",
)
@click.option(
    "--floor-agents",
    type=click.IntRange(1),
    default=40,
    help="Agents on the contact floor, on 8-hour shifts with breaks (agent-001 ..).",
)
@click.option(
    "--duplicate-share",
    type=click.FloatRange(0, 0.5),
    default=0.02,
    help="Share of sent records that are exact re-sends of an earlier one.",
)
@click.option(
    "--invalid-share",
    type=click.FloatRange(0, 0.5),
    default=0.01,
    help="Share of sent records that the processor must reject to the DLQ.",
)
@click.option(
    "--timezone",
    envvar="KPI_TIMEZONE",
    show_envvar=True,
    default="UTC",
    callback=_zone,
    help="Time zone of the diurnal curve.",
)
@click.option(
    "--broker",
    envvar="KPI_BROKER",
    show_envvar=True,
    default="kafka://localhost:9092",
    help="Kafka bootstrap servers, comma-separated.",
)
@click.option(
    "--topic-prefix",
    envvar="KPI_TOPIC_PREFIX",
    show_envvar=True,
    default="",
    help="Put before every topic name (as the worker's KPI_TOPIC_PREFIX); Kafka only.",
)
@click.option(
    "--out",
    type=click.File("wb", lazy=True),
    default=None,
    help="Write JSONL to this file ('-' = stdout) instead of producing to Kafka.",
)
def simulate(
    rate: float,
    duration: float | None,
    backfill: float,
    seed: int,
    now_at: datetime | None,
    queues: str,
    agents: int,
    contact_rate: float,
    floor_agents: int,
    duplicate_share: float,
    invalid_share: float,
    timezone: str,
    broker: str,
    topic_prefix: str,
    out: IO[bytes] | None,
) -> None:
    """Generate realistic contact-centre events: tickets, replies, resolutions, surveys,
    calls and chats through the queues, and agents' statuses."""
    log_to_stderr("warning")  # a lost broker: one line per cause per 10 s, not a flood
    if out is not None and duration is None:
        if not backfill:
            raise click.UsageError("--out needs --backfill or --duration, so that it ends")
        duration = 0.0
    try:
        config = SimConfig(
            seed=seed,
            rate=rate,
            queues=tuple(q.strip() for q in queues.split(",") if q.strip()),
            agents=agents,
            contact_rate=contact_rate,
            floor_agents=floor_agents,
            duplicate_share=duplicate_share,
            invalid_share=invalid_share,
            timezone=timezone,
            # A JSONL line has no topic, so a type/topic mismatch would read as a valid event.
            defects=DEFECTS if out is None else tuple(d for d in DEFECTS if d != "type_mismatch"),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    now = now_at or utcnow()
    start = now - timedelta(hours=backfill)
    end = None if duration is None else now + timedelta(seconds=duration)
    events = generate(config, start, end)
    stats = Stats()
    if out is None:
        job = produce(events, broker, stats=stats, until=end, topic_prefix=topic_prefix)
    else:
        job = write_jsonl(events, out, stats=stats, until=end)
    try:
        asyncio.run(job)
    except KeyboardInterrupt:
        pass
    finally:
        stopped = utcnow() if end is None else min(end, utcnow())
        span = f"{rfc3339(start)} .. {rfc3339(stopped)}"
        click.echo(f"simulated {span} (seed {seed}): {stats.summary()}", err=True)
