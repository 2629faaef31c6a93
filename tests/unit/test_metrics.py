"""Contract section 5: the exposition of KPI gauges, additive components and live gauges."""

from __future__ import annotations

import math
from typing import Any

import pytest
from kpi_helpers import (
    HOUR,
    MINUTE,
    NOW,
    SECOND,
    dims,
    exported,
    first_reply,
    key,
    opened,
    parse_exposition,
    report,
    resolved,
    survey,
)

from stream.kpi.contrib import Layout
from stream.kpi.sla import SlaPolicy
from stream.kpi.snapshot import Live, Snapshot
from stream.metrics import exposition, le_label

LAYOUT = Layout(SlaPolicy())
# The KPIs of the contract's gauge tables (sections 5 and 9), spelled out, not imported.
KPI_NAMES = (
    "first_response_time_average_seconds",
    "first_response_sla_attainment_ratio",
    "resolution_time_average_seconds",
    "resolution_sla_attainment_ratio",
    "csat_ratio",
    "nps_score",
    "one_touch_resolution_ratio",
    "reopened_resolution_ratio",
    "replies_per_resolution_average",
)
A = ("a", "email", "high")
B = ("b", "chat", "low")
FRT_LES = ["60", "300", "900", "1800", "3600", "7200", "14400", "28800", "86400", "259200"]
RES_LES = ["900", "3600", "14400", "28800", "86400", "172800", "259200", "604800"]


def cell(hist_frt: dict[str, int] | None = None, **slots: int) -> list[int]:
    values = LAYOUT.zeros()
    for name, amount in slots.items():
        values[getattr(Layout, name.upper())] = amount
    for le, count in (hist_frt or {}).items():
        values[LAYOUT.frt_hist + [*FRT_LES, "+Inf"].index(le)] = count
    return values


class Exported:
    """The parsed exposition of one snapshot served as both system and local."""

    def __init__(self, snapshot: Snapshot, layout: Layout = LAYOUT) -> None:
        self.samples = parse_exposition(exposition(snapshot, snapshot, layout).encode())

    def get_sample_value(self, name: str, labels: dict[str, str]) -> float | None:
        return self.samples.get(key(name, **labels))


def registry_of(snapshot: Snapshot, layout: Layout = LAYOUT) -> Exported:
    return Exported(snapshot, layout)


def one_window(cells: dict[tuple[str, str, str], list[int]], window: str = "1h") -> Snapshot:
    snapshot = Snapshot(NOW)
    snapshot.windows[window] = cells
    return snapshot


def labels(window: str, d: tuple[str, str, str], **extra: str) -> dict[str, str]:
    return {"window": window, "queue": d[0], "channel": d[1], "priority": d[2], **extra}


@pytest.mark.parametrize(
    ("ms", "label"),
    [(60_000, "60"), (259_200_000, "259200"), (1_500, "1.5"), (500, "0.5"), (1, "0.001")],
)
def test_le_label_is_seconds_as_prometheus_writes_them(ms: int, label: str) -> None:
    assert le_label(ms) == label
    assert float(label) * SECOND == pytest.approx(ms)


FULL_CELL = cell(
    frt_count=4,
    frt_sum_ms=1_000_000,
    frt_breaches=1,
    res_count=2,
    res_sum_ms=7_200_000,
    res_breaches=2,
    csat_count=5,
    csat_satisfied=4,
)
FULL_CELL[Layout.NPS : Layout.NPS + 3] = [5, 3, 2]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("cs_first_response_time_average_seconds", 250.0),
        ("cs_first_response_sla_attainment_ratio", 0.75),
        ("cs_resolution_time_average_seconds", 3600.0),
        ("cs_resolution_sla_attainment_ratio", 0.0),
        ("cs_csat_ratio", 0.8),
        ("cs_nps_score", 30.0),
    ],
)
def test_kpi_gauge_values(name: str, value: float) -> None:
    registry = registry_of(one_window({A: FULL_CELL}))
    assert registry.get_sample_value(name, {"window": "1h"}) == pytest.approx(value)
    queue_name = name.replace("cs_", "cs_queue_", 1)
    assert registry.get_sample_value(queue_name, {"window": "1h", "queue": "a"}) == (
        pytest.approx(value)
    )


@pytest.mark.parametrize(
    ("nps", "score"),
    [
        ([1, 0, 0], 100.0),
        ([0, 0, 1], -100.0),
        ([0, 4, 0], 0.0),
        ([1, 1, 1], 0.0),
        ([3, 0, 1], 50.0),
    ],
    ids=lambda v: str(v),
)
def test_nps_is_promoters_minus_detractors_over_responses_times_100(
    nps: list[int], score: float
) -> None:
    values = cell()
    values[Layout.NPS : Layout.NPS + 3] = nps
    registry = registry_of(one_window({A: values}))
    assert registry.get_sample_value("cs_nps_score", {"window": "1h"}) == pytest.approx(score)


