"""What every Kafka client of kpi-stream shares, the worker and the simulator alike: the
bootstrap servers, the KPI_KAFKA_* security settings as aiokafka arguments, and logs that
show a warning or error of one cause at most once per 10 s (a lost broker makes the Kafka
client repeat itself many times a second).

Kept out of `stream.runtime`, so that a client that is not a worker needs none of it."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from typing import Any, Final

from stream.config import KafkaSecurity


def client_security(security: KafkaSecurity) -> dict[str, Any]:
    """`security_protocol`, SASL credentials and the TLS context for an aiokafka client.

    TLS always verifies the broker's certificate and host name (against the CA file when
    one is given, else the system's CAs) and presents the client certificate when set.
    """
    protocol = security.protocol
    if protocol == "PLAINTEXT":
        return {"security_protocol": protocol}
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(security.ssl_cafile) if security.ssl_cafile else None
        )
        if security.ssl_certfile:
            context.load_cert_chain(
                str(security.ssl_certfile),
                str(security.ssl_keyfile) if security.ssl_keyfile else None,
            )
    if protocol == "SSL":
        return {"security_protocol": protocol, "ssl_context": context}
    return {
        "security_protocol": protocol,
        "sasl_mechanism": security.sasl_mechanism,
        "sasl_plain_username": security.sasl_username,
        "sasl_plain_password": security.sasl_password,
        "ssl_context": context,
    }


def bootstrap_servers(broker: str) -> list[str]:
    """`kafka://a:9092,b:9092` (or `;`-separated URLs) -> ["a:9092", "b:9092"]."""
    hosts = (part.strip().removeprefix("kafka://") for part in broker.replace(";", ",").split(","))
    return [host for host in hosts if host]


REPEAT_WINDOW_S: Final = 10.0
LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class OncePerWindow(logging.Filter):
    """Lets a warning or error through once per window per (logger, message template)."""

    def __init__(
        self, window_s: float = REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self.last: dict[tuple[str, str], float] = {}
        self.suppressed: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.levelno >= logging.CRITICAL:
            return True
        cause = (record.name, str(record.msg))
        now = self.clock()
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


def log_to_stderr(level: str, *filters: logging.Filter) -> None:
    """Log to stderr at `level` through `filters`, repeated warnings and errors thinned out."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    for each in (*filters, OncePerWindow()):
        handler.addFilter(each)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
