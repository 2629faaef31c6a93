"""Contract section 3 and 6: the KPI policy file (TOML) and the KPI_* environment."""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kpi_devtools.broker.harness import TlsFiles
from stream.config import (
    TOP_LEVEL_KEYS,
    Settings,
    load_kpi_config,
    parse_kpi_config,
    settings_from_env,
)
from stream.errors import ConfigError, KpiStreamError
from stream.kpi.settings import KpiConfig
from stream.kpi.sla import SlaPolicy


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kpi.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_means_the_contract_defaults() -> None:
    config = load_kpi_config(None)
    assert config == KpiConfig()
    assert config.sla == SlaPolicy()
    assert config.max_queues == 100
    assert config.retention_ms == 35 * 86_400_000
    assert config.sla.at_risk_fraction == 0.25


def test_empty_file_means_the_contract_defaults(tmp_path: Path) -> None:
    assert load_kpi_config(write(tmp_path, "")) == KpiConfig()


def test_full_file_sets_every_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        at_risk_fraction = 0.5
        max_queues = 20
        ticket_retention_days = 7

        [first_response_seconds]
        urgent = 300
        high = 1800.5
        normal = 7200
        low = 43200

        [resolution_seconds]
        urgent = 3600
        low = 1209600

        [thresholds.csat_ratio]
        green = 0.9
        amber = 0.7
        """,
    )
    config = load_kpi_config(path)
    assert config.sla.first_response_ms == {
        "urgent": 300_000,
        "high": 1_800_500,
        "normal": 7_200_000,
        "low": 43_200_000,
    }
    assert config.sla.resolution_ms == {
        "urgent": 3_600_000,
        "high": 86_400_000,
        "normal": 259_200_000,
        "low": 1_209_600_000,
    }
    assert config.sla.at_risk_fraction == 0.5
    assert config.max_queues == 20
    assert config.retention_ms == 7 * 86_400_000
    assert config.thresholds["csat_ratio"]["green"] == 0.9
    assert config.thresholds["nps_score"]["green"] == 30


def test_partial_targets_keep_defaults_for_the_other_priorities() -> None:
    config = parse_kpi_config({"first_response_seconds": {"urgent": 600}})
    assert config.sla.first_response_ms == {
        "urgent": 600_000,
        "high": 3_600_000,
        "normal": 14_400_000,
        "low": 86_400_000,
    }
    assert config.sla.resolution_ms == SlaPolicy().resolution_ms


BAD_FILES = [
    # (TOML text, text the ConfigError must contain)
    pytest.param("max_queue = 5", "'max_queue'", id="unknown-top-level-key"),
    pytest.param("[sla]\nurgent = 5", "'sla'", id="unknown-table"),
    pytest.param(
        "first_response_seconds = 900", "'first_response_seconds'", id="targets-not-table"
    ),
    pytest.param(
        "[first_response_seconds]\ncritical = 60",
        "'first_response_seconds.critical'",
        id="unknown-priority",
    ),
    pytest.param(
        "[resolution_seconds]\nUrgent = 60",
        "'resolution_seconds.Urgent'",
        id="priority-case-matters",
    ),
    pytest.param(
        "[first_response_seconds]\nurgent = -900",
        "'first_response_seconds.urgent'",
        id="negative-target",
    ),
    pytest.param("[resolution_seconds]\nlow = 0", "'resolution_seconds.low'", id="zero-target"),
    pytest.param(
        '[first_response_seconds]\nhigh = "3600"',
        "'first_response_seconds.high'",
        id="target-string",
    ),
    pytest.param(
        "[first_response_seconds]\nhigh = true", "'first_response_seconds.high'", id="target-bool"
    ),
    pytest.param(
        "[resolution_seconds]\nnormal = [1]", "'resolution_seconds.normal'", id="target-array"
    ),
    pytest.param('at_risk_fraction = "a quarter"', "'at_risk_fraction'", id="fraction-string"),
    pytest.param("at_risk_fraction = 0", "'at_risk_fraction'", id="fraction-zero"),
    pytest.param("at_risk_fraction = 1", "'at_risk_fraction'", id="fraction-one"),
    pytest.param("at_risk_fraction = -0.25", "'at_risk_fraction'", id="fraction-negative"),
    pytest.param("at_risk_fraction = nan", "'at_risk_fraction'", id="fraction-nan"),
    pytest.param("max_queues = 0", "'max_queues'", id="max-queues-zero"),
    pytest.param("max_queues = 2.5", "'max_queues'", id="max-queues-float"),
    pytest.param("max_queues = true", "'max_queues'", id="max-queues-bool"),
    pytest.param('max_queues = "100"', "'max_queues'", id="max-queues-string"),
    pytest.param("ticket_retention_days = -1", "'ticket_retention_days'", id="retention-negative"),
    pytest.param("ticket_retention_days = 0", "'ticket_retention_days'", id="retention-zero"),
    pytest.param('ticket_retention_days = "35"', "'ticket_retention_days'", id="retention-str"),
    pytest.param("thresholds = 3", "'thresholds'", id="thresholds-not-table"),
    pytest.param(
        "[thresholds.speed]\ngreen = 1", "'thresholds.speed'", id="thresholds-unknown-kpi"
    ),
    pytest.param(
        "[thresholds.csat_ratio]\nred = 0.1", "'thresholds.csat_ratio.red'", id="unknown-level"
    ),
    pytest.param(
        '[thresholds.csat_ratio]\ngreen = "high"',
        "'thresholds.csat_ratio.green'",
        id="threshold-string",
    ),
    pytest.param(
        "[thresholds.csat_ratio]\ngreen = 0.5\namber = 0.9",
        "'thresholds.csat_ratio'",
        id="threshold-wrong-order",
    ),
    pytest.param("wallboard = 20", "'wallboard'", id="wallboard-not-table"),
    pytest.param("[wallboard]\nmin_answer = 5", "'wallboard.min_answer'", id="wallboard-unknown"),
    pytest.param("[wallboard]\nmin_answers = 0", "'wallboard.min_answers'", id="min-answers-0"),
    pytest.param(
        "[wallboard]\nmin_answers = 2.5", "'wallboard.min_answers'", id="min-answers-float"
    ),
    pytest.param(
        "[wallboard]\nmin_answers = true", "'wallboard.min_answers'", id="min-answers-bool"
    ),
]


def test_wallboard_min_answers_defaults_to_20_and_can_be_set() -> None:
    assert parse_kpi_config({}).min_answers == 20
    assert parse_kpi_config({"wallboard": {}}).min_answers == 20
    assert parse_kpi_config({"wallboard": {"min_answers": 5}}).min_answers == 5


@pytest.mark.parametrize(("text", "names"), BAD_FILES)
def test_bad_policy_file_raises_config_error_naming_the_key(
    tmp_path: Path, text: str, names: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_kpi_config(path)
    assert names in str(caught.value)
    assert str(path) in str(caught.value)


def test_config_error_is_a_kpi_stream_error() -> None:
    assert issubclass(ConfigError, KpiStreamError)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        pytest.param("max_queues = ", "not valid TOML", id="syntax-error"),
        pytest.param("a = 1\na = 2", "not valid TOML", id="duplicate-key"),
    ],
)
def test_invalid_toml_raises_config_error(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        load_kpi_config(write(tmp_path, text))


def test_file_that_is_not_utf8_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "kpi.toml"
    path.write_bytes(b"max_queues = 5 # \xff\xfe")
    with pytest.raises(ConfigError, match=r"kpi\.toml"):
        load_kpi_config(path)


def test_missing_file_raises_config_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=r"absent\.toml"):
        load_kpi_config(path)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        pytest.param(
            "[first_response_seconds]\nurgent = inf",
            "'first_response_seconds.urgent'",
            id="target-infinite",
        ),
        pytest.param(
            "[resolution_seconds]\nhigh = nan", "'resolution_seconds.high'", id="target-nan"
        ),
        pytest.param(
            "ticket_retention_days = inf", "'ticket_retention_days'", id="retention-infinite"
        ),
        pytest.param("ticket_retention_days = nan", "'ticket_retention_days'", id="retention-nan"),
    ],
)
def test_non_finite_number_raises_config_error_naming_the_key(
    tmp_path: Path, text: str, names: str
) -> None:
    """TOML has inf and nan; they escape validation and crash later (OverflowError or
    ValueError from round()) instead of a ConfigError naming the key."""
    with pytest.raises(ConfigError) as caught:
        load_kpi_config(write(tmp_path, text)).retention_ms  # noqa: B018
    assert names in str(caught.value)


# --- Environment ---------------------------------------------------------------------


def test_empty_environment_gives_the_documented_defaults() -> None:
    settings = settings_from_env({})
    assert settings == Settings()
    assert settings.broker == "kafka://localhost:9092"
    assert settings.web_port == 6066
    assert settings.timezone == ZoneInfo("UTC")
    assert settings.sla_config is None
    assert settings.partitions == 8
    assert settings.kpi == KpiConfig()
    assert settings.web_host == "127.0.0.1"
    assert settings.cluster_token is None
    assert settings.standby_replicas == 1


def test_environment_values_are_read(tmp_path: Path) -> None:
    policy = write(tmp_path, "max_queues = 7")
    settings = settings_from_env(
        {
            "KPI_BROKER": "kafka://10.0.0.1:9093",
            "KPI_WEB_PORT": "7000",
            "KPI_TIMEZONE": "Europe/Berlin",
            "KPI_SLA_CONFIG": str(policy),
            "KPI_DATA_DIR": str(tmp_path / "data"),
            "KPI_PARTITIONS": "12",
            "KPI_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "KPI_KAFKA_SASL_USERNAME": "kpi",
            "KPI_KAFKA_SASL_PASSWORD": "secret",
            "KPI_STANDBY_REPLICAS": "0",
        }
    )
    assert settings.broker == "kafka://10.0.0.1:9093"
    assert settings.web_port == 7000
    assert settings.timezone == ZoneInfo("Europe/Berlin")
    assert settings.sla_config == policy
    assert settings.kpi.max_queues == 7
    assert settings.data_dir == tmp_path / "data"
    assert settings.partitions == 12
    assert settings.security.protocol == "SASL_SSL"
    assert settings.standby_replicas == 0


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"KPI_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KPI_KAFKA_SASL_USERNAME"),
        (
            {"KPI_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KPI_KAFKA_SASL_USERNAME": "u"},
            "KPI_KAFKA_SASL_PASSWORD",
        ),
        ({"KPI_KAFKA_SSL_CAFILE": "/etc/hostname"}, "KPI_KAFKA_SSL_CAFILE"),
        (
            {"KPI_KAFKA_SECURITY_PROTOCOL": "SSL", "KPI_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"},
            "KPI_KAFKA_SSL_CAFILE",
        ),
        (
            {"KPI_KAFKA_SECURITY_PROTOCOL": "SSL", "KPI_KAFKA_SSL_KEYFILE": "/etc/hostname"},
            "KPI_KAFKA_SSL_CERTFILE",
        ),
    ],
    ids=[
        "sasl-without-user",
        "sasl-without-password",
        "ssl-file-without-ssl",
        "missing-ca",
        "key-without-cert",
    ],
)
def test_inconsistent_kafka_security_settings_stop_start_up(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        settings_from_env(env)


def test_blank_environment_values_mean_defaults() -> None:
    assert settings_from_env({"KPI_WEB_PORT": " ", "KPI_TIMEZONE": ""}) == Settings()


@pytest.mark.parametrize(
    ("env", "names"),
    [
        pytest.param({"KPI_TIMEZONE": "Mars/Olympus"}, "KPI_TIMEZONE", id="unknown-zone"),
        pytest.param({"KPI_TIMEZONE": "../etc/passwd"}, "KPI_TIMEZONE", id="zone-path"),
        pytest.param({"KPI_WEB_PORT": "0"}, "KPI_WEB_PORT", id="port-zero"),
        pytest.param({"KPI_WEB_PORT": "65536"}, "KPI_WEB_PORT", id="port-too-big"),
        pytest.param({"KPI_WEB_PORT": "web"}, "KPI_WEB_PORT", id="port-word"),
        pytest.param({"KPI_WEB_PORT": "-1"}, "KPI_WEB_PORT", id="port-negative"),
        pytest.param({"KPI_PARTITIONS": "0"}, "KPI_PARTITIONS", id="partitions-zero"),
        pytest.param({"KPI_PARTITIONS": "8.5"}, "KPI_PARTITIONS", id="partitions-float"),
        pytest.param(
            {"KPI_KAFKA_SECURITY_PROTOCOL": "TLS"}, "KPI_KAFKA_SECURITY_PROTOCOL", id="protocol"
        ),
        pytest.param({"KPI_KAFKA_SASL_MECHANISM": "MD5"}, "KPI_KAFKA_SASL_MECHANISM", id="sasl"),
        pytest.param({"KPI_STANDBY_REPLICAS": "2"}, "KPI_STANDBY_REPLICAS", id="standbys-two"),
        pytest.param({"KPI_STANDBY_REPLICAS": "yes"}, "KPI_STANDBY_REPLICAS", id="standbys-word"),
    ],
)
def test_bad_environment_raises_config_error_naming_the_variable(
    env: dict[str, str], names: str
) -> None:
    with pytest.raises(ConfigError, match=names):
        settings_from_env(env)


def test_bad_policy_file_from_environment_names_the_key(tmp_path: Path) -> None:
    policy = write(tmp_path, "[first_response_seconds]\nurgent = -5")
    with pytest.raises(ConfigError, match=r"first_response_seconds\.urgent"):
        settings_from_env({"KPI_SLA_CONFIG": str(policy)})


def test_non_ascii_digit_raises_config_error() -> None:
    """str.isdigit() accepts "²", so it escapes the check, and int("²") then raises a bare
    ValueError instead of a ConfigError naming the variable."""
    with pytest.raises(ConfigError, match="KPI_PARTITIONS"):
        settings_from_env({"KPI_PARTITIONS": "²"})


# --- Contract v2 policy file (section 10's list of keys) ------------------------------

V2_FILE = """
at_risk_fraction = 0.2
max_queues = 50
max_agents = 30
ticket_retention_days = 10
short_abandon_seconds = 0
contact_stale_seconds = 7200
agent_stale_seconds = 3600
max_events_per_entity = 500