def test_system_gauges_pool_all_label_sets_not_average_their_means() -> None:
    registry = registry_of(
        one_window(
            {A: cell(frt_count=1, frt_sum_ms=100_000), B: cell(frt_count=3, frt_sum_ms=900_000)}
        )
    )
    mean = "cs_first_response_time_average_seconds"
    assert registry.get_sample_value(mean, {"window": "1h"}) == 250.0
    assert registry.get_sample_value(f"cs_queue_{mean[3:]}", {"window": "1h", "queue": "a"}) == 100
    assert registry.get_sample_value(f"cs_queue_{mean[3:]}", {"window": "1h", "queue": "b"}) == 300


@pytest.mark.parametrize(
    ("slots", "present"),
    [
        pytest.param({}, set(), id="zero-cell"),
        pytest.param(
            {"frt_count": 1},
            {"first_response_time_average_seconds", "first_response_sla_attainment_ratio"},
            id="first-responses-only",
        ),
        pytest.param(
            {"res_count": 2, "res_sum_ms": 10},
            {
                "resolution_time_average_seconds",
                "resolution_sla_attainment_ratio",
                "one_touch_resolution_ratio",
                "reopened_resolution_ratio",
                "replies_per_resolution_average",
            },
            id="resolutions-only",
        ),
        pytest.param({"csat_count": 1}, {"csat_ratio"}, id="csat-only"),
        pytest.param({"nps": 1}, {"nps_score"}, id="nps-only"),
        pytest.param({"opened": 3}, set(), id="opened-only"),
    ],
)
def test_gauge_with_zero_denominator_is_omitted(slots: dict[str, int], present: set[str]) -> None:
    samples = registry_of(one_window({A: cell(**slots)})).samples
    names = {name for name, _ in samples}
    assert {n for n in KPI_NAMES if f"cs_{n}" in names} == present
    assert {n for n in KPI_NAMES if f"cs_queue_{n}" in names} == present
    assert all(not math.isnan(v) for v in samples.values())
    assert samples[key("cs_first_responses", **labels("1h", A))] == slots.get("frt_count", 0)


def test_components_carry_window_and_dimensions() -> None:
    registry = registry_of(one_window({A: FULL_CELL}, window="24h"))
    at = labels("24h", A)
    assert registry.get_sample_value("cs_first_responses", at) == 4
    assert registry.get_sample_value("cs_first_response_seconds_sum", at) == 1000.0
    assert registry.get_sample_value("cs_first_response_sla_breaches", at) == 1
    assert registry.get_sample_value("cs_resolutions", at) == 2
    assert registry.get_sample_value("cs_resolution_seconds_sum", at) == 7200.0
    assert registry.get_sample_value("cs_resolution_sla_breaches", at) == 2
    assert registry.get_sample_value("cs_csat_responses", at) == 5
    assert registry.get_sample_value("cs_csat_satisfied", at) == 4
    for category, count in (("promoter", 5), ("passive", 3), ("detractor", 2)):
        assert registry.get_sample_value("cs_nps_responses", {**at, "category": category}) == count


def test_histogram_buckets_are_cumulative_up_to_inf() -> None:
    values = cell({"60": 1, "900": 2, "+Inf": 1}, frt_count=4)
    registry = registry_of(one_window({A: values}))
    counts = [
        registry.get_sample_value("cs_first_response_seconds_bucket", labels("1h", A, le=le))
        for le in [*FRT_LES, "+Inf"]
    ]
    assert counts == [1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 4]


@pytest.mark.parametrize(
    ("policy", "frt_les", "res_les"),
    [
        pytest.param(SlaPolicy(), FRT_LES, RES_LES, id="defaults"),
        pytest.param(
            SlaPolicy(
                first_response_ms={"urgent": 600_000, "high": 3_600_000, "normal": 1_500, "low": 1},
                resolution_ms={"urgent": 7_200_000, "high": 1, "normal": 1, "low": 1},
            ),
            ["0.001", "1.5", *FRT_LES[:2], "600", *FRT_LES[2:]],
            ["0.001", *RES_LES[:2], "7200", *RES_LES[2:]],
            id="configured-targets-added",
        ),
    ],
)
def test_le_values_are_contract_bounds_plus_configured_targets(
    policy: SlaPolicy, frt_les: list[str], res_les: list[str]
) -> None:
    layout = Layout(policy)
    snapshot = Snapshot(NOW)
    snapshot.windows["1h"] = {A: layout.zeros()}
    samples = registry_of(snapshot, layout).samples

    def les(name: str) -> list[str]:
        found = [dict(lbls)["le"] for n, lbls in samples if n == name]
        return sorted(found, key=float)

    assert les("cs_first_response_seconds_bucket") == [*frt_les, "+Inf"]
    assert les("cs_resolution_seconds_bucket") == [*res_les, "+Inf"]


