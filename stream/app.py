"""The one Faust app: topics, the ticket table, the agent, and the rebalance hooks.

All decisions live in `Processor` (pure); this module only wires it to Kafka.
"""

from __future__ import annotations

import logging
import ssl
import time
import weakref
from typing import Any

import faust
import faust.streams as faust_streams
from faust.serializers import codecs
from faust.tables.table import Table
from faust.types import TP

from stream.config import Settings
from stream.events import Rejection
from stream.kpi.entity import partition_of
from stream.kpi.types import DLQ_TOPIC, INPUT_TOPICS
from stream.processor import Processor

log = logging.getLogger(__name__)

TICKET_TABLE = "tickets"
SWEEP_INTERVAL_S = 600.0
OFFSETS_REFRESH_S = 2.0
BATCH_MAX = 2000
BATCH_WITHIN_S = 0.05


class Utf8Codec(codecs.Codec):
    """Table keys as text; the bytes equal the message key, so partitions line up."""

    def _dumps(self, obj: Any) -> bytes:
        return str(obj).encode()

    def _loads(self, s: bytes) -> Any:
        return s.decode()


codecs.register("kpi-utf8", Utf8Codec())


def _credentials(settings: Settings) -> Any:
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
        )
        if settings.ssl_certfile:
            context.load_cert_chain(
                str(settings.ssl_certfile),
                str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
            )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password,
        ssl_context=context,
        mechanism=settings.sasl_mechanism,
    )


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """The same KPI_KAFKA_* security as keyword arguments of a plain aiokafka client."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    return dict(credentials_to_aiokafka_auth(_credentials(settings)))


class KpiApp:
    """The Faust app of a worker, with its processor."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.processor = Processor(
            settings.kpi, settings.timezone, settings.partitions, started_ms=_now_ms()
        )
        self.recovered = False
        self.positions: dict[TP, int] = {}  # next offset to process, per input partition
        self.highwaters: dict[TP, int] = {}  # from the broker, see _refresh_offsets
        prefix = settings.topic_prefix
        self.input_topics = tuple(prefix + t for t in INPUT_TOPICS)
        self.app = faust.App(
            settings.app_id,
            broker=settings.broker,
            broker_credentials=_credentials(settings),
            store=settings.store,
            datadir=str(settings.data_dir),
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            web_enabled=False,
            canonical_url=settings.web_url,
            consumer_auto_offset_reset="earliest",
            table_standby_replicas=settings.standby_replicas,
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=settings.session_timeout_s / 10,
            stream_recovery_delay=0.0,
            # Changelog and DLQ records are batched for up to 100 ms (1 MB) instead of a
            # produce request each, by far the largest per-event cost otherwise. Live
            # numbers do not wait for it: the index is updated in memory first.
            producer_linger=0.1,
            producer_max_batch_size=1_048_576,
        )
        self.source = self.app.topic(
            *self.input_topics,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        self.dlq = self.app.topic(
            prefix + DLQ_TOPIC,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        self.tickets: Table[str, bytes] = self.app.Table(  # type: ignore[assignment]
            TICKET_TABLE,
            partitions=settings.partitions,
            on_recover=self._on_recovered,
        )
        # Faust derives a table's serializers from its types (JSON by default): set ours,
        # then rebuild the changelog topic so that writes and recovery both use them. The
        # values are the processor's changelog bytes; the processor holds the records.
        self.tickets.key_serializer = "kpi-utf8"
        self.tickets.value_serializer = "raw"
        self.tickets.changelog_topic = self.tickets._new_changelog_topic()
        self.app.agent(self.source, name="kpi-events", concurrency=1)(self._process)
        # Sweep often enough that expiry lags retention by at most a quarter of it.
        sweep_every = min(SWEEP_INTERVAL_S, settings.kpi.retention_ms / 4000)
        self.app.timer(sweep_every)(self._sweep_expired)
        self.app.timer(OFFSETS_REFRESH_S)(self._refresh_offsets)
        self.app.on_partitions_revoked.connect(self._on_revoked)

    async def _process(self, stream: Any) -> None:
        """Apply events in batches; one changelog record per changed ticket per batch.

        `take_events` acks a batch only after this loop body has run, and Faust flushes
        the producer before it commits offsets, so every changelog and dead-letter record
        of a batch is written before its offsets are: at-least-once, and the merge makes
        replays harmless.
        """
        store = self.tickets.data
        # Faust pauses the stream whenever more than 100 records wait in its producer
        # buffer (and logs a warning each time); a batch writes up to BATCH_MAX.
        self.app.producer.buffer.max_messages = 2 * BATCH_MAX
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            changed: dict[str, tuple[int, bytes | None]] = {}
            now = _now_ms()
            for event in batch:
                message = event.message
                if message.partition not in self.processor.assigned:
                    # Faust resumes the stream a moment before its recovery callback.
                    self._restore(self._owned())
                    if message.partition not in self.processor.assigned:
                        continue  # revoked mid-batch: its new owner processes it
                outcome = self.processor.handle(
                    message.topic.removeprefix(self.settings.topic_prefix),
                    message.partition,
                    message.key,
                    message.value,
                    now,
                )
                self.positions[message.tp] = message.offset + 1
                if outcome.table is not None and outcome.key is not None:
                    raw = self.processor.record_bytes(outcome.table, message.partition, outcome.key)
                    # The store mirrors every record at once: a RocksDB store restarts warm,
                    # and a partition revoked mid-batch is restored from it exactly. RocksDB
                    # picks its partition's database by the current event.
                    _set_current_event(event)
                    store[outcome.key] = raw
                    changed[outcome.key] = message.partition, raw
                elif outcome.rejection is not None:
                    await self._dead_letter(message, outcome.rejection)
            for key, (partition, raw) in changed.items():
                self.tickets.send_changelog(partition, key, raw)

    async def _dead_letter(self, message: Any, rejection: Rejection) -> None:
        """The original bytes, with why and where from in the headers."""
        await self.dlq.send(
            key=message.key,
            value=message.value,
            partition=message.partition,
            headers={
                "kpi-reason": rejection.reason.encode(),
                "kpi-detail": rejection.detail.encode(),
                "kpi-topic": message.topic.encode(),
                "kpi-partition": str(message.partition).encode(),
                "kpi-offset": str(message.offset).encode(),
            },
        )

    async def _on_recovered(self) -> None:
        """After table recovery: drop partitions no longer owned, restore the new ones."""
        owned = self._owned()
        self.processor.revoke(self.processor.assigned - owned)
        self._restore(owned)
        self.recovered = True

    def _owned(self) -> set[int]:
        return {
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic in self.input_topics
        }

    def _restore(self, owned: set[int]) -> None:
        """Load the records of owned partitions not yet served from the store; serve them."""
        new = owned - self.processor.assigned
        if not new:
            return
        started = time.monotonic()
        partitions = self.settings.partitions
        # The memory store remembers the partition of every key it recovered; other
        # keys are hashed.
        recovered: dict[str, int] = getattr(self.tickets.data, "_key_partition", {})
        restored: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in new}
        for key, raw in self.tickets.data.items():
            partition = recovered.get(key)
            if partition is None:
                partition = partition_of(key, partitions)
            if partition in restored:
                restored[partition].append((key.encode(), raw))
        for partition, records in restored.items():
            self.processor.restore(TICKET_TABLE, partition, records)
        self.processor.assign(new)
        log.info("indexed partitions %s in %.2f s", sorted(new), time.monotonic() - started)

    async def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Signal handler (sender, revoked): stop exporting revoked partitions at once."""
        revoked: set[TP] = args[0]
        self.recovered = False
        self.processor.revoke({tp.partition for tp in revoked if tp.topic in self.input_topics})
        for tp in revoked:
            self.positions.pop(tp, None)
            self.highwaters.pop(tp, None)

    async def _sweep_expired(self) -> None:
        """Delete entities past retention from the processor, the store and the changelog."""
        for _table, partition, key in self.processor.expire(_now_ms()):  # tickets only
            # Outside stream iteration Faust refuses `del table[key]`: delete from the
            # store and write the tombstone to the key's partition ourselves.
            self.tickets.data.pop(key, None)
            self.tickets.send_changelog(partition, key, None)

    async def _refresh_offsets(self) -> None:
        """Ask the broker for the high watermarks of the owned input partitions.

        A timer rather than the scrape does it, because the request goes through the
        consumer thread and can take a second.
        """
        consumer = self.app.consumer
        owned = [tp for tp in consumer.assignment() if tp.topic in self.input_topics]
        if not owned:
            return
        try:
            highwaters = dict(await consumer.highwaters(*owned))
        except Exception as exc:  # e.g. a rebalance took a partition away meanwhile
            # Only a gauge depends on this: never let it stop the worker (Faust crashes the
            # whole app on an exception in a timer).
            log.warning("could not refresh high watermarks: %r", exc)
            return
        assigned = consumer.assignment()
        self.highwaters = {tp: hw for tp, hw in highwaters.items() if tp in assigned}

    def lag(self) -> dict[TP, int]:
        """Messages not yet processed, per owned input partition.

        The high watermark is the newer of the broker's (refreshed every few seconds) and
        the fetcher's last known one, which lags behind when the worker is behind.
        """
        consumer = self.app.consumer
        result = {}
        for tp in consumer.assignment():
            if tp.topic not in self.input_topics:
                continue
            highwater = max(self.highwaters.get(tp, -1), consumer.highwater(tp) or -1)
            position = self.positions.get(tp)
            if highwater >= 0 and position is not None:
                result[tp] = max(0, highwater - position)
        return result


def _set_current_event(event: Any) -> None:
    faust_streams._current_event.set(weakref.ref(event))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
