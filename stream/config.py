"""Configuration: the KPI policy file (TOML) and the worker's KPI_* environment settings.

Every problem stops start-up with a ConfigError that names the key and what is wrong.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import ssl
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stream.errors import ConfigError
from stream.kpi.calendar import WEEKDAYS, Calendar, DayHours
from stream.kpi.settings import DEFAULT_CONTACT_SERVICE_LEVEL_S, DEFAULT_THRESHOLDS, KpiConfig
from stream.kpi.sla import DEFAULT_FIRST_RESPONSE_S, DEFAULT_RESOLUTION_S, QueuePolicy, SlaPolicy
from stream.kpi.types import CONTACT_CHANNELS, PRIORITIES

TOP_LEVEL_KEYS: Final = frozenset(
    {
        "at_risk_fraction",
        "max_queues",
        "max_agents",
        "ticket_retention_days",
        "short_abandon_seconds",
        "contact_stale_seconds",
        "agent_stale_seconds",
        "max_events_per_entity",
        "first_response_seconds",
        "resolution_seconds",
        "contact_service_level_seconds",
        "cost_per_hour",
        "calendars",
        "policies",
        "thresholds",
        "wallboard",
    }
)
CALENDAR_KEYS: Final = frozenset({"timezone", "holidays", *WEEKDAYS})
POLICY_KEYS: Final = frozenset(
    {"queues", "calendar", "first_response_seconds", "resolution_seconds"}
)
HOURS: Final = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})")


def load_kpi_config(path: Path | None, timezone: ZoneInfo | None = None) -> KpiConfig:
    """Read the policy file; no file means the contract's defaults.

    `timezone` (KPI_TIMEZONE, default UTC) is the zone of calendars that name none.
    """
    if path is None:
        return KpiConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    try:
        return parse_kpi_config(data, timezone)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_kpi_config(data: Mapping[str, Any], timezone: ZoneInfo | None = None) -> KpiConfig:
    """Validate a parsed policy file."""
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"unknown key {key!r} (known: {', '.join(sorted(TOP_LEVEL_KEYS))})")
    fraction = _number(data, "at_risk_fraction", 0.25)
    if not 0 < fraction < 1:
        raise ConfigError(f"key 'at_risk_fraction': must be between 0 and 1, got {fraction}")
    retention = _number(data, "ticket_retention_days", 35)
    if retention <= 0:
        raise ConfigError(f"key 'ticket_retention_days': must be positive, got {retention}")
    top = SlaPolicy(
        _targets(data, "first_response_seconds", _ms(DEFAULT_FIRST_RESPONSE_S)),
        _targets(data, "resolution_seconds", _ms(DEFAULT_RESOLUTION_S)),
        fraction,
    )
    calendars = _calendars(data.get("calendars", {}), timezone or ZoneInfo("UTC"))
    sla = replace(top, policies=_policies(data.get("policies", []), calendars, top))
    return KpiConfig(
        sla=sla,
        max_queues=_count(data, "max_queues", 100),
        ticket_retention_days=retention,
        thresholds=_thresholds(data.get("thresholds", {})),
        max_agents=_count(data, "max_agents", 200),
        short_abandon_seconds=_seconds(data, "short_abandon_seconds", 5, zero_ok=True),
        contact_stale_seconds=_seconds(data, "contact_stale_seconds", 14400),
        agent_stale_seconds=_seconds(data, "agent_stale_seconds", 43200),
        max_events_per_entity=_count(data, "max_events_per_entity", 10_000),
        contact_service_level_seconds=_service_levels(data.get("contact_service_level_seconds")),
        cost_per_hour=_costs(data.get("cost_per_hour")),
        min_answers=_min_answers(data.get("wallboard", {})),
        calendars=calendars,
    )


def _ms(seconds: Mapping[str, int]) -> dict[str, int]:
    return {name: s * 1000 for name, s in seconds.items()}


def _number(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if not _is_finite_number(value):
        raise ConfigError(f"key {key!r}: must be a finite number, got {value!r}")
    return float(value)


def _is_finite_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _min_answers(table: Any) -> int:
    if not isinstance(table, dict):
        raise ConfigError("key 'wallboard': must be a table")
    for key in table:
        if key != "min_answers":
            raise ConfigError(f"key 'wallboard.{key}': unknown (known: min_answers)")
    value = table.get("min_answers", 20)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(
            f"key 'wallboard.min_answers': must be a whole number >= 1, got {value!r}"
        )
    return value


def _count(data: Mapping[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"key {key!r}: must be a whole number >= 1, got {value!r}")
    return value


def _seconds(data: Mapping[str, Any], key: str, default: float, zero_ok: bool = False) -> float:
    value = _number(data, key, default)
    if value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise ConfigError(f"key {key!r}: must be a number of seconds {bound}, got {value}")
    return value


def _targets(data: Mapping[str, Any], key: str, defaults: Mapping[str, int]) -> dict[str, int]:
    """A `priority = seconds` table over `defaults` (ms); `key` is its name in messages."""
    table = data.get(key.rsplit(".", 1)[-1], {})
    if not isinstance(table, dict):
        raise ConfigError(f"key {key!r}: must be a table of priority = seconds")
    targets = dict(defaults)
    for priority, seconds in table.items():
        name = f"{key}.{priority}"
        if priority not in PRIORITIES:
            raise ConfigError(f"key {name!r}: unknown priority (known: {', '.join(PRIORITIES)})")
        if not _is_finite_number(seconds):
            raise ConfigError(f"key {name!r}: must be a number of seconds, got {seconds!r}")
        if seconds <= 0:
            raise ConfigError(f"key {name!r}: must be a positive number of seconds, got {seconds}")
        targets[priority] = round(seconds * 1000)
    return targets


def _service_levels(table: Any) -> dict[str, float]:
    levels = {c: float(s) for c, s in DEFAULT_CONTACT_SERVICE_LEVEL_S.items()}
    if table is None:
        return levels
    if not isinstance(table, dict):
        raise ConfigError("key 'contact_service_level_seconds': must be a table of channel = s")
    for channel, seconds in table.items():
        name = f"contact_service_level_seconds.{channel}"
        if channel not in CONTACT_CHANNELS:
            known = ", ".join(CONTACT_CHANNELS)
            raise ConfigError(f"key {name!r}: unknown channel (known: {known})")
        if not _is_finite_number(seconds) or seconds < 0:
            raise ConfigError(f"key {name!r}: must be a number of seconds >= 0, got {seconds!r}")
        levels[channel] = float(seconds)
    return levels


def _costs(table: Any) -> dict[str, float] | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError("key 'cost_per_hour': must be a table of team = amount per hour")
    costs: dict[str, float] = {}
    for team, amount in table.items():
        if not _is_finite_number(amount) or amount < 0:
            raise ConfigError(
                f"key 'cost_per_hour.{team}': must be an amount >= 0 per hour, got {amount!r}"
            )
        costs[team] = float(amount)
    return costs


def _calendars(table: Any, default_zone: ZoneInfo) -> dict[str, Calendar]:
    if not isinstance(table, dict):
        raise ConfigError("key 'calendars': must be a table of [calendars.NAME] tables")
    calendars: dict[str, Calendar] = {}
    for name, spec in table.items():
        key = f"calendars.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(f"key {key!r}: must be a table (timezone, mon..sun, holidays)")
        for item in spec:
            if item not in CALENDAR_KEYS:
                known = ", ".join(sorted(CALENDAR_KEYS))
                raise ConfigError(f"key '{key}.{item}': unknown key (known: {known})")
        week = tuple(_day_hours(spec.get(day, []), f"{key}.{day}") for day in WEEKDAYS)
        calendars[name] = Calendar(
            name,
            _zone(spec.get("timezone"), f"{key}.timezone", default_zone),
            week,
            _holidays(spec.get("holidays", []), f"{key}.holidays"),
        )
    return calendars


def _zone(value: Any, key: str, default: ZoneInfo) -> ZoneInfo:
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(f"key {key!r}: must be a time zone name such as 'Europe/Stockholm'")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"key {key!r}: unknown time zone {value!r}") from exc


def _day_hours(value: Any, key: str) -> DayHours:
    if not isinstance(value, list):
        raise ConfigError(f'key {key!r}: must be a list of "HH:MM-HH:MM" intervals')
    intervals: list[tuple[int, int]] = []
    for position, text in enumerate(value):
        name = f"{key}[{position}]"
        match = HOURS.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ConfigError(f'key {name!r}: must be "HH:MM-HH:MM", got {text!r}')
        start_h, start_m, end_h, end_m = (int(g) for g in match.groups())
        if start_h > 23 or start_m > 59 or end_m > 59 or end_h > 24 or (end_h == 24 and end_m):
            raise ConfigError(f"key {name!r}: not a time of day (00:00..24:00) in {text!r}")
        start, end = start_h * 60 + start_m, end_h * 60 + end_m
        if end <= start:
            raise ConfigError(f"key {name!r}: the end is not after the start in {text!r}")
        intervals.append((start, end))
    intervals.sort()
    for (_, previous_end), (start, _) in itertools.pairwise(intervals):
        if start < previous_end:
            raise ConfigError(f"key {key!r}: intervals overlap (they may touch, not overlap)")
    return tuple(intervals)


def _holidays(value: Any, key: str) -> frozenset[date]:
    if not isinstance(value, list):
        raise ConfigError(f'key {key!r}: must be a list of "YYYY-MM-DD" dates')
    days: set[date] = set()
    for position, item in enumerate(value):
        if isinstance(item, date) and not isinstance(item, datetime):
            days.add(item)
            continue
        try:
            if not isinstance(item, str) or len(item) != 10:
                raise ValueError(item)
            days.add(date.fromisoformat(item))
        except ValueError:
            raise ConfigError(
                f"key '{key}[{position}]': must be a date \"YYYY-MM-DD\", got {item!r}"
            ) from None
    return frozenset(days)


def _policies(
    value: Any,
    calendars: Mapping[str, Calendar],
    top: SlaPolicy,
) -> tuple[QueuePolicy, ...]:
    """The `[[policies]]` entries; targets they leave out are the top-level ones."""
    if not isinstance(value, list):
        raise ConfigError("key 'policies': must be an array of [[policies]] tables")
    policies: list[QueuePolicy] = []
    owner: dict[str, int] = {}
    for position, spec in enumerate(value):
        key = f"policies[{position}]"
        if not isinstance(spec, dict):
            raise ConfigError(f"key {key!r}: must be a table")
        for item in spec:
            if item not in POLICY_KEYS:
                known = ", ".join(sorted(POLICY_KEYS))
                raise ConfigError(f"key '{key}.{item}': unknown key (known: {known})")
        queues = _policy_queues(spec.get("queues"), f"{key}.queues")
        for queue in queues or ():
            if queue in owner and owner[queue] != position:
                raise ConfigError(
                    f"key '{key}.queues': queue {queue!r} is already in policies[{owner[queue]}]"
                )
            owner[queue] = position
        calendar_name = spec.get("calendar")
        calendar = None
        if calendar_name is not None:
            if not isinstance(calendar_name, str) or calendar_name not in calendars:
                known = ", ".join(sorted(calendars)) or "none defined"
                raise ConfigError(
                    f"key '{key}.calendar': unknown calendar {calendar_name!r} (known: {known})"
                )
            calendar = calendars[calendar_name]
        sla = SlaPolicy(
            _targets(spec, f"{key}.first_response_seconds", top.first_response_ms),
            _targets(spec, f"{key}.resolution_seconds", top.resolution_ms),
            top.at_risk_fraction,
            calendar=calendar,
        )
        policies.append(QueuePolicy(queues, sla))
    return tuple(policies)


def _policy_queues(value: Any, key: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(q, str) and q for q in value):
        raise ConfigError(f"key {key!r}: must be a non-empty list of queue names")
    return frozenset(value)


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
class KafkaSecurity:
    """How Kafka clients authenticate (KPI_KAFKA_* variables), checked together."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None


