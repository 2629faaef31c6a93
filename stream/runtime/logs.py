"""Logging of a worker: one line per record, and warnings or errors of one cause at most
once per 10 s (a lost broker makes the Kafka client repeat itself many times a second)."""

from __future__ import annotations

import logging
import time
from typing import Final

REPEAT_WINDOW_S: Final = 10.0
FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class OncePerWindow(logging.Filter):
    """Lets a warning or error through once per window per (logger, message template)."""

    def __init__(self, window_s: float = REPEAT_WINDOW_S) -> None:
        super().__init__()
        self.window_s = window_s
        self.last: dict[tuple[str, str], float] = {}
        self.suppressed: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.levelno >= logging.CRITICAL:
            return True
        cause = (record.name, str(record.msg))
        now = time.monotonic()
        if now - self.last.get(cause, -self.window_s) < self.window_s:
            self.suppressed[cause] = self.suppressed.get(cause, 0) + 1
            return False
        self.last[cause] = now
        repeats = self.suppressed.pop(cause, 0)
        if repeats:
            record.msg = (
                f"{record.msg} ({repeats} more like this in the last {self.window_s:.0f} s)"
            )
        return True


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


def configure_logging(level: str) -> None:
    """Log to stderr at `level`, with repeated warnings and errors thinned out."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(held_at_start)
    handler.addFilter(OncePerWindow())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
