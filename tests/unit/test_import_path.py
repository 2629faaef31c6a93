"""The worker's import path holds no development tooling (issue 9, "one room for Kafka"): the
broker harness, the demo, the simulator and the process supervisor live in `kpi_devtools`,
and the simulator shares only small client modules with the worker, never its runtime."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("kpi_devtools",)
WORKER_ONLY = ("stream.runtime", "stream.worker", "stream.web", "stream.processor")
# What the simulator may take from the worker's package: the contract's names and types,
# the KPI_KAFKA_* settings and the Kafka client helpers every client shares.
SIMULATOR_MAY_USE = ("stream.kpi", "stream.events", "stream.config", "stream.kafka_client")


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def loaded_after(statement: str) -> set[str]:
    """The modules of both packages a fresh interpreter holds after `statement`."""
    probe = (
        f"import sys; {statement}; "
        "print('\\n'.join(m for m in sys.modules if m.startswith(('stream', 'kpi_devtools'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    return set(done.stdout.split())


@pytest.mark.parametrize("path", sorted((REPO / "stream").rglob("*.py")), ids=str)
def test_no_worker_module_imports_the_development_tools(path: Path) -> None:
    assert not [m for m in imported_modules(path) if under(m, TOOLS)]


def test_a_worker_loads_none_of_the_development_tools() -> None:
    loaded = loaded_after("import stream.cli, stream.worker, stream.web.server")
    assert "stream.runtime.loop" in loaded  # the probe did import the worker
    assert not [m for m in loaded if under(m, TOOLS)], loaded


@pytest.mark.parametrize(
    "path", sorted((REPO / "kpi_devtools" / "simulate").rglob("*.py")), ids=str
)
def test_the_simulator_takes_only_shared_modules_from_the_worker_package(path: Path) -> None:
    taken = {m for m in imported_modules(path) if under(m, ("stream",))}
    assert {m for m in taken if not under(m, SIMULATOR_MAY_USE)} == set()


def test_the_simulator_and_the_broker_harness_load_no_worker_runtime() -> None:
    loaded = loaded_after(
        "import kpi_devtools.simulate.command, kpi_devtools.broker.harness, kpi_devtools.demo"
    )
    assert "kpi_devtools.simulate.command" in loaded
    assert "stream.kafka_client" in loaded  # where the simulator's Kafka settings come from
    assert not [m for m in loaded if under(m, WORKER_ONLY)], loaded


@pytest.mark.parametrize("path", sorted((REPO / "stream" / "kpi").rglob("*.py")), ids=str)
def test_the_kpi_rules_reach_no_kafka_io_web_or_tools(path: Path) -> None:
    assert not [m for m in imported_modules(path) if under(m, (*WORKER_ONLY, *TOOLS))]


def commands(help_text: str) -> set[str]:
    return {line.split()[0] for line in help_text.split("Commands:")[1].splitlines() if line}


def test_the_development_commands_are_still_there() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stream", "--help"], capture_output=True, text=True, check=True
    )
    assert commands(done.stdout) == {"broker", "demo", "simulate", "worker", "report"}


def test_without_the_development_tools_the_worker_command_line_still_runs() -> None:
    """As in the worker image, which installs the `stream` package only."""
    cli = "from stream.cli import main; main([{}], standalone_mode=True)"
    done = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['kpi_devtools'] = None; "
         + cli.format("'--help'")],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    assert commands(done.stdout) == {"worker", "report"}
    refused = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['kpi_devtools'] = None; "
         + cli.format("'simulate'")],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "`kpi-stream simulate` is a development tool (package kpi_devtools)" in refused.stderr