@dataclass(frozen=True)
class Settings:
    """Everything a worker reads from the environment (KPI_* variables)."""

    broker: str = "kafka://localhost:9092"
    web_host: str = "127.0.0.1"  # only this machine; deployments set 0.0.0.0 explicitly
    web_port: int = 6066
    advertised_url: str | None = None
    cluster_token: str | None = field(default=None, repr=False)
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    sla_config: Path | None = None
    data_dir: Path = Path(".kpi-data")
    partitions: int = 8
    app_id: str = "kpi-stream"
    topic_prefix: str = ""
    replication_factor: int = 1
    session_timeout_s: int = 30
    group_instance_id: str | None = None
    standby_replicas: int = 1  # KPI_STANDBY_REPLICAS: warm copies of each partition elsewhere
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    kpi: KpiConfig = field(default_factory=KpiConfig)
    agent_metrics: bool = False  # KPI_AGENT_METRICS: per-agent series on /metrics

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

    zone = text("KPI_TIMEZONE") or "UTC"
    try:
        timezone = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"KPI_TIMEZONE={zone!r}: unknown time zone") from exc
    sla_config = path("KPI_SLA_CONFIG")
    try:
        kpi = load_kpi_config(sla_config, timezone)
    except ConfigError as exc:
        raise ConfigError(f"KPI_SLA_CONFIG={exc}") from None
    return Settings(
        broker=_broker(text("KPI_BROKER") or Settings.broker),
        web_host=text("KPI_WEB_HOST") or Settings.web_host,
        web_port=number("KPI_WEB_PORT", Settings.web_port, 1, 65535),
        advertised_url=_advertised_url(text("KPI_ADVERTISED_URL")),
        cluster_token=text("KPI_CLUSTER_TOKEN"),
        timezone=timezone,
        sla_config=sla_config,
        data_dir=path("KPI_DATA_DIR") or Settings.data_dir,
        partitions=number("KPI_PARTITIONS", Settings.partitions, 1, 10_000),
        app_id=text("KPI_APP_ID") or Settings.app_id,
        topic_prefix=text("KPI_TOPIC_PREFIX") or "",
        replication_factor=number("KPI_REPLICATION_FACTOR", 1, 1, 10),
        session_timeout_s=number("KPI_KAFKA_SESSION_TIMEOUT_S", 30, 6, 300),
        group_instance_id=text("KPI_GROUP_INSTANCE_ID"),
        standby_replicas=number("KPI_STANDBY_REPLICAS", Settings.standby_replicas, 0, 1),
        security=kafka_security_from_env(env),
        kpi=kpi,
        agent_metrics=agent_metrics_from_env(env),
    )


