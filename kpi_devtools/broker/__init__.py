"""Local single-node Kafka broker harness: fetch, format, start, stop, topic set-up."""

from kpi_devtools.broker.harness import KAFKA_VERSION, BrokerError, LocalBroker
from kpi_devtools.broker.topics import DLQ_TOPIC, INPUT_TOPICS, ensure_topics

__all__ = [
    "DLQ_TOPIC",
    "INPUT_TOPICS",
    "KAFKA_VERSION",
    "BrokerError",
    "LocalBroker",
    "ensure_topics",
]
