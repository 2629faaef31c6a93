"""CPU-bound restore work in a forked child (`stream.runtime.recovery.in_child`): a cold
restore builds the index of a partition read whole from its changelog in a child while the
next partition is read, and takes it like a local snapshot's."""

from __future__ import annotations

import os

import pytest
from kpi_helpers import NOW
from test_local_snapshots import PARTITIONS, UTC, first_half, second_half, ticket_processor

from stream.kpi.settings import KpiConfig
from stream.processor import Processor
from stream.runtime.recovery import in_child


async def test_the_answer_is_computed_in_another_process() -> None:
    parent = os.getpid()
    big = {str(n): n.to_bytes(8) for n in range(50_000)}  # seen through copy-on-write
    pid, total = await in_child(lambda: (os.getpid(), sum(len(v) for v in big.values())))
    assert pid != parent
    assert total == 400_000


async def test_a_child_that_dies_without_an_answer_is_an_eof_error() -> None:
    with pytest.raises(EOFError):
        await in_child(lambda: os._exit(3))


async def test_an_index_built_in_a_child_serves_what_a_cold_restore_serves() -> None:
    live = ticket_processor()
    first_half(live)
    second_half(live)
    from_child = Processor(KpiConfig(), UTC, PARTITIONS)
    cold = Processor(KpiConfig(), UTC, PARTITIONS)
    for partition in range(PARTITIONS):
        changelog = [(k.encode(), v) for k, v in live.records("tickets", partition).items()]
        from_child.restore("tickets", partition, changelog)
        cold.restore("tickets", partition, changelog)
        records = from_child.records("tickets", partition)
        index = await in_child(lambda: from_child.index_state("tickets", records, NOW))  # noqa: B023
        assert index is not None
        from_child.load("tickets", partition, records, index, from_child.state_key)
        # The index is the child's (`assign` builds none): the served one is there already.
        assert from_child.live_index_state("tickets", partition, NOW) is not None
    from_child.assign(range(PARTITIONS))
    cold.assign(range(PARTITIONS))
    assert from_child.snapshot(NOW) == cold.snapshot(NOW) == live.snapshot(NOW)
    assert from_child.snapshot(NOW).live[("billing", "email", "normal")].open == 32
