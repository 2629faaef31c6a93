"""The batch path: apply the contract's rules to a file of events and export at `now`.

It calls exactly the functions the streaming worker calls, so its output is the
reference the live numbers are tested against.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream.centre_metrics import CentreCollector
from stream.config import KpiConfig
from stream.events import Rejection, decode
from stream.kpi import agent, contact
from stream.kpi.agent import Agent
from stream.kpi.centre import CentreSnapshot, ContactIndex
from stream.kpi.contact import Contact
from stream.kpi.contrib import Layout
from stream.kpi.snapshot import Snapshot
from stream.kpi.types import TOPIC_OF_TYPE
from stream.metrics import exposition
from stream.processor import Outcome, Processor


@dataclass
class BatchResult:
    """The exported snapshots and what was refused on the way."""

    snapshot: Snapshot
    layout: Layout
    config: KpiConfig
    centre: CentreSnapshot
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    first_rejections: list[tuple[int, str, str]] = field(default_factory=list)


def run_batch(lines: Iterable[bytes], now_ms: int, config: KpiConfig, tz: ZoneInfo) -> BatchResult:
    """Fold every valid line into its entity, then build the snapshots at `now_ms`.

    Tickets go through the worker's own processor on one partition (so no key can be on
    a wrong partition; duplicates, `max_events_per_entity` and retention are its code).
    Contacts and agents use their merges directly until they are processor entity kinds.
    """
    processor = Processor(config, tz, partitions=1)
    contacts: dict[str, Contact] = {}
    agents: dict[str, Agent] = {}
    result = BatchResult(Snapshot(now_ms), processor.layout, config, CentreSnapshot(now_ms))
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        event = decode(line, now_ms)
        if isinstance(event, Rejection):
            outcome = Outcome("rejected", event)
        elif event.type.startswith("contact."):
            contacts[event.entity_id], duplicate = contact.merge(
                contacts.get(event.entity_id), event
            )
            outcome = Outcome("duplicate" if duplicate else "accepted", None)
        elif event.type.startswith("agent."):
            agents[event.entity_id], duplicate = agent.merge(agents.get(event.entity_id), event)
            outcome = Outcome("duplicate" if duplicate else "accepted", None)
        else:
            outcome = processor.apply(TOPIC_OF_TYPE[event.type], 0, event)
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
    contact_index = ContactIndex(config.contact_stale_ms)
    for record in contacts.values():
        if not record.is_expired(now_ms, config.retention_ms):
            contact_index.update(None, contact.contribution(record, config))
    centre = contact_index.snapshot(now_ms, tz)
    centre.add_agents(agents.values(), tz, config.agent_stale_ms)
    result.centre = centre.capped(config.max_queues, config.max_agents)
    return result


def agent_metrics_enabled(env: Mapping[str, str] | None = None) -> bool:
    """True when `KPI_AGENT_METRICS` asks for the per-agent series."""
    value = (os.environ if env is None else env).get("KPI_AGENT_METRICS", "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def prometheus_text(result: BatchResult, per_agent: bool = False) -> bytes:
    """The families a single worker would serve, in Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        CentreCollector(result.centre, result.centre, result.snapshot, result.config, per_agent)
    )
    tickets = exposition(result.snapshot, result.snapshot, result.layout)
    return tickets.encode() + generate_latest(registry)


def samples(result: BatchResult, per_agent: bool = False) -> list[dict[str, Any]]:
    """The same samples as a list of {name, labels, value} (for `--format json`)."""
    text = prometheus_text(result, per_agent).decode()
    return [
        {"name": s.name, "labels": s.labels, "value": s.value}
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]
