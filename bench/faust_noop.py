"""A Faust agent that only counts: the worker's consumption path without any KPI work.

    python -m bench.faust_noop BOOTSTRAP PREFIX COUNT DATADIR

Same topics, serializers and `take_events` batching as the worker's agent, no table. Prints
one JSON line with the wall-clock times of the first batch and of the COUNT-th event, then
stops itself with SIGTERM (a clean Faust shutdown).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import faust
import orjson

from stream.app import BATCH_MAX, BATCH_WITHIN_S
from stream.kpi.types import INPUT_TOPICS


def main() -> None:
    bootstrap, prefix, count, datadir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    app = faust.App(
        f"bench-noop-{prefix.rstrip('.')}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=datadir,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(
        *(prefix + t for t in INPUT_TOPICS), key_serializer="raw", value_serializer="raw"
    )
    seen = 0
    first: float | None = None

    async def count_events(stream: Any) -> None:
        nonlocal seen, first
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            first = first or time.time()
            seen += len(batch)
            if seen >= count:
                print(orjson.dumps({"first": first, "done": time.time()}).decode(), flush=True)
                os.kill(os.getpid(), signal.SIGTERM)

    app.agent(topic, name="count", concurrency=1)(count_events)
    faust.Worker(app, loglevel="warning", redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