def agent_metrics_from_env(env: Mapping[str, str] | None = None) -> bool:
    """KPI_AGENT_METRICS: true/false (also 1/0, yes/no, on/off); unset is false."""
    value = (os.environ if env is None else env).get("KPI_AGENT_METRICS", "").strip().lower()
    if value in ("", "false", "0", "no", "off"):
        return False
    if value in ("true", "1", "yes", "on"):
        return True
    raise ConfigError(f"KPI_AGENT_METRICS={value!r}: must be true or false")


def _advertised_url(value: str | None) -> str | None:
    """KPI_ADVERTISED_URL: an http(s) URL with a host, which the other workers call."""
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigError(f"KPI_ADVERTISED_URL={value!r}: must be http://host:port")
    return value


BROKER_ADDRESS: Final = re.compile(r"[A-Za-z0-9.-]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}")


def _broker(value: str) -> str:
    """KPI_BROKER as `kafka://host:port[;host:port…]` (the scheme may be left out)."""
    addresses = value.removeprefix("kafka://").replace(",", ";").split(";")
    for address in addresses:
        if (
            not BROKER_ADDRESS.fullmatch(address)
            or not 1 <= int(address.rsplit(":", 1)[1]) <= 65535
        ):
            raise ConfigError(
                f"KPI_BROKER={value!r}: must be kafka://host:port, several separated by ';' or ','"
            )
    return value


