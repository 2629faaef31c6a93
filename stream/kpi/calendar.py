"""Business hours (contract section 10): a calendar and the SLA time it lets run.

A calendar is a timezone, opening intervals per weekday in local wall-clock time, and
holidays (local dates, closed all day). An instant is business time when the wall clock
of the calendar's timezone shows a time inside an interval of that local date's weekday
and the date is no holiday; around DST changes this is exactly the wall clock's reading
(an hour that is skipped is never open, an hour that repeats is open twice).

`Calendar.clock(t)` is the business time (ms) from a fixed origin of the calendar to `t`:
a non-decreasing function, so the business time between two instants is a difference of
two clocks, and "awaiting ticket past its target" is a comparison of precomputed clocks.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from stream.kpi.windows import EPOCH, from_ms

WEEKDAYS: Final[tuple[str, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MS: Final = 86_400_000
MINUTE_MS: Final = 60_000
_EPOCH_ORDINAL: Final = EPOCH.date().toordinal()
# UTC offsets lie within -24 h .. +24 h (in practice -12 .. +14): the open hours of a
# local date fall inside [its naive midnight - 1 day, its naive midnight + 2 days), so the
# timeline is exact at an instant when it covers the dates two days either side of it.
_REACH_DAYS: Final = 2
# A rebuild covers a month more than asked, so a clock moving forward rebuilds rarely.
_MARGIN_DAYS: Final = 32

# Opening intervals of one weekday: sorted (start, end) minutes after local midnight,
# end up to 1440 (24:00); intervals may touch but never overlap.
DayHours = tuple[tuple[int, int], ...]


@dataclass
class _Timeline:
    """Business intervals in UTC ms of a contiguous range of local dates, with raw clocks."""

    first_day: int  # proleptic ordinal of the first local date covered
    last_day: int
    starts: list[int]
    ends: list[int]
    raw: list[int]  # business time from the first interval's start to each start

    def raw_clock(self, at_ms: int) -> int:
        i = bisect_right(self.starts, at_ms) - 1
        return 0 if i < 0 else self.raw[i] + min(at_ms, self.ends[i]) - self.starts[i]


@dataclass(frozen=True)
class Calendar:
    """A named business-hours calendar. Its business intervals are computed lazily."""

    name: str
    timezone: ZoneInfo
    week: tuple[DayHours, ...]  # seven entries, Monday first
    holidays: frozenset[date] = frozenset()
    # Lazily built state, not part of the value: [timeline, origin_ms, origin's raw clock].
    _cache: list[tuple[_Timeline, int, int]] = field(
        default_factory=list, compare=False, repr=False
    )
    _last: list[tuple[int, int]] = field(default_factory=list, compare=False, repr=False)

    def clock(self, at_ms: int) -> int:
        """Business time in ms from the calendar's origin to `at_ms` (negative before it).

        The origin is the first instant ever asked for; only differences mean anything.
        """
        # A scrape reads the same instant for every label set. One tuple, read and replaced
        # whole, so a snapshot taken in another thread never sees half an update.
        last = self._last[0] if self._last else None
        if last is not None and last[0] == at_ms:
            return last[1]
        timeline, _, origin_raw = self._cover(at_ms)
        clock = timeline.raw_clock(at_ms) - origin_raw
        self._last[:] = [(at_ms, clock)]
        return clock

    def business_ms(self, start_ms: int, end_ms: int) -> int:
        """Business time between two instants (0 when `end_ms` is not after `start_ms`)."""
        if end_ms <= start_ms:
            return 0
        return self.clock(end_ms) - self.clock(start_ms)

    def open_intervals(self, day: date) -> list[tuple[int, int]]:
        """The UTC ms intervals in which the wall clock shows an open time of date `day`."""
        if day in self.holidays or not self.week[day.weekday()]:
            return []
        midnight = (day.toordinal() - _EPOCH_ORDINAL) * DAY_MS  # naive local midnight
        found: list[tuple[int, int]] = []
        for seg_start, seg_end, offset in self._segments(midnight - DAY_MS, midnight + 2 * DAY_MS):
            for start_min, end_min in self.week[day.weekday()]:
                start = max(seg_start, midnight + start_min * MINUTE_MS - offset)
                end = min(seg_end, midnight + end_min * MINUTE_MS - offset)
                if start < end:
                    found.append((start, end))
        return _merge(found)

    def _offset_ms(self, at_ms: int) -> int:
        offset = from_ms(at_ms).astimezone(self.timezone).utcoffset()
        return 0 if offset is None else offset // timedelta(milliseconds=1)

    def _segments(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """[lo, hi) cut where the UTC offset changes, as (start, end, offset) pieces."""
        offset = self._offset_ms(lo)
        if self._offset_ms(hi - 1) == offset:
            return [(lo, hi, offset)]
        low, high = lo, hi - 1  # the offset changes somewhere in (low, high]
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset_ms(middle) == offset:
                low = middle
            else:
                high = middle
        return [(lo, high, offset), *self._segments(high, hi)]

    def _cover(self, at_ms: int) -> tuple[_Timeline, int, int]:
        """The cached timeline, rebuilt wider when `at_ms` is near or past its edges."""
        day = from_ms(at_ms).date().toordinal()
        if not self._cache:
            timeline = self._build(day - _MARGIN_DAYS, day + _MARGIN_DAYS)
            self._cache.append((timeline, at_ms, timeline.raw_clock(at_ms)))
        timeline, origin, _ = self._cache[0]
        if day - _REACH_DAYS < timeline.first_day or day + _REACH_DAYS > timeline.last_day:
            first = min(timeline.first_day, day - _MARGIN_DAYS)
            last = max(timeline.last_day, day + _MARGIN_DAYS)
            timeline = self._build(first, last)
            self._cache[0] = (timeline, origin, timeline.raw_clock(origin))
        return self._cache[0]

    def _build(self, first_day: int, last_day: int) -> _Timeline:
        intervals: list[tuple[int, int]] = []
        for ordinal in range(first_day, last_day + 1):
            intervals.extend(self.open_intervals(date.fromordinal(ordinal)))
        merged = _merge(intervals)
        raw: list[int] = []
        running = 0
        for start, end in merged:
            raw.append(running)
            running += end - start
        return _Timeline(first_day, last_day, [s for s, _ in merged], [e for _, e in merged], raw)


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, with touching or overlapping intervals joined."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
