"""The worker's import path holds no development tooling (issue 9, "one room for Kafka"): the
broker harness, the demo, the simulator and the process supervisor live in `kpi_devtools`,
and the simulator shares only small client modules with the worker, never its runtime. The
KPI rules (`stream/kpi`) import nothing of the project outside themselves (issue 9 item 11)."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("kpi_devtools",)
WORKER_ONLY = ("stream.runtime", "stream.worker", "stream.web", "stream.processor")
# What the simulator may take from the worker's package: the contract's names and types,
# the KPI_KAFKA_* settings and the Kafka client helpers every client shares.
SIMULATOR_MAY_USE = ("stream.kpi", "stream.events", "stream.config", "stream.kafka_client")
PROJECT = "kpi-stream"  # the distribution of `stream` and `kpi_devtools`
INSTALLED = packages_distributions()  # top-level import name -> distributions


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    return imports_of(path.read_text(), path.relative_to(REPO).parent.parts)


def imports_of(source: str, package: tuple[str, ...]) -> set[str]:
    """Every module `source` imports, also inside functions and `if TYPE_CHECKING:` blocks;
    relative imports are resolved against `package` (the module's folders)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1])
            names = [node.module] if node.module else [alias.name for alias in node.names]
            found |= {f"{base}.{name}" for name in names}
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


IO_LIBRARIES = ("aiokafka", "confluent_kafka", "aiohttp", "prometheus_client")


def outside_the_kpi_rules(modules: set[str]) -> set[str]:
    """Those of `modules` that are neither standard library, another distribution's package
    (such as orjson, but no Kafka, web or metrics library) nor `stream.kpi` itself."""
    return {
        m
        for m in modules
        if under(m, IO_LIBRARIES)
        or (
            not under(m, ("stream.kpi",))
            and m.partition(".")[0] not in sys.stdlib_module_names
            and PROJECT in INSTALLED.get(m.partition(".")[0], [PROJECT])
        )
    }


@pytest.mark.parametrize("path", sorted((REPO / "stream" / "kpi").rglob("*.py")), ids=str)
def test_the_kpi_rules_import_only_the_standard_library_libraries_and_themselves(
    path: Path,
) -> None:
    """`stream/kpi` is self-contained (issue 9 item 11): no wire format, no configuration
    parsing, no Kafka I/O, web or tools."""
    assert outside_the_kpi_rules(imported_modules(path)) == set()


def test_the_kpi_import_rule_refuses_the_rest_of_the_project() -> None:
    source = """
from __future__ import annotations
import bisect, orjson
from typing import TYPE_CHECKING
from . import ticket
from .windows import to_ms
from .. import config
from ..events import decode
import kpi_devtools.demo
import bench.common
def later():
    import aiokafka
if TYPE_CHECKING:
    from stream.processor import Processor
"""
    assert outside_the_kpi_rules(imports_of(source, ("stream", "kpi"))) == {
        "stream.config",
        "stream.events",
        "kpi_devtools.demo",
        "bench.common",
        "stream.processor",
        "aiokafka",
    }


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
