"""KPI_KAFKA_* security settings -> keyword arguments of aiokafka clients."""

from __future__ import annotations

import ssl
from typing import Any

from stream.config import KafkaSecurity


def client_security(security: KafkaSecurity) -> dict[str, Any]:
    """`security_protocol`, SASL credentials and the TLS context for an aiokafka client.

    TLS always verifies the broker's certificate and host name (against the CA file when
    one is given, else the system's CAs) and presents the client certificate when set.
    """
    protocol = security.protocol
    if protocol == "PLAINTEXT":
        return {"security_protocol": protocol}
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(security.ssl_cafile) if security.ssl_cafile else None
        )
        if security.ssl_certfile:
            context.load_cert_chain(
                str(security.ssl_certfile),
                str(security.ssl_keyfile) if security.ssl_keyfile else None,
            )
    if protocol == "SSL":
        return {"security_protocol": protocol, "ssl_context": context}
    return {
        "security_protocol": protocol,
        "sasl_mechanism": security.sasl_mechanism,
        "sasl_plain_username": security.sasl_username,
        "sasl_plain_password": security.sasl_password,
        "ssl_context": context,
    }


def bootstrap_servers(broker: str) -> list[str]:
    """`kafka://a:9092,b:9092` (or `;`-separated URLs) -> ["a:9092", "b:9092"]."""
    hosts = (part.strip().removeprefix("kafka://") for part in broker.replace(";", ",").split(","))
    return [host for host in hosts if host]
