"""Contact-centre event generator behind `kpi-stream simulate`."""

from kpi_devtools.simulate.command import Stats, produce, simulate, write_jsonl
from kpi_devtools.simulate.generator import SimConfig, SimulatedEvent, generate

__all__ = ["SimConfig", "SimulatedEvent", "Stats", "generate", "produce", "simulate", "write_jsonl"]
