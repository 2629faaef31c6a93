"""The pipelined batch loop (`stream.runtime.loop` + `stream.runtime.pipeline`) against a fake
consumer and a fake producer whose every write waits until the test acknowledges or fails it.

The fake processor makes each changelog value name the input offset it reflects
(`key@offset`), so the tests can check, at every commit, that every message below the
committed offset is on the changelog (or in the dead-letter topic), and that the values of
one key landed in the order they were produced.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.structs import ConsumerRecord, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.config import Settings
from stream.events import Rejection
from stream.kpi.types import DLQ_TOPIC
from stream.processor import Outcome
from stream.runtime import loop as loop_module
from stream.runtime.loop import ProcessingFailed, Runtime
from stream.runtime.pipeline import Pipeline

INPUT = "in"
TABLE = "things"
PARTITIONS = 2
TPS = [TopicPartition(INPUT, p) for p in range(PARTITIONS)]
CHANGELOG = f"kpi-stream-{TABLE}-changelog"
DLQ = DLQ_TOPIC


class FakeProcessor:
    """Accepts `key` messages (value: anything but b"bad"); the changelog value of a key is
    `key@offset` of the last message applied to it (the value carries the offset)."""

    tables = (TABLE,)
    topics = (INPUT,)

    def __init__(self) -> None:
        self.latest: dict[str, bytes] = {}
        self.handled: list[bytes] = []
        self.poison: bytes | None = None

    def handle(
        self, topic: str, partition: int, key: bytes | None, value: bytes | None, now_ms: int
    ) -> Outcome:
        assert value is not None and key is not None
        self.handled.append(value)
        if value == self.poison:
            raise IndexError("poison")
        if value.startswith(b"bad"):
            return Outcome("rejected", Rejection("invalid_json", "bad"))
        self.latest[key.decode()] = value
        return Outcome("accepted", None, TABLE, key.decode())

    def record_bytes(self, table: str, partition: int, key: str) -> bytes:
        return key.encode() + b"@" + self.latest[key]


class FakeBatch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []

    def append(self, *, key: bytes, value: bytes | None, timestamp: None) -> object:
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


@dataclass
class Write:
    """One produce call waiting for the broker's answer."""

    topic: str
    partition: int
    records: list[tuple[bytes, bytes | None]]
    answer: asyncio.Future[None]


@dataclass
class FakeProducer:
    pending: list[Write] = field(default_factory=list)
    landed: list[tuple[str, int, bytes, bytes | None]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, partition: int) -> Any:
        return self._write(topic, partition, list(batch.records))

    async def send(
        self, topic: str, value: bytes, *, key: bytes, partition: int, headers: Any
    ) -> Any:
        return self._write(topic, partition, [(key, value)])

    def _write(self, topic: str, partition: int, records: list[tuple[bytes, bytes | None]]) -> Any:
        answer = asyncio.get_running_loop().create_future()
        self.pending.append(Write(topic, partition, records, answer))
        self.log.append(
            f"send {topic}[{partition}] " + ",".join(v.decode() for _, v in records if v)
        )
        return answer

    def ack(self, index: int = 0) -> None:
        write = self.pending.pop(index)
        self.landed += [(write.topic, write.partition, k, v) for k, v in write.records]
        self.log.append(f"ack {write.topic}[{write.partition}]")
        write.answer.set_result(None)

    def fail(self, index: int = 0, error: BaseException | None = None) -> None:
        write = self.pending.pop(index)
        self.log.append(f"fail {write.topic}[{write.partition}]")
        write.answer.set_exception(error or KafkaTimeoutError())

    def landed_values(self, topic: str) -> dict[bytes, list[bytes | None]]:
        values: dict[bytes, list[bytes | None]] = defaultdict(list)
        for t, _, key, value in self.landed:
            if t == topic:
                values[key].append(value)
        return values


