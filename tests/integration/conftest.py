"""Integration tests: real Kafka (the session broker fixtures live in tests/conftest.py).

Every test under tests/integration gets the `integration` marker.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def unique_id() -> str:
    """A fresh id for topic names and group ids, since all tests share one broker."""
    return uuid.uuid4().hex[:12]
