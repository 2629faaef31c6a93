"""Start-up failures of `kpi-stream worker` that need no broker: one line, exit code 1."""

from __future__ import annotations

import logging
import socket

import pytest

from stream.config import Settings
from stream.worker import serve


async def test_a_web_port_in_use_stops_start_up_with_one_line_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(broker="kafka://127.0.0.1:9", web_host="127.0.0.1", web_port=port)
        with caplog.at_level(logging.CRITICAL, logger="stream.worker"):
            assert await serve(settings) == 1
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert line.startswith(f"cannot listen on KPI_WEB_HOST=127.0.0.1 KPI_WEB_PORT={port}: ")
    assert "\n" not in line
