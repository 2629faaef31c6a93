"""The package's exception hierarchy: one root, a subclass per kind of failure."""


class KpiStreamError(Exception):
    """Root of every error kpi-stream raises on purpose."""


class ConfigError(KpiStreamError):
    """A setting (environment variable or config file key) is invalid."""
