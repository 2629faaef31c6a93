"""The KPI gauges: ratios and means computed from a (merged) counter cell."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from stream.kpi.contrib import Layout

KPI_NAMES: Final[tuple[str, ...]] = (
    "first_response_time_average_seconds",
    "first_response_sla_attainment_ratio",
    "resolution_time_average_seconds",
    "resolution_sla_attainment_ratio",
    "csat_ratio",
    "nps_score",
)
# Contract section 9: a ticket's whole life (also exported per queue as cs_queue_...).
TICKET_LIFE_KPI_NAMES: Final[tuple[str, ...]] = (
    "one_touch_resolution_ratio",
    "reopened_resolution_ratio",
    "replies_per_resolution_average",
)


def kpis(cell: list[int]) -> dict[str, float | None]:
    """Every KPI of a cell; None where the denominator is 0 (the gauge is omitted)."""
    frt_n, res_n, csat_n = cell[Layout.FRT_COUNT], cell[Layout.RES_COUNT], cell[Layout.CSAT_COUNT]
    promoters, _, detractors = cell[Layout.NPS : Layout.NPS + 3]
    nps_n = sum(cell[Layout.NPS : Layout.NPS + 3])
    return {
        "first_response_time_average_seconds": cell[Layout.FRT_SUM_MS] / frt_n / 1000
        if frt_n
        else None,
        "first_response_sla_attainment_ratio": (frt_n - cell[Layout.FRT_BREACHES]) / frt_n
        if frt_n
        else None,
        "resolution_time_average_seconds": cell[Layout.RES_SUM_MS] / res_n / 1000
        if res_n
        else None,
        "resolution_sla_attainment_ratio": (res_n - cell[Layout.RES_BREACHES]) / res_n
        if res_n
        else None,
        "csat_ratio": cell[Layout.CSAT_SATISFIED] / csat_n if csat_n else None,
        "nps_score": (promoters - detractors) / nps_n * 100 if nps_n else None,
        "one_touch_resolution_ratio": cell[Layout.RES_ONE_TOUCH] / res_n if res_n else None,
        "reopened_resolution_ratio": cell[Layout.RES_REOPENED] / res_n if res_n else None,
        "replies_per_resolution_average": cell[Layout.RES_REPLIES_SUM] / res_n if res_n else None,
    }


def total(cells: Iterable[list[int]], size: int) -> list[int]:
    """The slot-wise sum of cells."""
    summed = [0] * size
    for cell in cells:
        summed = [a + b for a, b in zip(summed, cell, strict=True)]
    return summed
