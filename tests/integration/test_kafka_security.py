"""Workers reach a broker that demands SASL (PLAIN, SCRAM-SHA-256/512) and/or TLS.

One broker for the module, with PLAINTEXT for set-up and test producers besides its
secured listeners. Each case runs a real worker configured only through the documented
KPI_KAFKA_* variables: with the right credentials it consumes and counts the events, with
wrong ones it never gets ready and its log says why.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from kpi_devtools.broker.harness import LocalBroker, TlsFiles
from tests.integration.worker_harness import Scenario, Worker, route, wait_processed

USER, PASSWORD = "kpi-worker", "s3cret-Pa55"
OPENED, RESOLVED = 5, 2
SECURED_CASES = [
    ("SASL_PLAINTEXT", "PLAIN"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
    ("SASL_SSL", "SCRAM-SHA-512"),
    ("SSL", None),
]
REFUSED_CASES = [
    pytest.param(
        "SASL_PLAINTEXT", "PLAIN", {"KPI_KAFKA_SASL_PASSWORD": "wrong"},
        "SaslAuthenticationFailed: Authentication failed", id="PLAIN-wrong-password",
    ),
    pytest.param(
        "SASL_PLAINTEXT", "SCRAM-SHA-512", {"KPI_KAFKA_SASL_PASSWORD": "wrong"},
        "SaslAuthenticationFailed: Authentication failed", id="SCRAM-wrong-password",
    ),
    pytest.param(  # without the test CA the broker's certificate must not be trusted
        "SASL_SSL", "SCRAM-SHA-512", {"KPI_KAFKA_SSL_CAFILE": ""},
        "CERTIFICATE_VERIFY_FAILED", id="SASL_SSL-unknown-CA",
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def secured_broker(kafka_libs: Path, tls_files: TlsFiles) -> Iterator[LocalBroker]:
    """Its own broker (not the session one): PLAINTEXT plus SASL and TLS listeners."""
    broker = LocalBroker(partitions=2, sasl_users={USER: PASSWORD}, tls=tls_files)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def scenario(secured_broker: LocalBroker, tmp_path: Path) -> Scenario:
    """Topics created over PLAINTEXT, with a prefix of this test's own."""
    scenario = Scenario(secured_broker.bootstrap, tmp_path, partitions=2)
    scenario.create_topics()
    return scenario


def security_env(
    broker: LocalBroker,
    tls: TlsFiles,
    protocol: str,
    mechanism: str | None,
) -> dict[str, str]:
    """The KPI_KAFKA_* variables that README documents, for one listener of the broker."""
    env = {
        "KPI_BROKER": f"kafka://{broker.bootstrap_for(protocol)}",
        "KPI_KAFKA_SECURITY_PROTOCOL": protocol,
    }
    if mechanism is not None:
        env |= {
            "KPI_KAFKA_SASL_MECHANISM": mechanism,
            "KPI_KAFKA_SASL_USERNAME": USER,
            "KPI_KAFKA_SASL_PASSWORD": PASSWORD,
        }
    if protocol in ("SSL", "SASL_SSL"):
        env["KPI_KAFKA_SSL_CAFILE"] = str(tls.ca)
    if protocol == "SSL":  # the broker's SSL listener requires a client certificate
        env |= {
            "KPI_KAFKA_SSL_CERTFILE": str(tls.client_cert),
            "KPI_KAFKA_SSL_KEYFILE": str(tls.client_key),
        }
    return env


def ticket_events(tag: str) -> list[tuple[str, bytes | None, bytes]]:
    """OPENED tickets in one queue, the first RESOLVED of them resolved."""
    now_ms = time.time_ns() // 1_000_000
    opened = [
        {"event_id": f"{tag}-o{n}", "type": "ticket.opened", "ticket_id": f"{tag}-{n}",
         "occurred_at": now_ms - 120_000, "queue": "secure", "channel": "chat", "priority": "high"}
        for n in range(OPENED)
    ]  # fmt: skip
    resolved = [
        {"event_id": f"{tag}-r{n}", "type": "ticket.resolved", "ticket_id": f"{tag}-{n}",
         "occurred_at": now_ms - 60_000}
        for n in range(RESOLVED)
    ]  # fmt: skip
    return [route(orjson.dumps(event)) for event in opened + resolved]


@pytest.mark.parametrize(("protocol", "mechanism"), SECURED_CASES)
def test_a_worker_consumes_through_a_secured_listener(
    secured_broker: LocalBroker,
    tls_files: TlsFiles,
    scenario: Scenario,
    workers: list[Worker],
    protocol: str,
    mechanism: str | None,
) -> None:
    env = security_env(secured_broker, tls_files, protocol, mechanism)
    worker = Worker(scenario, extra_env=env).start()
    workers.append(worker)
    worker.wait_ready()

    sent = scenario.produce(ticket_events(scenario.prefix))  # over PLAINTEXT
    wait_processed([worker], sent, timeout_s=60)

    samples = worker.metrics()
    accepted = sum(
        value
        for (name, labels), value in samples.items()
        if name == "cs_events_total" and ("outcome", "accepted") in labels
    )
    open_key = ("cs_tickets_open", (("channel", "chat"), ("priority", "high"), ("queue", "secure")))
    assert accepted == sent
    assert samples[open_key] == OPENED - RESOLVED


@pytest.mark.parametrize(("protocol", "mechanism", "wrong", "logged"), REFUSED_CASES)
def test_a_worker_with_wrong_credentials_never_gets_ready_and_says_why(
    secured_broker: LocalBroker,
    tls_files: TlsFiles,
    scenario: Scenario,
    workers: list[Worker],
    protocol: str,
    mechanism: str,
    wrong: dict[str, str],
    logged: str,
) -> None:
    env = security_env(secured_broker, tls_files, protocol, mechanism) | wrong
    worker = Worker(scenario, extra_env=env).start()
    workers.append(worker)

    with pytest.raises(AssertionError, match=r"not ready|exited"):
        worker.wait_ready(timeout_s=15)
    assert logged in worker.log_tail(400), worker.log_tail()
