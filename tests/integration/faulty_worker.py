"""`python -m tests.integration.faulty_worker worker`: the real worker whose processor raises
on the Nth message it handles (N from KPI_TEST_FAULT_AT). Only tests run this wrapper; the
product has no fault switch."""

from __future__ import annotations

import os
import sys
from typing import Any

from stream.config import settings_from_env
from stream.worker import Processor, run_worker

FAULT_AT = int(os.environ.get("KPI_TEST_FAULT_AT", "0"))


class FaultyProcessor(Processor):
    """The worker's own processor, except that message number FAULT_AT raises."""

    handled = 0

    def handle(self, *args: Any, **kwargs: Any) -> Any:
        FaultyProcessor.handled += 1
        if FaultyProcessor.handled == FAULT_AT:
            raise RuntimeError(f"injected fault at message {FAULT_AT}")
        return super().handle(*args, **kwargs)


if __name__ == "__main__":
    assert sys.argv[1:] == ["worker"], sys.argv
    run_worker(settings_from_env(), processor=FaultyProcessor)
