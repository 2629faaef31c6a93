"""KPI_KAFKA_* variables -> the connection settings the worker's Kafka clients get.

Each row goes through `settings_from_env` and `stream.kafka_client.client_security`, so it
checks what the consumer and producer really receive. TLS rows also handshake with a local TLS server
holding a broker-like certificate from a throwaway CA made with `openssl`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any

import pytest

from kpi_devtools.broker.harness import TlsFiles
from stream.config import settings_from_env
from stream.kafka_client import client_security

SASL = {"KPI_KAFKA_SASL_USERNAME": "kpi", "KPI_KAFKA_SASL_PASSWORD": "pa55"}


def aiokafka_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """What the worker's aiokafka clients are given for these variables."""
    return client_security(settings_from_env(env).security)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, {"security_protocol": "PLAINTEXT"}, id="default-PLAINTEXT"),
        pytest.param(
            {"KPI_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", **SASL},
            {"security_protocol": "PLAINTEXT"},
            id="PLAINTEXT-ignores-SASL-user",
        ),
        pytest.param(
            {"KPI_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", **SASL},
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"},
            id="SASL_PLAINTEXT-default-PLAIN",
        ),
        pytest.param(
            {"KPI_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
             "KPI_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", **SASL},
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256"},
            id="SASL_PLAINTEXT-SCRAM-SHA-256",
        ),
        pytest.param(
            {"KPI_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
             "KPI_KAFKA_SASL_MECHANISM": "scram-sha-512", **SASL},
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512"},
            id="lower-case-SCRAM-SHA-512",
        ),
    ],
)  # fmt: skip
def test_plaintext_and_sasl_rows(env: dict[str, str], expected: dict[str, str]) -> None:
    settings = aiokafka_settings(env)
    if expected["security_protocol"] == "PLAINTEXT":
        assert settings == expected
        return
    assert settings == {
        **expected,
        "sasl_plain_username": "kpi",
        "sasl_plain_password": "pa55",
        "ssl_context": None,
    }


@pytest.fixture
def tls(tls_files: TlsFiles) -> TlsFiles:
    return tls_files


async def client_name_seen_by_server(context: ssl.SSLContext, tls: TlsFiles) -> str:
    """Connect with `context` to a TLS server on 127.0.0.1 holding the broker certificate;
    return the common name of the client certificate it received ('' for none)."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tls.server_keystore)
    server_context.load_verify_locations(tls.ca)
    server_context.verify_mode = ssl.CERT_OPTIONAL

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        subject = (writer.get_extra_info("peercert") or {}).get("subject", ())
        names = dict(pair[0] for pair in subject)
        writer.write(names.get("commonName", "").encode() + b"\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
    return line.decode().strip()


CA = {"KPI_KAFKA_SSL_CAFILE": "{ca}"}
CLIENT_CERT = {"KPI_KAFKA_SSL_CERTFILE": "{cert}", "KPI_KAFKA_SSL_KEYFILE": "{key}"}
SCRAM = {"KPI_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", **SASL}


@pytest.mark.parametrize(
    ("env", "protocol", "client_name"),
    [
        pytest.param({"KPI_KAFKA_SECURITY_PROTOCOL": "SSL", **CA}, "SSL", "", id="SSL-CA"),
        pytest.param(
            {"KPI_KAFKA_SECURITY_PROTOCOL": "SSL", **CA, **CLIENT_CERT},
            "SSL", "kpi-stream-worker", id="SSL-CA-client-certificate",
        ),
        pytest.param(
            {"KPI_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", **CA, **SCRAM},
            "SASL_SSL", "", id="SASL_SSL-CA-SCRAM",
        ),
        pytest.param(
            {"KPI_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", **CA, **CLIENT_CERT, **SCRAM},
            "SASL_SSL", "kpi-stream-worker", id="SASL_SSL-CA-client-certificate",
        ),
    ],
)  # fmt: skip
async def test_tls_rows_verify_the_broker_and_present_the_client_certificate(
    tls: TlsFiles, env: dict[str, str], protocol: str, client_name: str
) -> None:
    paths = {"ca": tls.ca, "cert": tls.client_cert, "key": tls.client_key}
    settings = aiokafka_settings({name: value.format(**paths) for name, value in env.items()})
    context = settings["ssl_context"]
    assert settings["security_protocol"] == protocol
    if protocol == "SASL_SSL":
        assert settings["sasl_mechanism"] == "SCRAM-SHA-512"
        assert (settings["sasl_plain_username"], settings["sasl_plain_password"]) == ("kpi", "pa55")
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert await client_name_seen_by_server(context, tls) == client_name


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
async def test_without_a_ca_file_a_broker_certificate_from_an_unknown_ca_is_refused(
    tls: TlsFiles, protocol: str
) -> None:
    settings = aiokafka_settings({"KPI_KAFKA_SECURITY_PROTOCOL": protocol, **SASL})
    assert settings["security_protocol"] == protocol
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        await client_name_seen_by_server(settings["ssl_context"], tls)


async def test_the_broker_certificate_must_name_the_host_connected_to(tls: TlsFiles) -> None:
    """Hostname checking is on: a certificate for 127.0.0.1 is no good for kafka.example."""
    settings = aiokafka_settings(
        {"KPI_KAFKA_SECURITY_PROTOCOL": "SSL", "KPI_KAFKA_SSL_CAFILE": str(tls.ca)}
    )
    context: ssl.SSLContext = settings["ssl_context"]
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tls.server_keystore)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_context)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            await asyncio.open_connection(
                "127.0.0.1", port, ssl=context, server_hostname="kafka.example"
            )
