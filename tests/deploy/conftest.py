"""Deploy tests: fixtures for a real Prometheus + Alertmanager stack (see prom_harness)."""

from prom_harness import (  # noqa: F401  (pytest finds fixtures by name)
    alertmanager,
    prometheus_binaries,
    prometheus_factory,
    webhook_receiver,
)