class FakeConsumer:
    """Hands out scripted batches; a commit checks that everything it covers has landed."""

    def __init__(self, producer: FakeProducer, check: Callable[[dict[TopicPartition, int]], None]):
        self.batches: list[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]] = []
        self.offsets = Counter[TopicPartition]()
        self.committed: dict[TopicPartition, int] = {}
        self.producer, self.check = producer, check

    def add(self, *messages: tuple[int, str, str]) -> None:
        """One batch of (partition, key, value) messages."""
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = defaultdict(list)
        for partition, key, value in messages:
            tp = TPS[partition]
            record = ConsumerRecord(
                INPUT, partition, self.offsets[tp], 0, 0, key.encode(), value.encode(), None,
                len(key), len(value), [],
            )  # fmt: skip
            self.offsets[tp] += 1
            batch[tp].append(record)
        self.batches.append(batch)

    async def getmany(self, *, timeout_ms: int, max_records: int) -> Any:
        await asyncio.sleep(0)
        return self.batches.pop(0) if self.batches else {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.check(offsets)
        for tp, offset in offsets.items():
            assert offset >= self.committed.get(tp, 0), "a commit went backwards"
            self.committed[tp] = offset
        self.producer.log.append(
            "commit " + " ".join(f"{tp.partition}:{o}" for tp, o in offsets.items())
        )

    async def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in tps}

    def highwater(self, tp: TopicPartition) -> None:
        return None


class Harness:
    """A Runtime whose Kafka clients are the fakes above (`await Harness.new()`)."""

    @classmethod
    async def new(cls) -> Harness:
        harness = cls()
        real = harness.runtime
        await asyncio.gather(real.consumer.stop(), real.producer.stop(), real.restorer.stop())
        harness.runtime.consumer = harness.consumer  # type: ignore[assignment]
        harness.runtime.producer = harness.producer  # type: ignore[assignment]
        return harness

    def __init__(self) -> None:
        self.processor = FakeProcessor()
        self.runtime = Runtime(Settings(partitions=PARTITIONS), self.processor)  # type: ignore[arg-type]
        self.producer = FakeProducer()
        self.consumer = FakeConsumer(self.producer, self.check_commit)
        self.runtime.positions = {tp: 0 for tp in TPS}
        self.runtime.serving = True
        self.messages: dict[TopicPartition, list[tuple[str, str]]] = defaultdict(list)

    def add(self, *messages: tuple[int, str, str]) -> None:
        for partition, key, value in messages:
            self.messages[TPS[partition]].append((key, value))
        self.consumer.add(*messages)

    def check_commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Every message below a committed offset is on the changelog or in the DLQ."""
        changelog = self.producer.landed_values(CHANGELOG)
        dead = {v for t, _, _, v in self.producer.landed if t == DLQ}
        for tp, offset in offsets.items():
            for key, value in self.messages[tp][:offset]:
                if value.startswith("bad"):
                    assert value.encode() in dead, f"committed {tp}@{offset} before DLQ {value}"
                else:
                    landed = [int(v.split(b"@")[1]) for v in changelog[key.encode()] if v]
                    assert landed and max(landed) >= int(value), (
                        f"committed {tp}@{offset} before {key}@{value} was acknowledged"
                    )

    def assert_key_order(self) -> None:
        """The values of each key landed in the order they were produced."""
        for key, values in self.producer.landed_values(CHANGELOG).items():
            offsets = [int(v.split(b"@")[1]) for v in values if v]
            assert offsets == sorted(offsets), f"{key!r} landed out of order: {offsets}"

    async def until(self, condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
        """Let the loop run until `condition` holds."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, "condition not reached"
            await asyncio.sleep(0.001)

    async def idle(self, seconds: float = 0.05) -> None:
        """Let the loop run for a while (for what must not happen meanwhile)."""
        await asyncio.sleep(seconds)


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """No timers in the loop: each test's run is one deterministic order of steps."""
    monkeypatch.setattr(loop_module, "RETRY_S", 0)
    monkeypatch.setattr(loop_module, "HANDOVER_S", 0)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    harness = await Harness.new()
    task = asyncio.create_task(harness.runtime._loop())
    harness.loop_task = task  # type: ignore[attr-defined]
    yield harness
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await harness.runtime.pipeline.close()


def sent(producer: FakeProducer) -> list[str]:
    return [line for line in producer.log if line.startswith("send")]


