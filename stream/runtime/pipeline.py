"""Deliveries and commits of applied batches, running behind the batch loop.

The loop applies batch N+1 while batch N's changelog and dead-letter records are on their
way to the broker and its offsets wait to be committed. Two tasks do that work, one batch
after another each:

- the *deliverer* runs a batch's sends until every one is acknowledged (`deliver` retries
  what the broker did not take), and only then starts on the next batch;
- the *committer* commits the offsets of delivered batches, in the order they were
  delivered, merging those that were delivered while a commit was in flight.

What this keeps true:

- Offsets are committed only after every record derived from the messages up to them is
  acknowledged, and commits never go backwards.
- The changelog values of one key reach the broker in the order they were produced. Within
  a batch each entity has one record. Across batches: aiokafka keeps at most one produce
  request in flight per broker and retries a failed request in place, ahead of later ones,
  but our own retry (sending a record again after the producer gave up on it) would let an
  older value land after a newer one sent meanwhile. So no record of batch N+1 is handed
  to the producer before every record of batch N is acknowledged: a value sent again is
  always the newest one there is.
- The first failure stops both tasks: no later batch is sent, nothing later is committed,
  and `submit` and `drain` raise it.
- At most `depth` batches are submitted and not yet committed; `submit` waits for room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiokafka.structs import TopicPartition

Send = Callable[[], Awaitable[Any]]  # one write, re-runnable until acknowledged
Offsets = dict[TopicPartition, int]  # next offset to consume, per input partition

T = TypeVar("T")


class PipelineStopped(Exception):
    """A pipeline task was cancelled: nothing more is delivered or committed."""


class Pipeline:
    """Batches handed over by the loop, delivered then committed in order."""

    def __init__(
        self,
        deliver: Callable[[list[Send]], Awaitable[None]],
        commit: Callable[[Offsets], Awaitable[None]],
        depth: int,
    ) -> None:
        self._deliver, self._commit = deliver, commit
        self._room = asyncio.Semaphore(depth)
        self._to_deliver: asyncio.Queue[tuple[list[Send], Offsets]] = asyncio.Queue()
        self._to_commit: asyncio.Queue[Offsets] = asyncio.Queue()
        self._tasks = (
            asyncio.create_task(self._delivering(), name="deliverer"),
            asyncio.create_task(self._committing(), name="committer"),
        )
        self.failed = asyncio.get_running_loop().create_future()  # its first error
        for task in self._tasks:
            task.add_done_callback(self._stopped)

    async def submit(self, sends: list[Send], offsets: Offsets) -> None:
        """Hand over one batch's sends and the offsets they cover (waits while it is full)."""
        await self._unless_failed(self._room.acquire())
        self._to_deliver.put_nowait((sends, offsets))

    async def drain(self) -> None:
        """Return once every batch handed over is acknowledged and its offsets committed."""
        await self._unless_failed(self._to_deliver.join())
        await self._unless_failed(self._to_commit.join())

    async def close(self) -> None:
        """Stop both tasks now (whatever is in flight is neither waited for nor committed)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _delivering(self) -> None:
        while True:
            sends, offsets = await self._to_deliver.get()
            await self._deliver(sends)
            self._to_commit.put_nowait(offsets)
            self._to_deliver.task_done()

    async def _committing(self) -> None:
        while True:
            merged = dict(await self._to_commit.get())
            batches = 1
            while not self._to_commit.empty():  # delivered while the last commit was in flight
                merged |= self._to_commit.get_nowait()
                batches += 1
            if merged:
                await self._commit(merged)
            for _ in range(batches):
                self._room.release()
                self._to_commit.task_done()

    def _stopped(self, task: asyncio.Task[None]) -> None:
        """The first task to end with an error (or be cancelled) fails the pipeline."""
        if self.failed.done():
            return
        if task.cancelled():
            self.failed.set_exception(PipelineStopped(f"the {task.get_name()} was cancelled"))
        else:
            self.failed.set_exception(task.exception() or RuntimeError("pipeline task ended"))
        self.failed.exception()  # retrieved: whoever waits on the pipeline raises it
        for other in self._tasks:
            other.cancel()

    async def _unless_failed(self, step: Coroutine[Any, Any, T]) -> T:
        """The result of `step`, or the pipeline's error if it failed before or meanwhile."""
        if self.failed.done():
            step.close()
            raise self.failed.exception()  # type: ignore[misc]
        waiting = asyncio.ensure_future(step)
        await asyncio.wait([waiting, self.failed], return_when=asyncio.FIRST_COMPLETED)
        if waiting.done():
            return waiting.result()
        waiting.cancel()
        raise self.failed.exception()  # type: ignore[misc]
