"""Local single-node Kafka broker harness: fetch, format, start, stop, topic set-up."""

from stream.broker.harness import KAFKA_VERSION, BrokerError, LocalBroker
from stream.broker.topics import DLQ_TOPIC, INPUT_TOPICS, ensure_topics

__all__ = [
    "DLQ_TOPIC",
    "INPUT_TOPICS",
    "KAFKA_VERSION",
    "BrokerError",
    "LocalBroker",
    "ensure_topics",
]