async def test_offsets_are_committed_only_after_every_write_of_the_batch_is_acknowledged(
    harness: Harness,
) -> None:
    harness.add((0, "a", "0"), (1, "b", "0"), (0, "c", "bad1"))
    await harness.until(lambda: len(harness.producer.pending) == 3)
    assert set(sent(harness.producer)) == {
        f"send {CHANGELOG}[0] a@0",
        f"send {CHANGELOG}[1] b@0",
        f"send {DLQ}[0] bad1",
    }
    harness.producer.ack(0)
    harness.producer.ack(0)
    await harness.idle()
    assert harness.consumer.committed == {}
    harness.producer.ack(0)
    await harness.until(lambda: bool(harness.consumer.committed))
    assert harness.consumer.committed == {TPS[0]: 2, TPS[1]: 1}


async def test_the_next_batch_is_applied_while_the_last_is_in_flight_but_sent_only_after_its_acks(
    harness: Harness,
) -> None:
    harness.add((0, "a", "0"), (0, "b", "1"))
    harness.add((0, "a", "2"))
    await harness.until(
        lambda: len(harness.processor.handled) == 3 and len(harness.producer.pending) == 1
    )
    # batch 2 is applied (visible to scrapes) while batch 1's write waits for its ack ...
    assert [sorted(w.records) for w in harness.producer.pending] == [
        [(b"a", b"a@0"), (b"b", b"b@1")]
    ]
    await harness.idle()
    # ... but its write of key a waits until batch 1's is acknowledged
    assert len(harness.producer.pending) == 1
    harness.producer.ack()
    await harness.until(lambda: len(harness.producer.pending) == 1)
    assert harness.producer.pending[0].records == [(b"a", b"a@2")]
    harness.producer.ack()
    await harness.until(lambda: harness.consumer.committed == {TPS[0]: 3})
    harness.assert_key_order()


async def test_a_failed_write_is_sent_again_before_anything_newer_and_holds_every_later_commit(
    harness: Harness,
) -> None:
    harness.add((0, "a", "0"))
    harness.add((0, "a", "1"), (1, "b", "2"))
    await harness.until(lambda: len(harness.processor.handled) == 3)
    for _ in range(3):  # the broker refuses batch 1's write three times
        await harness.until(lambda: len(harness.producer.pending) == 1)
        assert harness.producer.pending[0].records == [(b"a", b"a@0")]
        harness.producer.fail()
        await harness.idle()
        assert harness.consumer.committed == {}
    await harness.until(lambda: len(harness.producer.pending) == 1)
    harness.producer.ack()
    await harness.until(lambda: len(harness.producer.pending) == 2)  # batch 2 only now
    assert sorted(v for w in harness.producer.pending for _, v in w.records) == [b"a@1", b"b@2"]
    await harness.until(lambda: harness.consumer.committed == {TPS[0]: 1})
    harness.add((1, "b", "3"))
    while harness.consumer.committed != {TPS[0]: 2, TPS[1]: 2}:
        if harness.producer.pending:
            harness.producer.ack()
        await asyncio.sleep(0.001)
    harness.assert_key_order()
    assert harness.producer.landed_values(CHANGELOG)[b"a"] == [b"a@0", b"a@1"]


async def test_an_unexpected_delivery_error_stops_the_worker_and_nothing_after_is_committed() -> (
    None
):
    harness = await Harness.new()
    harness.add((0, "a", "0"))
    harness.add((0, "b", "1"))
    running = asyncio.create_task(harness.runtime.run())
    await harness.until(lambda: len(harness.producer.pending) == 1)
    harness.producer.fail(error=ValueError("not a broker error"))
    with pytest.raises(ValueError, match="not a broker error"):
        await asyncio.wait_for(running, 5)
    await harness.idle()
    assert harness.consumer.committed == {}
    assert sent(harness.producer) == [f"send {CHANGELOG}[0] a@0"]
    await harness.runtime.pipeline.close()


async def test_revocation_waits_until_every_write_in_flight_is_acknowledged_and_committed(
    harness: Harness,
) -> None:
    harness.add((0, "a", "0"))
    harness.add((1, "b", "0"))
    await harness.until(lambda: len(harness.processor.handled) == 2)
    revoking = asyncio.create_task(harness.runtime.on_revoked())
    await harness.idle()
    assert not revoking.done()
    assert harness.runtime.serving and harness.runtime.positions
    while not revoking.done():
        if harness.producer.pending:
            harness.producer.ack()
        await asyncio.sleep(0.001)
    await revoking
    assert harness.consumer.committed == {TPS[0]: 1, TPS[1]: 1}
    assert harness.producer.log[-1].startswith("commit")  # nothing after the drain
    assert not harness.runtime.serving and not harness.runtime.positions


