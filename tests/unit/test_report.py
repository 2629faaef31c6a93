"""Contract sections 1-6 end to end through the batch path and `kpi-stream report`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from kpi_helpers import (
    DAY,
    HOUR,
    MINUTE,
    NOW,
    dims,
    exported,
    first_reply,
    key,
    line,
    opened,
    parse_exposition,
    report,
    resolved,
    survey,
    utc_ms,
)

from stream.cli import main
from stream.kpi.settings import KpiConfig
from stream.kpi.sla import SlaPolicy
from stream.report import prometheus_text, samples

NOW_TEXT = "2026-11-22T10:00:30Z"
PHONE_URGENT = dims("billing", "phone", "urgent")
PHONE_HIGH = dims("billing", "phone", "high")
SALES = dims("sales", "email", "normal")
UNKNOWN = dims("unknown", "other", "normal")


def ms(text: str) -> int:
    """Epoch ms of a UTC time on 2026-11-22 ("09:00:00") or of a full UTC date-time."""
    return utc_ms(f"{text}Z" if "T" in text else f"2026-11-22T{text}Z")


def contact_centre_day() -> list[dict[str, Any]]:
    """Seven tickets whose KPIs at NOW are worked out by hand in the tests below."""
    billing = {"queue": "billing", "channel": "phone", "priority": "urgent"}
    return [
        # t1: FRT 600 s (within 900), resolution 3000 s, CSAT 5, NPS 9 (promoter)
        opened("t1", ms("09:00:00"), **billing),
        first_reply("t1", ms("09:10:00")),
        resolved("t1", ms("09:50:00")),
        survey("t1", ms("09:55:00"), "csat", 5),
        survey("t1", ms("09:56:00"), "nps", 9),
        # t2: FRT 1200 s (breach), still open, CSAT 2
        opened("t2", ms("07:00:00"), **billing),
        first_reply("t2", ms("07:20:00")),
        survey("t2", ms("09:58:00"), "csat", 2),
        # t3 (yesterday): FRT 28800 s (breach), resolution 46800 s, NPS 3 (detractor)
        opened("t3", ms("2026-11-21T12:00:00"), queue="sales"),
        first_reply("t3", ms("2026-11-21T20:00:00")),
        resolved("t3", ms("01:00:00")),
        survey("t3", ms("02:00:00"), "nps", 3),
        # t4: never opened, NPS 10 under queue="unknown"
        survey("t4", ms("09:59:00"), "nps", 10),
        # t5, t6, t7: awaiting a first reply: at risk (750 s), breached (1230 s), ok (high)
        opened("t5", ms("09:48:00"), **billing),
        opened("t6", ms("09:40:00"), **billing),
        opened("t7", ms("09:55:00"), **{**billing, "priority": "high"}),
    ]


EXPECTED_GAUGES = [
    # (metric, window, value or None when omitted)
    ("cs_first_response_time_average_seconds", "15m", None),
    ("cs_first_response_time_average_seconds", "1h", 600.0),
    ("cs_first_response_time_average_seconds", "24h", 10200.0),
    ("cs_first_response_time_average_seconds", "today", 900.0),
    ("cs_first_response_sla_attainment_ratio", "15m", None),
    ("cs_first_response_sla_attainment_ratio", "1h", 1.0),
    ("cs_first_response_sla_attainment_ratio", "24h", 1 / 3),
    ("cs_first_response_sla_attainment_ratio", "today", 0.5),
    ("cs_resolution_time_average_seconds", "15m", 3000.0),
    ("cs_resolution_time_average_seconds", "1h", 3000.0),
    ("cs_resolution_time_average_seconds", "24h", 24900.0),
    ("cs_resolution_time_average_seconds", "today", 24900.0),
    ("cs_resolution_sla_attainment_ratio", "24h", 1.0),
    ("cs_csat_ratio", "15m", 0.5),
    ("cs_csat_ratio", "today", 0.5),
    ("cs_nps_score", "15m", 100.0),
    ("cs_nps_score", "1h", 100.0),
    ("cs_nps_score", "24h", 100 / 3),
    ("cs_nps_score", "today", 100 / 3),
]


@pytest.mark.parametrize(
    ("metric", "window", "value"),
    [pytest.param(*row, id=f"{row[0][3:]}-{row[1]}") for row in EXPECTED_GAUGES],
)
def test_kpi_gauge_of_a_worked_example(metric: str, window: str, value: float | None) -> None:
    found = exported(report(contact_centre_day())).get(key(metric, window=window))
    assert found == (None if value is None else pytest.approx(value))


EXPECTED_SAMPLES = [
    # (metric, labels, value)
    ("cs_queue_first_response_time_average_seconds", {"window": "1h", "queue": "billing"}, 600),
    ("cs_queue_first_response_time_average_seconds", {"window": "24h", "queue": "sales"}, 28800),
    ("cs_queue_nps_score", {"window": "15m", "queue": "unknown"}, 100),
    ("cs_first_responses", {"window": "24h", **PHONE_URGENT}, 2),
    ("cs_first_response_seconds_sum", {"window": "24h", **PHONE_URGENT}, 1800),
    ("cs_first_response_sla_breaches", {"window": "24h", **PHONE_URGENT}, 1),
    ("cs_first_response_seconds_bucket", {"window": "24h", "le": "300", **PHONE_URGENT}, 0),
    ("cs_first_response_seconds_bucket", {"window": "24h", "le": "900", **PHONE_URGENT}, 1),
    ("cs_first_response_seconds_bucket", {"window": "24h", "le": "1800", **PHONE_URGENT}, 2),
    ("cs_first_response_seconds_bucket", {"window": "24h", "le": "+Inf", **PHONE_URGENT}, 2),
    ("cs_first_response_seconds_bucket", {"window": "24h", "le": "14400", **SALES}, 0),
    ("cs_first_response_seconds_bucket", {"window": "24h", "le": "28800", **SALES}, 1),
    ("cs_first_responses", {"window": "today", **SALES}, 0),
    ("cs_resolutions", {"window": "today", **SALES}, 1),
    ("cs_resolution_seconds_sum", {"window": "today", **SALES}, 46800),
    ("cs_resolution_seconds_bucket", {"window": "today", "le": "28800", **SALES}, 0),
    ("cs_resolution_seconds_bucket", {"window": "today", "le": "86400", **SALES}, 1),
    ("cs_resolution_sla_breaches", {"window": "today", **SALES}, 0),
    ("cs_csat_responses", {"window": "15m", **PHONE_URGENT}, 2),
    ("cs_csat_satisfied", {"window": "15m", **PHONE_URGENT}, 1),
    ("cs_nps_responses", {"window": "24h", "category": "detractor", **SALES}, 1),
    ("cs_nps_responses", {"window": "24h", "category": "promoter", **SALES}, 0),
    ("cs_nps_responses", {"window": "1h", "category": "promoter", **UNKNOWN}, 1),
    ("cs_nps_responses", {"window": "1h", "category": "promoter", **PHONE_URGENT}, 1),
    ("cs_csat_responses", {"window": "1h", **PHONE_HIGH}, 0),
    ("cs_tickets_open", PHONE_URGENT, 3),
    ("cs_tickets_open", PHONE_HIGH, 1),
    ("cs_tickets_open", SALES, 0),
    ("cs_tickets_open", UNKNOWN, 0),
    ("cs_tickets_awaiting_first_response", {"sla_state": "ok", **PHONE_URGENT}, 0),
    ("cs_tickets_awaiting_first_response", {"sla_state": "at_risk", **PHONE_URGENT}, 1),
    ("cs_tickets_awaiting_first_response", {"sla_state": "breached", **PHONE_URGENT}, 1),
    ("cs_tickets_awaiting_first_response", {"sla_state": "ok", **PHONE_HIGH}, 1),
    (
        "cs_oldest_awaiting_first_response_opened_timestamp_seconds",
        PHONE_URGENT,
        ms("09:40:00") / 1000,
    ),
    ("cs_oldest_awaiting_first_response_opened_timestamp_seconds", SALES, None),
]


@pytest.mark.parametrize(
    ("metric", "labels", "value"),
    [pytest.param(*row, id=f"{row[0][3:]}-{i}") for i, row in enumerate(EXPECTED_SAMPLES)],
)
def test_sample_of_a_worked_example(
    metric: str, labels: dict[str, str], value: float | None
) -> None:
    assert exported(report(contact_centre_day())).get(key(metric, **labels)) == value


def test_batch_counts_accepted_duplicate_and_rejected_lines() -> None:
    good = [opened("t", NOW - HOUR), first_reply("t", NOW - MINUTE)]
    lines = [
        line(good[0]),
        b"{oops",
        b"",
        b"   ",
        line(good[1]),
        line(good[0]),
        line(first_reply("t", NOW + HOUR)),
        b"[]",
    ]
    result = report(lines)
    assert (result.accepted, result.duplicates) == (3, 1)
    assert result.rejected == {"invalid_json": 1, "future_timestamp": 1, "not_object": 1}
    assert [(n, reason) for n, reason, _ in result.first_rejections] == [
        (2, "invalid_json"),
        (7, "future_timestamp"),
        (8, "not_object"),
    ]


def test_rejected_lines_never_change_a_kpi() -> None:
    clean = prometheus_text(report(contact_centre_day()))
    noisy = [b"not json", *map(line, contact_centre_day()), line(survey("t1", NOW, "csat", 9))]
    noisy += [line(opened("t9", "2026-11-22T09:00:00", queue="x")), b"\xff\xfe"]
    assert prometheus_text(report(noisy)) == clean


def test_only_the_first_20_rejections_are_kept_for_the_summary() -> None:
    result = report([b"nope"] * 25)
    assert result.rejected == {"invalid_json": 25}
    assert len(result.first_rejections) == 20


@pytest.mark.parametrize(
    ("opened_days_ago", "last_event_days_ago", "kept"),
    [
        pytest.param(34, 34, True, id="opened-34-days-ago"),
        pytest.param(35, 35, True, id="exactly-35-days"),
        pytest.param(36, 36, False, id="36-days-since-last-event"),
        pytest.param(40, 1, True, id="old-ticket-with-recent-survey"),
    ],
)
def test_ticket_state_is_kept_35_days_after_its_last_event(
    opened_days_ago: int, last_event_days_ago: int, kept: bool
) -> None:
    events = [opened("t", NOW - opened_days_ago * DAY, priority="low")]
    if last_event_days_ago != opened_days_ago:
        events.append(survey("t", NOW - last_event_days_ago * DAY, "csat", 4))
    found = exported(report(events)).get(key("cs_tickets_open", **dims(priority="low")))
    assert found == (1 if kept else None)


def test_configured_retention_applies() -> None:
    events = [opened("t", NOW - 3 * DAY)]
    config = KpiConfig(ticket_retention_days=2)
    assert key("cs_tickets_open", **dims()) not in exported(report(events, config=config))


def many_queues(count: int) -> list[dict[str, Any]]:
    return [opened(f"t{n}", NOW - HOUR - n * MINUTE, queue=f"queue-{n:03}") for n in range(count)]


@pytest.mark.parametrize(
    ("queues", "max_queues", "distinct"),
    [
        pytest.param(101, None, 100, id="101-capped-at-default-100"),
        pytest.param(5, 3, 3, id="5-capped-at-3"),
        pytest.param(3, 3, 3, id="3-of-3"),
    ],
)
def test_queue_names_beyond_max_queues_are_reported_as_other(
    queues: int, max_queues: int | None, distinct: int
) -> None:
    config = KpiConfig() if max_queues is None else KpiConfig(max_queues=max_queues)
    parsed = exported(report(many_queues(queues), config=config))
    names = {dict(labels).get("queue") for _, labels in parsed} - {None}
    assert len(names - {"other"}) == distinct
    assert ("other" in names) is (queues > distinct)
    open_total = sum(v for (n, _), v in parsed.items() if n == "cs_tickets_open")
    assert open_total == queues


def test_survey_of_never_opened_ticket_moves_once_opened_arrives() -> None:
    survey_only = [survey("t", NOW - MINUTE, "csat", 5)]
    before = exported(report(survey_only))
    assert before[key("cs_csat_responses", window="15m", **UNKNOWN)] == 1
    after = exported(report([*survey_only, opened("t", NOW - HOUR, queue="vip", channel="web")]))
    assert key("cs_csat_responses", window="15m", **UNKNOWN) not in after
    assert after[key("cs_csat_responses", window="15m", **dims("vip", "web"))] == 1


def test_configured_sla_targets_change_breaches() -> None:
    events = [opened("t", NOW - HOUR, priority="urgent"), first_reply("t", NOW - 40 * MINUTE)]
    targets = {**SlaPolicy().first_response_ms, "urgent": 1_500_000}
    default = exported(report(events))
    lenient = exported(report(events, config=KpiConfig(sla=SlaPolicy(first_response_ms=targets))))
    at = key("cs_first_response_sla_breaches", window="1h", **dims(priority="urgent"))
    assert (default[at], lenient[at]) == (1, 0)
    le = key("cs_first_response_seconds_bucket", window="1h", le="1500", **dims(priority="urgent"))
    assert le not in default
    assert lenient[le] == 1


def test_today_window_uses_the_given_time_zone() -> None:
    events = [opened("t", ms("2026-11-21T22:00:00")), first_reply("t", ms("2026-11-21T23:30:00"))]
    at = key("cs_first_responses", window="today", **dims())
    assert exported(report(events, tz="UTC"))[at] == 0
    assert exported(report(events, tz="Europe/Berlin"))[at] == 1


def test_json_samples_hold_the_same_values_as_the_text_format() -> None:
    result = report(contact_centre_day())
    from_text = exported(result)
    from_json = {(s["name"], frozenset(s["labels"].items())): s["value"] for s in samples(result)}
    assert from_json == from_text


# --- The command line ----------------------------------------------------------------


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    lines = [line(e) for e in contact_centre_day()]
    lines[3:3] = [b"this is not json", b'{"type": "ticket.opened"}']
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def run(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> Any:
    return CliRunner().invoke(main, ["report", *args], env=env, input=stdin)


def test_cli_prints_what_the_batch_path_computes(events_file: Path) -> None:
    result = run(str(events_file), "--now", NOW_TEXT)
    assert result.exit_code == 0, result.stderr
    assert parse_exposition(result.stdout_bytes) == exported(report(contact_centre_day()))


def test_cli_reports_invalid_lines_on_stderr_and_exits_0(events_file: Path) -> None:
    result = run(str(events_file), "--now", NOW_TEXT)
    assert result.exit_code == 0
    assert "16 events accepted (0 duplicates), 2 rejected" in result.stderr
    assert "invalid_json=1" in result.stderr
    assert "missing_field=1" in result.stderr
    assert "line 4: invalid_json" in result.stderr
    assert "line 5: missing_field" in result.stderr
    assert "invalid_json" not in result.stdout


@pytest.mark.parametrize(
    ("invalid", "shown", "hidden"), [(20, 20, None), (21, 20, 1), (57, 20, 37)]
)
def test_cli_says_how_many_invalid_lines_it_did_not_print(
    tmp_path: Path, invalid: int, shown: int, hidden: int | None
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"nope\n" * invalid + line(opened("t1", "2026-11-22T09:00:00Z")) + b"\n")
    result = run(str(path), "--now", NOW_TEXT)
    assert result.exit_code == 0
    printed = [row for row in result.stderr.splitlines() if row.startswith("  line ")]
    assert len(printed) == shown
    assert printed[-1] == f"  line {shown}: invalid_json: value is not valid UTF-8 JSON"
    summary = [row for row in result.stderr.splitlines() if "more invalid lines" in row]
    expected = [] if hidden is None else [f"  ... and {hidden} more invalid lines not shown"]
    assert summary == expected


def test_cli_json_format_lists_samples(events_file: Path) -> None:
    result = run(str(events_file), "--now", NOW_TEXT, "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = orjson.loads(result.stdout_bytes)
    assert rows == samples(report(contact_centre_day()))


def test_cli_reads_stdin_for_dash(events_file: Path) -> None:
    result = run("-", "--now", NOW_TEXT, stdin=events_file.read_bytes())
    assert result.exit_code == 0, result.stderr
    assert parse_exposition(result.stdout_bytes) == exported(report(contact_centre_day()))


def test_cli_time_zone_option_and_environment(events_file: Path) -> None:
    def todays_first_responses(*args: str, env: dict[str, str] | None = None) -> float:
        result = run(str(events_file), "--now", NOW_TEXT, *args, env=env)
        assert result.exit_code == 0, result.stderr
        parsed = parse_exposition(result.stdout_bytes)
        return parsed[key("cs_first_responses", window="today", **SALES)]

    assert todays_first_responses() == 0
    assert todays_first_responses("--tz", "Europe/Berlin") == 0
    assert todays_first_responses("--tz", "Asia/Tokyo") == 1  # 20:00Z is 05:00 in Tokyo
    assert todays_first_responses(env={"KPI_TIMEZONE": "Asia/Tokyo"}) == 1


def test_cli_applies_the_sla_config_file(events_file: Path, tmp_path: Path) -> None:
    policy = tmp_path / "kpi.toml"
    policy.write_text("[first_response_seconds]\nurgent = 1500\n", encoding="utf-8")
    result = run(str(events_file), "--now", NOW_TEXT, "--sla-config", str(policy))
    assert result.exit_code == 0, result.stderr
    parsed = parse_exposition(result.stdout_bytes)
    assert parsed[key("cs_first_response_sla_breaches", window="24h", **PHONE_URGENT)] == 0


def test_cli_empty_file_exports_no_samples(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    result = run(str(empty), "--now", NOW_TEXT)
    assert result.exit_code == 0, result.stderr
    assert parse_exposition(result.stdout_bytes) == {}
    assert "0 events accepted" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["missing.jsonl", "--now", NOW_TEXT], "cannot read", id="missing-file"),
        pytest.param(["{events}", "--now", "2026-11-22T10:00:00"], "offset", id="naive-now"),
        pytest.param(["{events}", "--now", "tomorrow"], "RFC 3339", id="garbage-now"),
        pytest.param(["{events}"], "--now", id="now-required"),
        pytest.param(
            ["{events}", "--now", NOW_TEXT, "--tz", "Mars/Olympus"], "Mars/Olympus", id="bad-zone"
        ),
        pytest.param(
            ["{events}", "--now", NOW_TEXT, "--format", "xml"], "xml", id="unknown-format"
        ),
    ],
)
def test_cli_usage_errors_exit_non_zero_with_a_message(
    events_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    args = [str(tmp_path / a) if a == "missing.jsonl" else a for a in args]
    result = run(*[str(events_file) if a == "{events}" else a for a in args])
    assert result.exit_code != 0
    assert message in result.stderr
    assert result.stdout == ""


def test_cli_directory_instead_of_file_exits_non_zero(tmp_path: Path) -> None:
    result = run(str(tmp_path), "--now", NOW_TEXT)
    assert result.exit_code != 0
    assert str(tmp_path) in result.stderr


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        pytest.param("[first_response_seconds]\nurgent = -1\n", "first_response_seconds.urgent"),
        pytest.param("maximum_queues = 3\n", "maximum_queues"),
        pytest.param("[resolution_seconds]\nasap = 60\n", "resolution_seconds.asap"),
        pytest.param('max_queues = "many"\n', "max_queues"),
    ],
)
def test_cli_bad_config_exits_non_zero_naming_the_key(
    events_file: Path, tmp_path: Path, toml: str, names: str
) -> None:
    policy = tmp_path / "kpi.toml"
    policy.write_text(toml, encoding="utf-8")
    for result in (
        run(str(events_file), "--now", NOW_TEXT, "--sla-config", str(policy)),
        run(str(events_file), "--now", NOW_TEXT, env={"KPI_SLA_CONFIG": str(policy)}),
    ):
        assert result.exit_code != 0
        assert names in result.stderr
        assert result.stdout == ""
