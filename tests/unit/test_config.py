"""Contract section 3 and 6: the KPI policy file (TOML) and the KPI_* environment."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from stream.config import (
    KpiConfig,
    Settings,
    load_kpi_config,
    parse_kpi_config,
    settings_from_env,
)
from stream.errors import ConfigError, KpiStreamError
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
]


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
