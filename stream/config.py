"""Configuration: the KPI policy file (TOML) and the worker's KPI_* environment settings.

Every problem stops start-up with a ConfigError that names the key and what is wrong.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stream.errors import ConfigError
from stream.kpi.sla import DEFAULT_FIRST_RESPONSE_S, DEFAULT_RESOLUTION_S, SlaPolicy
from stream.kpi.types import PRIORITIES

DEFAULT_THRESHOLDS: Final[dict[str, dict[str, Any]]] = {
    "first_response_time_average_seconds": {
        "direction": "lower_is_better",
        "green": 900,
        "amber": 3600,
    },
    "resolution_time_average_seconds": {
        "direction": "lower_is_better",
        "green": 14400,
        "amber": 86400,
    },
    "first_response_sla_attainment_ratio": {
        "direction": "higher_is_better",
        "green": 0.9,
        "amber": 0.8,
    },
    "resolution_sla_attainment_ratio": {
        "direction": "higher_is_better",
        "green": 0.9,
        "amber": 0.8,
    },
    "csat_ratio": {"direction": "higher_is_better", "green": 0.85, "amber": 0.75},
    "nps_score": {"direction": "higher_is_better", "green": 30, "amber": 0},
}
TOP_LEVEL_KEYS: Final = frozenset(
    {
        "at_risk_fraction",
        "max_queues",
        "ticket_retention_days",
        "first_response_seconds",
        "resolution_seconds",
        "thresholds",
        "max_events_per_entity",
    }
)


@dataclass(frozen=True)
class KpiConfig:
    """The KPI policy: SLA targets, label and retention limits, wallboard colours."""

    sla: SlaPolicy = field(default_factory=SlaPolicy)
    max_queues: int = 100
    ticket_retention_days: float = 35
    thresholds: dict[str, dict[str, Any]] = field(default_factory=lambda: DEFAULT_THRESHOLDS)
    max_events_per_entity: int = 10_000

    @property
    def retention_ms(self) -> int:
        """Ticket retention in milliseconds."""
        return round(self.ticket_retention_days * 86_400_000)


def load_kpi_config(path: Path | None) -> KpiConfig:
    """Read the policy file; no file means the contract's defaults."""
    if path is None:
        return KpiConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    try:
        return parse_kpi_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_kpi_config(data: Mapping[str, Any]) -> KpiConfig:
    """Validate a parsed policy file."""
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"unknown key {key!r} (known: {', '.join(sorted(TOP_LEVEL_KEYS))})")
    fraction = _number(data, "at_risk_fraction", 0.25)
    if not 0 < fraction < 1:
        raise ConfigError(f"key 'at_risk_fraction': must be between 0 and 1, got {fraction}")
    max_queues = data.get("max_queues", 100)
    if not isinstance(max_queues, int) or isinstance(max_queues, bool) or max_queues < 1:
        raise ConfigError(f"key 'max_queues': must be a whole number >= 1, got {max_queues!r}")
    max_events = data.get("max_events_per_entity", 10_000)
    if not isinstance(max_events, int) or isinstance(max_events, bool) or max_events < 1:
        raise ConfigError(
            f"key 'max_events_per_entity': must be a whole number >= 1, got {max_events!r}"
        )
    retention = _number(data, "ticket_retention_days", 35)
    if retention <= 0:
        raise ConfigError(f"key 'ticket_retention_days': must be positive, got {retention}")
    sla = SlaPolicy(
        first_response_ms=_targets(data, "first_response_seconds", DEFAULT_FIRST_RESPONSE_S),
        resolution_ms=_targets(data, "resolution_seconds", DEFAULT_RESOLUTION_S),
        at_risk_fraction=fraction,
    )
    return KpiConfig(
        sla, max_queues, retention, _thresholds(data.get("thresholds", {})), max_events
    )


def _number(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"key {key!r}: must be a finite number, got {value!r}")
    return float(value)


def _targets(data: Mapping[str, Any], key: str, defaults: Mapping[str, int]) -> dict[str, int]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError(f"key {key!r}: must be a table of priority = seconds")
    targets = {p: s * 1000 for p, s in defaults.items()}
    for priority, seconds in table.items():
        name = f"{key}.{priority}"
        if priority not in PRIORITIES:
            raise ConfigError(f"key {name!r}: unknown priority (known: {', '.join(PRIORITIES)})")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
        ):
            raise ConfigError(f"key {name!r}: must be a number of seconds, got {seconds!r}")
        if seconds <= 0:
            raise ConfigError(f"key {name!r}: must be a positive number of seconds, got {seconds}")
        targets[priority] = round(seconds * 1000)
    return targets