[first_response_seconds]
urgent = 600

[contact_service_level_seconds]
chat = 90.5

[cost_per_hour]
default = 30
sales = 42.5

[calendars.stockholm]
timezone = "Europe/Stockholm"
mon = ["08:00-17:00"]
tue = ["13:00-17:00", "08:00-12:00"]
fri = ["20:00-24:00"]
holidays = ["2026-12-24", 2026-12-25]

[calendars.local]
sat = ["00:00-24:00"]

[[policies]]
queues = ["billing", "vip"]
calendar = "stockholm"
first_response_seconds = { high = 1800 }
resolution_seconds = { urgent = 7200 }

[[policies]]
first_response_seconds = { low = 100000 }

[[policies]]
queues = ["never-wins"]
"""


def test_v2_file_sets_every_key(tmp_path: Path) -> None:
    config = load_kpi_config(write(tmp_path, V2_FILE), ZoneInfo("America/New_York"))
    assert (config.max_agents, config.max_events_per_entity) == (30, 500)
    assert config.max_queues == 50
    assert config.short_abandon_ms == 0
    assert config.contact_stale_ms == 7_200_000
    assert config.agent_stale_ms == 3_600_000
    assert config.retention_ms == 10 * 86_400_000
    assert config.contact_service_level_seconds == {
        "phone": 20,
        "video": 20,
        "chat": 90.5,
        "other": 60,
    }
    assert config.contact_service_level_ms("chat") == 90_500
    assert config.cost_per_hour == {"default": 30, "sales": 42.5}
    stockholm = config.calendars["stockholm"]
    assert stockholm.timezone == ZoneInfo("Europe/Stockholm")
    assert stockholm.week == (
        ((480, 1020),),
        ((480, 720), (780, 1020)),
        (),
        (),
        ((1200, 1440),),
        (),
        (),
    )
    assert stockholm.holidays == {date(2026, 12, 24), date(2026, 12, 25)}
    # A calendar without timezone takes KPI_TIMEZONE.
    assert config.calendars["local"].timezone == ZoneInfo("America/New_York")
    billing = config.sla.for_queue("billing")
    assert billing.calendar is stockholm
    assert billing is config.sla.for_queue("vip")
    # Targets the policy leaves out are the top-level ones (urgent 600 from the file).
    assert billing.first_response_ms == {
        "urgent": 600_000,
        "high": 1_800_000,
        "normal": 14_400_000,
        "low": 86_400_000,
    }
    assert billing.resolution_ms["urgent"] == 7_200_000
    assert billing.resolution_ms["low"] == 604_800_000
    assert billing.at_risk_fraction == 0.2
    # Any other queue: the first entry without `queues`, in calendar time.
    default = config.sla.for_queue("support")
    assert default.calendar is None
    assert default.first_response_ms["low"] == 100_000_000
    assert default.first_response_ms["urgent"] == 600_000
    assert config.sla.for_queue("never-wins").first_response_ms["low"] == 86_400_000


def test_without_policies_every_queue_gets_the_top_level_targets() -> None:
    config = parse_kpi_config({"first_response_seconds": {"high": 60}})
    assert config.sla.for_queue("anything") is config.sla
    assert config.sla.calendar is None
    assert config.cost_per_hour is None
    assert config.calendars == {}


def test_defaults_of_the_v2_keys() -> None:
    config = KpiConfig()
    assert config.max_agents == 200
    assert config.max_events_per_entity == 10_000
    assert config.short_abandon_ms == 5000
    assert config.contact_stale_ms == 14_400_000
    assert config.agent_stale_ms == 43_200_000
    assert dict(config.contact_service_level_seconds) == {
        "phone": 20,
        "video": 20,
        "chat": 60,
        "other": 60,
    }
    assert config.cost_per_hour is None


def test_an_empty_cost_table_means_cost_gauges_at_zero() -> None:
    assert parse_kpi_config({"cost_per_hour": {}}).cost_per_hour == {}


CAL = "[calendars.c]\n"
BAD_V2_FILES = [
    pytest.param("max_agents = 0", "'max_agents'", id="max-agents-zero"),
    pytest.param("max_events_per_entity = 1.5", "'max_events_per_entity'", id="max-events"),
    pytest.param("short_abandon_seconds = -1", "'short_abandon_seconds'", id="short-abandon"),
    pytest.param("contact_stale_seconds = 0", "'contact_stale_seconds'", id="contact-stale"),
    pytest.param('agent_stale_seconds = "1h"', "'agent_stale_seconds'", id="agent-stale"),
    pytest.param(
        "[contact_service_level_seconds]\nemail = 5",
        "'contact_service_level_seconds.email'",
        id="service-level-channel",
    ),
    pytest.param(
        "[contact_service_level_seconds]\nphone = -5",
        "'contact_service_level_seconds.phone'",
        id="service-level-negative",
    ),
    pytest.param(
        "contact_service_level_seconds = 20", "'contact_service_level_seconds'", id="sl-not-table"
    ),
    pytest.param("[cost_per_hour]\nsales = -1", "'cost_per_hour.sales'", id="cost-negative"),
    pytest.param('[cost_per_hour]\nsales = "10"', "'cost_per_hour.sales'", id="cost-string"),
    pytest.param("cost_per_hour = 5", "'cost_per_hour'", id="cost-not-table"),
    pytest.param("calendars = 1", "'calendars'", id="calendars-not-table"),
    pytest.param(CAL + 'mon = ["8:00-17:00"]', "'calendars.c.mon[0]'", id="one-digit-hour"),
    pytest.param(CAL + 'mon = ["08:00-17:60"]', "'calendars.c.mon[0]'", id="minute-60"),
    pytest.param(CAL + 'mon = ["24:00-24:00"]', "'calendars.c.mon[0]'", id="start-24"),
    pytest.param(CAL + 'mon = ["08:00-24:30"]', "'calendars.c.mon[0]'", id="end-after-24"),
    pytest.param(CAL + 'mon = ["08:00 - 17:00"]', "'calendars.c.mon[0]'", id="spaces"),
    pytest.param(CAL + 'mon = ["17:00-08:00"]', "'calendars.c.mon[0]'", id="end-before-start"),
    pytest.param(CAL + 'mon = ["08:00-08:00"]', "'calendars.c.mon[0]'", id="empty-interval"),
    pytest.param(CAL + 'tue = ["08:00-17:00", "12:00-13:00"]', "'calendars.c.tue'", id="overlap"),
    pytest.param(CAL + 'wed = "08:00-17:00"', "'calendars.c.wed'", id="day-not-list"),
    pytest.param(CAL + "thu = [800]", "'calendars.c.thu[0]'", id="interval-number"),
    pytest.param(CAL + 'monday = ["08:00-17:00"]', "'calendars.c.monday'", id="unknown-day"),
    pytest.param(CAL + 'timezone = "Mars/Base"', "'calendars.c.timezone'", id="unknown-zone"),
    pytest.param(CAL + "timezone = 1", "'calendars.c.timezone'", id="zone-number"),
    pytest.param(CAL + 'holidays = ["2026-02-30"]', "'calendars.c.holidays[0]'", id="bad-date"),
    pytest.param(CAL + 'holidays = ["24.12.2026"]', "'calendars.c.holidays[0]'", id="date-form"),
    pytest.param(
        CAL + "holidays = [2026-12-24T10:00:00Z]", "'calendars.c.holidays[0]'", id="datetime"
    ),
    pytest.param(CAL + 'holidays = "2026-12-24"', "'calendars.c.holidays'", id="holidays-str"),
    pytest.param("[calendars]\nc = 5", "'calendars.c'", id="calendar-not-table"),
    pytest.param("policies = 5", "'policies'", id="policies-not-array"),
    pytest.param("[[policies]]\nqueue = ['a']", "'policies[0].queue'", id="policy-unknown-key"),
    pytest.param("[[policies]]\ncalendar = 'x'", "'policies[0].calendar'", id="unknown-calendar"),
    pytest.param("[[policies]]\nqueues = []", "'policies[0].queues'", id="no-queues"),
    pytest.param("[[policies]]\nqueues = 'a'", "'policies[0].queues'", id="queues-string"),
    pytest.param("[[policies]]\nqueues = ['']", "'policies[0].queues'", id="empty-queue-name"),
    pytest.param(
        "[[policies]]\nqueues = ['a', 'b']\n[[policies]]\nqueues = ['c', 'a']",
        "'policies[1].queues'",
        id="queue-in-two-policies",
    ),
    pytest.param(
        "[[policies]]\nfirst_response_seconds = { critical = 5 }",
        "'policies[0].first_response_seconds.critical'",
        id="policy-unknown-priority",
    ),
    pytest.param(
        "[[policies]]\nresolution_seconds = { high = 0 }",
        "'policies[0].resolution_seconds.high'",
        id="policy-zero-target",
    ),
    pytest.param(
        "[[policies]]\nresolution_seconds = 5",
        "'policies[0].resolution_seconds'",
        id="policy-targets-not-table",
    ),
]


@pytest.mark.parametrize(("text", "names"), BAD_V2_FILES)
def test_bad_v2_policy_file_names_the_key(tmp_path: Path, text: str, names: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_kpi_config(path)
    assert names in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        pytest.param(["00:00-24:00"], ((0, 1440),), id="whole-day"),
        pytest.param(["12:00-17:00", "08:00-12:00"], ((480, 720), (720, 1020)), id="touching"),
        pytest.param(["22:30-24:00"], ((1350, 1440),), id="until-midnight"),
        pytest.param([], (), id="closed"),
    ],
)
def test_calendar_hours_are_parsed_to_minutes(hours: list[str], expected: object) -> None:
    config = parse_kpi_config({"calendars": {"c": {"sun": hours}}})
    assert config.calendars["c"].week[6] == expected


@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("http://localhost:9092", id="http-scheme"),
        pytest.param("https://kafka:9093", id="https-scheme"),
        pytest.param("localhost", id="no-port"),
        pytest.param("kafka://", id="no-address"),
        pytest.param("kafka://host:0", id="port-zero"),
        pytest.param("kafka://host:65536", id="port-too-big"),
        pytest.param("kafka://a:9092;b", id="second-without-port"),
        pytest.param("kafka://a:9092;;b:9092", id="empty-entry"),
        pytest.param("kafka://user@host:9092", id="user-part"),
    ],
)
def test_bad_broker_address_names_kpi_broker(broker: str) -> None:
    with pytest.raises(ConfigError, match=r"^KPI_BROKER=.*must be kafka://host:port") as caught:
        settings_from_env({"KPI_BROKER": broker})
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "broker",
    [
        "kafka://localhost:9092",
        "kafka://10.0.0.1:9092;kafka-2.internal:19092",
        "b-1:9092",
        "[::1]:9092",
    ],
)
def test_good_broker_addresses_are_kept_as_given(broker: str) -> None:
    assert settings_from_env({"KPI_BROKER": broker}).broker == broker


def tls_env(**files: Path) -> dict[str, str]:
    names = {"ca": "CAFILE", "cert": "CERTFILE", "key": "KEYFILE"}
    env = {"KPI_KAFKA_SECURITY_PROTOCOL": "SSL"}
    env.update({f"KPI_KAFKA_SSL_{names[k]}": str(v) for k, v in files.items()})
    return env


@pytest.mark.parametrize(
    ("files", "named"),
    [
        pytest.param({"ca": "junk"}, "KPI_KAFKA_SSL_CAFILE", id="ca-is-text"),
        pytest.param({"ca": "empty"}, "KPI_KAFKA_SSL_CAFILE", id="ca-is-empty"),
        pytest.param({"ca": "client_key"}, "KPI_KAFKA_SSL_CAFILE", id="ca-is-a-key"),
        pytest.param({"cert": "junk", "key": "client_key"}, "KPI_KAFKA_SSL_CERTFILE", id="cert"),
        pytest.param({"cert": "client_cert", "key": "junk"}, "KPI_KAFKA_SSL_KEYFILE", id="key"),
        pytest.param(
            {"cert": "client_cert", "key": "other_key"}, "KPI_KAFKA_SSL_KEYFILE", id="wrong-key"
        ),
        pytest.param({"cert": "client_cert"}, "KPI_KAFKA_SSL_CERTFILE", id="cert-without-key"),
    ],
)
def test_tls_file_that_is_not_what_its_variable_says_stops_start_up(
    tls_files: TlsFiles, tmp_path: Path, files: dict[str, str], named: str
) -> None:
    (tmp_path / "junk").write_text("not a certificate\n")
    (tmp_path / "empty").write_text("")
    # The broker's keystore starts with its own key: a key that does not match the client's.
    other_key = tls_files.server_keystore.read_text().split("-----BEGIN CERTIFICATE-----")[0]
    (tmp_path / "other_key").write_text(other_key)
    paths = {
        "junk": tmp_path / "junk",
        "empty": tmp_path / "empty",
        "other_key": tmp_path / "other_key",
        "client_cert": tls_files.client_cert,
        "client_key": tls_files.client_key,
    }
    with pytest.raises(ConfigError, match=f"^{named}=") as caught:
        settings_from_env(tls_env(**{k: paths[v] for k, v in files.items()}))
    assert "\n" not in str(caught.value)


def test_real_tls_files_are_accepted(tls_files: TlsFiles) -> None:
    settings = settings_from_env(
        tls_env(ca=tls_files.ca, cert=tls_files.client_cert, key=tls_files.client_key)
    )
    assert (settings.security.ssl_cafile, settings.security.ssl_keyfile) == (
        tls_files.ca,
        tls_files.client_key,
    )


def test_cluster_token_is_read_and_never_shown_in_the_settings_repr() -> None:
    settings = settings_from_env({"KPI_CLUSTER_TOKEN": "s3cret-token"})
    assert settings.cluster_token == "s3cret-token"
    assert "s3cret-token" not in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("kpi-stream-0:6066", id="no-scheme"),
        pytest.param("ftp://kpi-stream-0:6066", id="ftp"),
        pytest.param("http://", id="no-host"),
        pytest.param("http://host:99999", id="port-out-of-range"),
        pytest.param("http://host:web", id="port-word"),
    ],
)
def test_bad_advertised_url_names_the_variable(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^KPI_ADVERTISED_URL=.*must be http://host:port$"):
        settings_from_env({"KPI_ADVERTISED_URL": url})


@pytest.mark.parametrize(
    "url", ["http://kpi-stream-0.kpi-stream:6066", "https://10.0.0.7:6066/", "http://[::1]:6066"]
)
def test_good_advertised_url_is_kept(url: str) -> None:
    assert settings_from_env({"KPI_ADVERTISED_URL": url}).web_url == url


@pytest.mark.parametrize(
    ("text", "names"),
    [
        pytest.param(None, "cannot read the file", id="missing-file"),
        pytest.param("max_queues = 0", r"key 'max_queues'", id="bad-key"),
        pytest.param("max_queues = ", r"not valid TOML", id="not-toml"),
    ],
)
def test_policy_file_errors_from_the_environment_name_kpi_sla_config(
    tmp_path: Path, text: str | None, names: str
) -> None:
    policy = tmp_path / "absent.toml"
    if text is not None:
        policy.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^KPI_SLA_CONFIG={re.escape(str(policy))}: .*{names}"):
        settings_from_env({"KPI_SLA_CONFIG": str(policy)})


def test_the_readme_example_policy_file_sets_every_key_and_is_valid() -> None:
    """The README documents the whole policy file: its example parses and names every key."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    after = readme.split("The KPI policy file (`KPI_SLA_CONFIG`", 1)[1]
    example = after.split("```toml\n", 1)[1].split("```", 1)[0]
    data = tomllib.loads(example)
    assert set(data) == TOP_LEVEL_KEYS
    config = parse_kpi_config(data)
    assert config.sla.for_queue("vip").calendar is config.calendars["stockholm"]
    assert config.sla.for_queue("returns").first_response_ms["normal"] == 7_200_000
