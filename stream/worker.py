"""Run one worker: the Kafka runtime plus its web server, until SIGINT/SIGTERM or a failure.

Exit codes: 0 after a signal, 1 when the broker cannot be reached at start or an
unexpected error stopped processing (one log line says which).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from aiokafka.errors import KafkaError

from stream.config import Settings
from stream.kafka_client import log_to_stderr
from stream.kpi.settings import KpiConfig
from stream.processor import Processor
from stream.runtime.logs import held_at_start
from stream.runtime.loop import EntityProcessor, Runtime
from stream.runtime.topics import TopicError
from stream.web.server import WebServer

log = logging.getLogger("stream.worker")

ProcessorFactory = Callable[[KpiConfig, ZoneInfo, int, int], EntityProcessor]


def run_worker(
    settings: Settings, loglevel: str = "info", processor: ProcessorFactory = Processor
) -> None:
    """Start a worker and block until it is stopped; exits with the worker's exit code."""
    log_to_stderr(loglevel, held_at_start)
    sys.exit(asyncio.run(serve(settings, processor)))


async def serve(settings: Settings, processor: ProcessorFactory = Processor) -> int:
    """The worker's life: start, process and serve until a signal (0) or a failure (1)."""
    started_ms = time.time_ns() // 1_000_000

    def make() -> EntityProcessor:
        return processor(settings.kpi, settings.timezone, settings.partitions, started_ms)

    runtime = Runtime(settings, make(), make() if settings.standby_replicas else None)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runtime.stop)
    web = WebServer(runtime)
    try:
        await web.start()  # /healthz answers from the start; /readyz once partitions are served
    except OSError as exc:
        log.critical(
            "cannot listen on KPI_WEB_HOST=%s KPI_WEB_PORT=%d: %s",
            settings.web_host,
            settings.web_port,
            exc.strerror or exc,
        )
        await runtime.close()
        return 1
    try:
        await runtime.start()
    except (KafkaError, OSError) as exc:
        cause = f" ({held_at_start.last})" if held_at_start.last else ""
        log.critical(
            "cannot reach the Kafka broker KPI_BROKER=%s: %r%s", settings.broker, exc, cause
        )
        await asyncio.gather(web.stop(), runtime.close())
        return 1
    except TopicError as exc:
        log.critical("cannot start: %s", exc)
        await asyncio.gather(web.stop(), runtime.close())
        return 1
    held_at_start.release()
    try:
        await runtime.run()
    except Exception as exc:
        log.critical("worker stopped: %s", exc)
        return 1
    else:  # a clean stop: the next start reads only the changelog written after this
        await runtime.save_snapshots()
    finally:
        await web.stop()
        await runtime.close()
    log.info("worker stopped")
    return 0