def test_live_gauges_by_dimensions_and_sla_state() -> None:
    snapshot = Snapshot(NOW)
    snapshot.live = {
        A: Live(open=5, ok=1, at_risk=2, breached=1, oldest_awaiting=NOW - HOUR),
        B: Live(open=2),
    }
    registry = registry_of(snapshot)
    a = dict(zip(("queue", "channel", "priority"), A, strict=True))
    b = dict(zip(("queue", "channel", "priority"), B, strict=True))
    assert registry.get_sample_value("cs_tickets_open", a) == 5
    assert registry.get_sample_value("cs_tickets_open", b) == 2
    awaiting = "cs_tickets_awaiting_first_response"
    for state, count in (("ok", 1), ("at_risk", 2), ("breached", 1)):
        assert registry.get_sample_value(awaiting, {**a, "sla_state": state}) == count
        assert registry.get_sample_value(awaiting, {**b, "sla_state": state}) == 0
    oldest = "cs_oldest_awaiting_first_response_opened_timestamp_seconds"
    assert registry.get_sample_value(oldest, a) == (NOW - HOUR) / 1000
    assert registry.get_sample_value(oldest, b) is None


CONTRACT_FAMILIES = {
    *(f"cs_{n}" for n in KPI_NAMES),
    *(f"cs_queue_{n}" for n in KPI_NAMES),
    "cs_first_responses",
    "cs_first_response_seconds_sum",
    "cs_first_response_seconds_bucket",
    "cs_first_response_sla_breaches",
    "cs_resolutions",
    "cs_resolution_seconds_sum",
    "cs_resolution_seconds_bucket",
    "cs_resolution_sla_breaches",
    "cs_resolutions_one_touch",
    "cs_resolutions_reopened",
    "cs_resolution_replies_sum",
    "cs_csat_responses",
    "cs_csat_satisfied",
    "cs_nps_responses",
    "cs_tickets_open",
    "cs_tickets_awaiting_first_response",
    "cs_oldest_awaiting_first_response_opened_timestamp_seconds",
}


ALLOWED_LABELS = {"window", "queue", "channel", "priority", "le", "category", "sla_state"}


def busy_day() -> list[dict[str, Any]]:
    return [
        opened("t1", NOW - 2 * HOUR, queue="a", priority="urgent"),
        first_reply("t1", NOW - 100 * MINUTE),
        resolved("t1", NOW - 10 * MINUTE),
        survey("t1", NOW - 5 * MINUTE, "csat", 5),
        survey("t1", NOW - 5 * MINUTE, "nps", 10, event_id="nps-t1"),
        opened("t2", NOW - 20 * MINUTE, queue="b", channel="chat"),
    ]


def test_every_contract_metric_family_is_exported_with_its_samples() -> None:
    samples = exported(report(busy_day()))
    names = {name for name, _ in samples}
    assert names >= CONTRACT_FAMILIES
    for name, lbls in samples:
        assert set(dict(lbls)) <= ALLOWED_LABELS, name


def test_every_sample_value_is_finite() -> None:
    assert all(math.isfinite(v) for v in exported(report(busy_day())).values())


HOSTILE_QUEUES = [
    pytest.param('say "hi"', id="double-quotes"),
    pytest.param("back\\slash\\", id="backslashes"),
    pytest.param("two\nlines", id="newline"),
    pytest.param("\\n literally", id="backslash-n"),
    pytest.param("<img src=x onerror=alert(1)>", id="markup"),
    pytest.param("</script><script>alert(1)</script>", id="script"),
    pytest.param("Ärger & Ölung — ß", id="non-ascii"),
    pytest.param("客服队列", id="cjk"),
    pytest.param("📞 support 🎧", id="emoji"),
    pytest.param('} cs_csat_ratio{window="1h"} 1', id="exposition-injection"),
    pytest.param("# HELP x y", id="comment-injection"),
    pytest.param("tab\there", id="tab"),
    pytest.param("cr\rhere", id="carriage-return"),
    pytest.param("\u2028sep", id="line-separator"),
    pytest.param(" ", id="single-space"),
    pytest.param("x" * 128, id="128-chars"),
]


@pytest.mark.parametrize("queue", HOSTILE_QUEUES)
def test_untrusted_queue_name_round_trips_through_the_exposition(queue: str) -> None:
    events = [
        opened("t", NOW - HOUR, queue=queue),
        first_reply("t", NOW - 30 * MINUTE),
        opened("u", NOW - 3 * MINUTE, queue=queue, priority="urgent"),
    ]
    samples = exported(report(events))
    at = dims(queue)
    assert samples[key("cs_first_responses", window="1h", **at)] == 1
    assert samples[key("cs_first_response_seconds_sum", window="1h", **at)] == 1800
    mean = key("cs_queue_first_response_time_average_seconds", window="1h", queue=queue)
    assert samples[mean] == 1800
    assert samples[key("cs_tickets_open", **at)] == 1
    queues = {dict(lbls).get("queue") for _, lbls in samples} - {None}
    assert queues == {queue}
