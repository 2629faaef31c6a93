"""Integration tests: real Kafka (the session broker fixtures live in tests/conftest.py).

Every test under tests/integration gets the `integration` marker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.worker_harness import Scenario, Worker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def unique_id() -> str:
    """A fresh id for topic names and group ids, since all tests share one broker."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def scenario(kafka_bootstrap: str, tmp_path: Path) -> Scenario:
    """A test's own topics (prefix) on the session broker."""
    scenario = Scenario(kafka_bootstrap, tmp_path)
    scenario.create_topics()
    return scenario


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Workers a test starts; each is killed at the end."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()
