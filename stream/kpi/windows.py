"""Minute buckets and the windows 15m / 1h / 24h / today (contract section 4).

Internally, time is integer epoch milliseconds (UTC): exact, cheap to compare, and
free of float rounding. Conversion to and from aware datetimes happens at the edges.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS: Final = timedelta(milliseconds=1)
MINUTE_MS: Final = 60_000
WINDOWS: Final[tuple[str, ...]] = ("15m", "1h", "24h", "today")
ROLLING_MINUTES: Final[dict[str, int]] = {"15m": 15, "1h": 60, "24h": 1440}
# Buckets (and label sets) stay visible for 26 h: longer than any window, `today` included.
RETAIN_BUCKETS: Final = 26 * 60


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime, exactly (floor to the millisecond)."""
    return (moment - EPOCH) // ONE_MS


def from_ms(ms: int) -> datetime:
    """Aware UTC datetime from epoch milliseconds."""
    return EPOCH + timedelta(milliseconds=ms)


def bucket(ms: int) -> int:
    """The whole-minute bucket of an instant: floor(t / 60 s)."""
    return ms // MINUTE_MS


def window_buckets(now_ms: int, tz: ZoneInfo) -> dict[str, tuple[int, int]]:
    """Inclusive (first, last) bucket of each window at `now_ms`."""
    last = bucket(now_ms)
    ranges = {name: (last - minutes + 1, last) for name, minutes in ROLLING_MINUTES.items()}
    local_now = from_ms(now_ms).astimezone(tz)
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    ranges["today"] = (bucket(to_ms(midnight)), last)
    return ranges
