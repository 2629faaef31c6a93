"""Fixtures shared by every test directory: one real Kafka broker (KRaft, 127.0.0.1) per session.

Without Java or Maven, or when the Kafka download fails, tests that need the broker are
skipped, except under CI=true, where that is a failure; a broker that fails to start is
always a failure. `KPI_TEST_BROKER=host:port` runs them against a broker that is already up.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from kpi_devtools.broker.harness import (
    BrokerError,
    LocalBroker,
    TlsFiles,
    create_tls_files,
    fetch_kafka,
    require_java,
)
from kpi_devtools.broker.topics import ensure_topics
from tests.infra import require_infra


def _unavailable(reason: str) -> NoReturn:
    require_infra(f"Kafka broker unavailable: {reason}")


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


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway CA with server and client certificates (needs `openssl`)."""
    try:
        return create_tls_files(tmp_path_factory.mktemp("pki"))
    except BrokerError as exc:
        require_infra(f"no test certificates: {exc}")
