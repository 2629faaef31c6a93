"""Logging of a worker: the Kafka client's errors held back while it first connects;
repeated warnings and errors are thinned out by `stream.kafka_client.log_to_stderr`."""

from __future__ import annotations

import logging


class HeldAtStart(logging.Filter):
    """Holds back the Kafka client's errors while the worker first connects.

    If the start fails, the worker's one line saying so repeats the last of them
    (`last`); once started, `release()` lets everything through again.
    """

    def __init__(self) -> None:
        super().__init__()
        self.holding = True
        self.last: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.holding and record.name.startswith("aiokafka") and record.levelno >= logging.ERROR:
            self.last = record.getMessage()
            return False
        return True

    def release(self) -> None:
        self.holding = False


held_at_start = HeldAtStart()
