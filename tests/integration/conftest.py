"""Fixtures for integration tests: one real Kafka broker (KRaft, 127.0.0.1) per session.

Every test under tests/integration gets the `integration` marker. Without Java or Maven,
or when the Kafka download fails, the tests are skipped, except under CI=true, where
that is a failure; a broker that fails to start is always a failure.
`KPI_TEST_BROKER=host:port` runs them against a broker that is already up.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from stream.broker.harness import BrokerError, LocalBroker, fetch_kafka, require_java
from stream.broker.topics import ensure_topics


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}\n(CI=true: the Kafka integration tests must run)", pytrace=False)
    pytest.skip(f"Kafka broker unavailable: {reason}")


@pytest.fixture(scope="session")
def kafka_libs() -> Path:
    """The cached Kafka classpath; needs Java, and Maven on the first run."""
    try:
        require_java()
        return fetch_kafka()
    except BrokerError as exc:
        _unavailable(str(exc))


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """`host:port` of a broker that has the contract topics (8 partitions each)."""
    external = os.environ.get("KPI_TEST_BROKER")
    if external:
        bootstrap = external.removeprefix("kafka://")
        asyncio.run(ensure_topics(bootstrap))
        yield bootstrap
        return
    request.getfixturevalue("kafka_libs")
    broker = LocalBroker()
    bootstrap = broker.start()  # tools are there: a broker that fails to start is a failure
    try:
        asyncio.run(ensure_topics(bootstrap))
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture
def unique_id() -> str:
    """A fresh id for topic names and group ids, since all tests share one broker."""
    return uuid.uuid4().hex[:12]