async def test_a_processing_error_ends_the_loop_and_its_batch_is_never_written_or_committed(
    harness: Harness,
) -> None:
    harness.processor.poison = b"3"
    harness.add((0, "a", "0"), (1, "b", "1"))
    harness.add((0, "c", "2"), (0, "d", "3"), (0, "e", "4"))
    with pytest.raises(ProcessingFailed, match=r"IndexError while processing in\[0\]@2: poison"):
        await asyncio.wait_for(harness.loop_task, 1)  # type: ignore[attr-defined]
    while harness.producer.pending:
        harness.producer.ack()
        await harness.idle()
    await harness.idle()
    assert harness.consumer.committed == {TPS[0]: 1, TPS[1]: 1}
    assert b"c@2" not in {v for _, _, _, v in harness.producer.landed}


async def test_stop_drains_the_pipeline_before_run_returns() -> None:
    harness = await Harness.new()
    harness.add((0, "a", "0"), (1, "b", "1"))
    running = asyncio.create_task(harness.runtime.run())
    await harness.until(lambda: len(harness.producer.pending) == 2)
    harness.runtime.stop()
    await harness.idle()
    assert not running.done()
    harness.producer.ack()
    harness.producer.ack()
    await asyncio.wait_for(running, 1)
    assert harness.consumer.committed == {TPS[0]: 1, TPS[1]: 1}
    await harness.runtime.pipeline.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_whatever_the_broker_acknowledges_or_refuses_commits_cover_only_landed_writes_in_order(
    data: st.DataObject,
) -> None:
    """Random batches of a few keys, including dead letters, and a broker that answers the
    writes in flight in any order, refusing some: every commit covers only what landed, the
    values of every key land in production order, and in the end everything is committed."""
    message = st.tuples(st.sampled_from("abcd"), st.booleans())  # a key has one partition
    batches = data.draw(st.lists(st.lists(message, min_size=1, max_size=4), min_size=1, max_size=6))

    async def scenario() -> None:
        harness = await Harness.new()
        offset = 0
        for batch in batches:
            messages = []
            for key, bad in batch:
                partition = "abcd".index(key) % PARTITIONS
                messages.append((partition, key, f"bad{offset}" if bad else str(offset)))
                offset += 1
            harness.add(*messages)
        task = asyncio.create_task(harness.runtime._loop())
        end = {tp: n for tp, n in harness.consumer.offsets.items()}
        refusals = 0
        try:
            for _ in range(5000):
                if harness.runtime.pipeline.failed.done():  # e.g. a check in a commit failed
                    raise harness.runtime.pipeline.failed.exception()  # type: ignore[misc]
                if harness.consumer.committed == end and not harness.producer.pending:
                    break
                pending = harness.producer.pending
                if pending:  # after a few more steps of the loop, answer one of them
                    for _ in range(data.draw(st.integers(0, 3), label="steps first")):
                        await asyncio.sleep(0)
                    index = data.draw(st.integers(0, len(pending) - 1), label="which")
                    if refusals < 8 and data.draw(st.integers(0, 3), label="refuse") == 0:
                        harness.producer.fail(index)
                        refusals += 1
                    else:
                        harness.producer.ack(index)
                await asyncio.sleep(0)
            else:
                raise AssertionError("never finished")
            harness.assert_key_order()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await harness.runtime.pipeline.close()

    asyncio.run(scenario())


async def test_pipeline_merges_the_commits_of_batches_delivered_while_one_was_in_flight() -> None:
    commits: list[dict[TopicPartition, int]] = []
    release = asyncio.Event()

    async def deliver(sends: list[Any]) -> None:
        return None

    async def commit(offsets: dict[TopicPartition, int]) -> None:
        commits.append(offsets)
        await release.wait()

    pipeline = Pipeline(deliver, commit, depth=4)
    await pipeline.submit([], {TPS[0]: 1})
    await asyncio.sleep(0.01)
    await pipeline.submit([], {TPS[0]: 2, TPS[1]: 5})
    await pipeline.submit([], {TPS[0]: 3})
    await asyncio.sleep(0.01)
    release.set()
    await pipeline.drain()
    assert commits == [{TPS[0]: 1}, {TPS[0]: 3, TPS[1]: 5}]
    await pipeline.close()