def kafka_security_from_env(env: Mapping[str, str] | None = None) -> KafkaSecurity:
    """The KPI_KAFKA_* settings, checked together: nothing is silently ignored."""
    env = os.environ if env is None else env

    def text(name: str) -> str | None:
        return env.get(name, "").strip() or None

    protocol = (text("KPI_KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(
            f"KPI_KAFKA_SECURITY_PROTOCOL={protocol!r}: must be one of "
            f"{', '.join(SECURITY_PROTOCOLS)}"
        )
    mechanism = (text("KPI_KAFKA_SASL_MECHANISM") or "PLAIN").upper()
    if mechanism not in SASL_MECHANISMS:
        raise ConfigError(
            f"KPI_KAFKA_SASL_MECHANISM={mechanism!r}: must be one of {', '.join(SASL_MECHANISMS)}"
        )
    username, password = text("KPI_KAFKA_SASL_USERNAME"), text("KPI_KAFKA_SASL_PASSWORD")
    if protocol.startswith("SASL") and not (username and password):
        raise ConfigError(
            f"KPI_KAFKA_SECURITY_PROTOCOL={protocol} needs KPI_KAFKA_SASL_USERNAME "
            "and KPI_KAFKA_SASL_PASSWORD"
        )
    files: dict[str, Path | None] = {}
    for name in ("cafile", "certfile", "keyfile"):
        variable = f"KPI_KAFKA_SSL_{name.upper()}"
        value = text(variable)
        file = None if value is None else Path(value)
        if file is not None and protocol not in ("SSL", "SASL_SSL"):
            raise ConfigError(f"{variable} is set but KPI_KAFKA_SECURITY_PROTOCOL={protocol}")
        if file is not None and not file.is_file():
            raise ConfigError(f"{variable}={str(file)!r}: no such file")
        files[f"ssl_{name}"] = file
    if files["ssl_keyfile"] and not files["ssl_certfile"]:
        raise ConfigError("KPI_KAFKA_SSL_KEYFILE needs KPI_KAFKA_SSL_CERTFILE")
    _check_tls_files(files["ssl_cafile"], files["ssl_certfile"], files["ssl_keyfile"])
    return KafkaSecurity(protocol, mechanism, username, password, **files)


def _check_tls_files(cafile: Path | None, certfile: Path | None, keyfile: Path | None) -> None:
    """Load the TLS files as the Kafka client will, so a wrong file stops start-up here."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for variable, file in (("KPI_KAFKA_SSL_CAFILE", cafile), ("KPI_KAFKA_SSL_CERTFILE", certfile)):
        if file is None:
            continue
        try:
            context.load_verify_locations(cafile=file)
        except (ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"{variable}={str(file)!r}: not a PEM certificate ({exc})") from None
    if certfile is None:
        return
    try:
        # An encrypted key is refused (no password variable) instead of prompting for one.
        context.load_cert_chain(certfile, keyfile, password=_no_password)
    except (ssl.SSLError, ValueError) as exc:
        variable = "KPI_KAFKA_SSL_KEYFILE" if keyfile else "KPI_KAFKA_SSL_CERTFILE"
        raise ConfigError(
            f"{variable}={str(keyfile or certfile)!r}: not an unencrypted PEM private key "
            f"matching KPI_KAFKA_SSL_CERTFILE ({exc})"
        ) from None


def _no_password() -> bytes:
    raise ValueError("the private key is encrypted")
