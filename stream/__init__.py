"""kpi-stream: real-time customer-service KPIs from Kafka to Prometheus."""

__version__ = "0.1.0"
