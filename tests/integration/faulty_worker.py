"""`python -m tests.integration.faulty_worker worker`: the real worker whose processor raises
on the Nth message it handles (N from KPI_TEST_FAULT_AT), and whose snapshot saves take
KPI_TEST_SAVE_DELAY_S seconds longer. Only tests run this wrapper; the product has no fault
switch."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import stream.worker
from stream.config import settings_from_env
from stream.runtime.loop import Runtime
from stream.worker import Processor, run_worker

FAULT_AT = int(os.environ.get("KPI_TEST_FAULT_AT", "0"))
SAVE_DELAY_S = float(os.environ.get("KPI_TEST_SAVE_DELAY_S", "0"))


class FaultyProcessor(Processor):
    """The worker's own processor, except that message number FAULT_AT raises."""

    handled = 0

    def handle(self, *args: Any, **kwargs: Any) -> Any:
        FaultyProcessor.handled += 1
        if FaultyProcessor.handled == FAULT_AT:
            raise RuntimeError(f"injected fault at message {FAULT_AT}")
        return super().handle(*args, **kwargs)


class SlowSaves(Runtime):
    """The worker's own runtime, except that saving snapshots first waits SAVE_DELAY_S."""

    async def save_snapshots(self) -> None:
        await asyncio.sleep(SAVE_DELAY_S)
        await super().save_snapshots()


if __name__ == "__main__":
    assert sys.argv[1:] == ["worker"], sys.argv
    if SAVE_DELAY_S:
        stream.worker.Runtime = SlowSaves  # type: ignore[misc]
    run_worker(settings_from_env(), processor=FaultyProcessor)
