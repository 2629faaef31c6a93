"""Warnings and errors of one cause at most once per 10 s: the worker's logs and the
simulator's share `stream.kafka_client.OncePerWindow` (a lost broker made the simulator
print ~49,000 lines)."""

from __future__ import annotations

import logging
import subprocess
import sys

from stream.kafka_client import OncePerWindow


class Clock:
    def __init__(self) -> None:
        self.at = 0.0

    def __call__(self) -> float:
        return self.at


def record(level: int, msg: str, name: str = "aiokafka.conn") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, ("127.0.0.1:9",), None)


def test_one_line_per_cause_per_window_then_the_count_of_the_rest() -> None:
    clock = Clock()
    thinning = OncePerWindow(10.0, clock)
    template = "Unable connect to node with id %s"
    passed = []
    for tenth in range(250):  # 25 s, ten errors a second
        clock.at = tenth / 10
        each = record(logging.ERROR, template)
        if thinning.filter(each):
            passed.append((clock.at, each.getMessage()))
    assert passed == [
        (0.0, "Unable connect to node with id 127.0.0.1:9"),
        (10.0, "Unable connect to node with id 127.0.0.1:9 (99 more like this in the last 10 s)"),
        (20.0, "Unable connect to node with id 127.0.0.1:9 (99 more like this in the last 10 s)"),
    ]


def test_causes_are_apart_by_logger_and_template_and_info_and_critical_always_pass() -> None:
    thinning = OncePerWindow(10.0, Clock())
    assert thinning.filter(record(logging.WARNING, "a %s"))
    assert not thinning.filter(record(logging.WARNING, "a %s"))
    assert not thinning.filter(record(logging.ERROR, "a %s"))  # same template, any level
    assert thinning.filter(record(logging.WARNING, "b %s"))
    assert thinning.filter(record(logging.WARNING, "a %s", name="aiokafka.producer"))
    assert all(thinning.filter(record(logging.INFO, "a %s")) for _ in range(3))
    assert all(thinning.filter(record(logging.CRITICAL, "a %s")) for _ in range(3))


def test_the_simulator_logs_a_flood_of_broker_errors_as_one_line() -> None:
    """`kpi-stream simulate` sets up its logging before it produces anything; 5,000 errors
    of the Kafka client within a second come out as one line on stderr."""
    probe = (
        "import logging, unittest.mock as mock\n"
        "from click.testing import CliRunner\n"
        "from kpi_devtools.simulate import command\n"
        "def flood(*args, **kwargs):\n"
        "    for _ in range(5000):\n"
        "        logging.getLogger('aiokafka.conn').error('Unable connect to %s', 'node 1')\n"
        "    raise KeyboardInterrupt\n"
        "with mock.patch.object(command.asyncio, 'run', flood):\n"
        "    command.simulate.main(['--broker', 'kafka://127.0.0.1:9'], standalone_mode=False)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stderr.splitlines()
    errors = [line for line in lines if "Unable connect to node 1" in line]
    assert len(errors) == 1, done.stderr
    assert " ERROR aiokafka.conn: Unable connect to node 1" in errors[0]
    assert [line for line in lines if line.startswith("simulated ")], done.stderr
