"""The batch path: apply the contract's rules to a file of events and export at `now`.

It calls exactly the functions the streaming worker calls, so its output is the
reference the live numbers are tested against.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream.centre_metrics import CentreCollector, by_agent_exposition
from stream.events import Rejection, decode
from stream.kpi.contrib import Layout
from stream.kpi.settings import KpiConfig
from stream.kpi.snapshot import Snapshot
from stream.kpi.types import TOPIC_OF_TYPE
from stream.metrics import exposition
from stream.processor import Outcome, Processor


@dataclass
class BatchResult:
    """The exported snapshot and what was refused on the way."""

    snapshot: Snapshot
    layout: Layout
    config: KpiConfig
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    first_rejections: list[tuple[int, str, str]] = field(default_factory=list)


def run_batch(lines: Iterable[bytes], now_ms: int, config: KpiConfig, tz: ZoneInfo) -> BatchResult:
    """Fold every valid line through the worker's processor, then snapshot it at `now_ms`.

    One partition holds every entity, so no key can be on a wrong partition; every other
    rule (duplicates, `max_events_per_entity`, retention) is the worker's own code.
    """
    processor = Processor(config, tz, partitions=1)
    result = BatchResult(Snapshot(now_ms), processor.layout, config)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        event = decode(line, now_ms)
        outcome = (
            Outcome("rejected", event)
            if isinstance(event, Rejection)
            else processor.apply(TOPIC_OF_TYPE[event.type], 0, event)
        )
        if outcome.rejection is not None:
            result.rejected[outcome.rejection.reason] += 1
            if len(result.first_rejections) < 20:
                result.first_rejections.append(
                    (number, outcome.rejection.reason, outcome.rejection.detail)
                )
            continue
        result.accepted += 1
        result.duplicates += outcome.kind == "duplicate"
    processor.expire(now_ms)
    processor.assign([0])
    result.snapshot = processor.snapshot(now_ms).cap_queues(config.max_queues)
    return result


def prometheus_text(result: BatchResult, per_agent: bool = False) -> bytes:
    """The families a single worker would serve, in Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CentreCollector(result.snapshot, result.snapshot, result.config))
    text = exposition(result.snapshot, result.snapshot, result.layout)
    if per_agent:
        text += "".join(by_agent_exposition(result.snapshot, result.config))
    return text.encode() + generate_latest(registry)


def samples(result: BatchResult, per_agent: bool = False) -> list[dict[str, Any]]:
    """The same samples as a list of {name, labels, value} (for `--format json`)."""
    text = prometheus_text(result, per_agent).decode()
    return [
        {"name": s.name, "labels": s.labels, "value": s.value}
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]
