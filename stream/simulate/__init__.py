"""Contact-centre event generator behind `kpi-stream simulate`."""

from stream.simulate.command import Stats, produce, simulate, write_jsonl
from stream.simulate.generator import SimConfig, SimulatedEvent, generate

__all__ = ["SimConfig", "SimulatedEvent", "Stats", "generate", "produce", "simulate", "write_jsonl"]