def _thresholds(table: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(table, dict):
        raise ConfigError("key 'thresholds': must be a table")
    merged = {k: dict(v) for k, v in DEFAULT_THRESHOLDS.items()}
    for kpi, levels in table.items():
        if kpi not in merged:
            raise ConfigError(f"key 'thresholds.{kpi}': unknown KPI")
        if not isinstance(levels, dict):
            raise ConfigError(f"key 'thresholds.{kpi}': must be a table with green and amber")
        for level, value in levels.items():
            if level not in ("green", "amber"):
                raise ConfigError(f"key 'thresholds.{kpi}.{level}': unknown (use green, amber)")
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ConfigError(f"key 'thresholds.{kpi}.{level}': must be a finite number")
            merged[kpi][level] = value
        entry = merged[kpi]
        better = entry["green"] >= entry["amber"]
        if (
            better != (entry["direction"] == "higher_is_better")
            and entry["green"] != entry["amber"]
        ):
            raise ConfigError(f"key 'thresholds.{kpi}': green and amber are in the wrong order")
    return merged


@dataclass(frozen=True)
class Settings:
    """Everything a worker reads from the environment (KPI_* variables)."""

    broker: str = "kafka://localhost:9092"
    web_host: str = "0.0.0.0"
    web_port: int = 6066
    advertised_url: str | None = None
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    sla_config: Path | None = None
    data_dir: Path = Path(".kpi-data")
    partitions: int = 8
    store: str = "memory://"
    app_id: str = "kpi-stream"
    topic_prefix: str = ""
    replication_factor: int = 1
    standby_replicas: int = 1
    session_timeout_s: int = 30
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    kpi: KpiConfig = field(default_factory=KpiConfig)

    @property
    def web_url(self) -> str:
        """The URL other workers use to reach this one's web server."""
        host = "127.0.0.1" if self.web_host in ("0.0.0.0", "::") else self.web_host
        return self.advertised_url or f"http://{host}:{self.web_port}"


SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the KPI_* environment variables."""
    env = os.environ if env is None else env

    def text(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    def path(name: str) -> Path | None:
        value = text(name)
        return None if value is None else Path(value)

    def number(name: str, default: int, low: int, high: int) -> int:
        value = text(name)
        if value is None:
            return default
        if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
            raise ConfigError(f"{name}={value!r}: must be a whole number in {low}..{high}")
        return int(value)

    def choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = (text(name) or default).upper()
        if value not in allowed:
            raise ConfigError(f"{name}={value!r}: must be one of {', '.join(allowed)}")
        return value

    zone = text("KPI_TIMEZONE") or "UTC"
    try:
        timezone = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"KPI_TIMEZONE={zone!r}: unknown time zone") from exc
    store = text("KPI_STORE") or "memory://"
    if store not in ("memory://", "rocksdb://"):
        raise ConfigError(f"KPI_STORE={store!r}: must be memory:// or rocksdb://")
    sla_config = path("KPI_SLA_CONFIG")
    security = _kafka_security(text, path, choice)
    return Settings(
        broker=text("KPI_BROKER") or Settings.broker,
        web_host=text("KPI_WEB_HOST") or Settings.web_host,
        web_port=number("KPI_WEB_PORT", Settings.web_port, 1, 65535),
        advertised_url=text("KPI_ADVERTISED_URL"),
        timezone=timezone,
        sla_config=sla_config,
        data_dir=path("KPI_DATA_DIR") or Settings.data_dir,
        partitions=number("KPI_PARTITIONS", Settings.partitions, 1, 10_000),
        store=store,
        app_id=text("KPI_APP_ID") or Settings.app_id,
        topic_prefix=text("KPI_TOPIC_PREFIX") or "",
        replication_factor=number("KPI_REPLICATION_FACTOR", 1, 1, 10),
        standby_replicas=number("KPI_STANDBY_REPLICAS", 1, 0, 10),
        session_timeout_s=number("KPI_KAFKA_SESSION_TIMEOUT_S", 30, 6, 300),
        **security,
        kpi=load_kpi_config(sla_config),
    )


def _kafka_security(
    text: Callable[[str], str | None],
    path: Callable[[str], Path | None],
    choice: Callable[[str, str, tuple[str, ...]], str],
) -> dict[str, Any]:
    """The KPI_KAFKA_* settings, checked together: nothing is silently ignored."""
    protocol = choice("KPI_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", SECURITY_PROTOCOLS)
    settings: dict[str, Any] = {
        "security_protocol": protocol,
        "sasl_mechanism": choice("KPI_KAFKA_SASL_MECHANISM", "PLAIN", SASL_MECHANISMS),
        "sasl_username": text("KPI_KAFKA_SASL_USERNAME"),
        "sasl_password": text("KPI_KAFKA_SASL_PASSWORD"),
    }
    if protocol.startswith("SASL") and not (
        settings["sasl_username"] and settings["sasl_password"]
    ):
        raise ConfigError(
            f"KPI_KAFKA_SECURITY_PROTOCOL={protocol} needs KPI_KAFKA_SASL_USERNAME "
            "and KPI_KAFKA_SASL_PASSWORD"
        )
    for name in ("cafile", "certfile", "keyfile"):
        variable = f"KPI_KAFKA_SSL_{name.upper()}"
        file = path(variable)
        if file is not None and protocol not in ("SSL", "SASL_SSL"):
            raise ConfigError(f"{variable} is set but KPI_KAFKA_SECURITY_PROTOCOL={protocol}")
        if file is not None and not file.is_file():
            raise ConfigError(f"{variable}={str(file)!r}: no such file")
        settings[f"ssl_{name}"] = file
    if settings["ssl_keyfile"] and not settings["ssl_certfile"]:
        raise ConfigError("KPI_KAFKA_SSL_KEYFILE needs KPI_KAFKA_SSL_CERTFILE")
    return settings
